import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DLQ_HEADERS } from '../../src/codec/dead-letter.js';
import type { Prediction } from '../../src/codec/predictions.js';
import { FALLBACK_HEADER } from '../../src/pipeline/scoring.js';
import { StepWindow } from '../../src/rollout/evidence.js';
import { DEFAULT_GATES, judgeStep, scoreBin } from '../../src/rollout/plan.js';

function prediction(version: string, route: string, score: number, model = 'fraud'): Prediction {
  return {
    request_id: `${version}-${route}-${score}`,
    entity_key: 'k',
    model_name: model,
    model_version: version,
    route,
    outputs: { score, label: score > 0.5 ? 1 : 0 },
    event_time: 0,
    scored_at: 0,
  };
}

describe('rollout step evidence', () => {
  it('counts the canary events, its failures (fallback or dead letter) and both score histograms', () => {
    const window = new StepWindow('fraud', '2', '3');
    for (let i = 0; i < 100; i += 1) window.addPrediction(prediction('3', 'canary', i / 100), {});
    for (let i = 0; i < 300; i += 1) window.addPrediction(prediction('2', 'primary', (i % 100) / 100), {});
    // Taken by the fallback from the canary, and from another version: only the first counts.
    window.addPrediction(prediction('1', 'fallback', 0.2), { [FALLBACK_HEADER]: '3' });
    window.addPrediction(prediction('1', 'fallback', 0.2), { [FALLBACK_HEADER]: '2' });
    // Other models and routes are not this rollout's.
    window.addPrediction(prediction('3', 'canary', 0.9, 'heavy'), {});
    window.addPrediction(prediction('3', 'shadow', 0.9), {});
    window.addDeadLetter({
      [DLQ_HEADERS.reason]: 'INFERENCE_FAILED',
      [DLQ_HEADERS.message]: 'fraud/3: output "score" is NaN',
    });
    window.addDeadLetter({
      [DLQ_HEADERS.reason]: 'INFERENCE_FAILED',
      [DLQ_HEADERS.message]: 'fraud/2: boom',
    });
    window.addDeadLetter({ [DLQ_HEADERS.reason]: 'UNDECODABLE', [DLQ_HEADERS.message]: 'fraud/3: no' });
    window.set({ agreement: 0.97 });
    const evidence = window.evidence();
    assert.equal(evidence.canaryEvents, 102);
    assert.equal(evidence.canaryFailures, 2);
    assert.equal(
      evidence.canaryScoreBins!.reduce((a, b) => a + b, 0),
      100,
    );
    assert.equal(
      evidence.primaryScoreBins!.reduce((a, b) => a + b, 0),
      300,
    );
    assert.equal(evidence.canaryScoreBins![scoreBin(0.55)], 10);
    assert.equal(evidence.agreement, 0.97);
    // 2 failures of 102 is 2%: over the 1% limit, but the window is short and failures are few.
    assert.equal(judgeStep(evidence, DEFAULT_GATES).decision, 'hold');
  });

  it("gives the shadow agreement, and each side's AUC once enough labelled events of both classes came", () => {
    const window = new StepWindow('fraud', '2', '3', { primary: 0.5, canary: 0.5 });
    const shadow = (served: number, mine: number, version = '3', servedVersion = '2') => ({
      ...prediction(version, 'shadow', mine),
      served_version: servedVersion,
      served_route: 'primary',
      served_outputs: { score: served },
    });
    window.addShadow(shadow(0.9, 0.8));
    window.addShadow(shadow(0.9, 0.2));
    window.addShadow(shadow(0.9, 0.1, '4'));
    assert.equal(window.evidence().agreement, 0.5);
    // 60 positives and 60 negatives a side; the canary ranks them perfectly, the primary not at all.
    for (let i = 0; i < 120; i += 1) {
      const label = i % 2;
      const canary = { ...prediction('3', 'canary', label === 1 ? 0.9 : 0.1), request_id: `c${i}` };
      const primary = { ...prediction('2', 'primary', 0.5), request_id: `p${i}` };
      window.addPrediction(canary, {});
      window.addPrediction(primary, {});
      if (i === 0) assert.equal(window.evidence().canaryAuc, undefined, 'too few labels yet');
      window.addOutcome(`c${i}`, label);
      window.addOutcome(`p${i}`, label);
    }
    window.addOutcome('unknown', 1);
    window.addOutcome('c1', 7);
    const evidence = window.evidence();
    assert.equal(evidence.canaryAuc, 1);
    assert.equal(evidence.primaryAuc, 0.5);
    // A better AUC passes the quality gate; the scores, far from the primary's, and the shadow's
    // 50% agreement fail theirs.
    const judged = judgeStep({ ...evidence, canaryEvents: 1_000 }, DEFAULT_GATES);
    assert.equal(judged.decision, 'rollback');
    assert.deepEqual(
      judged.verdicts.filter((v) => v.ok === false).map((v) => v.gate),
      ['scores', 'agreement'],
    );
  });
});
