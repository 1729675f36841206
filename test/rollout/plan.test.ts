import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_GATES,
  SCORE_BINS,
  judgeStep,
  parseDuration,
  parseSteps,
  scoreBin,
  type StepEvidence,
} from '../../src/rollout/plan.js';
import { Random } from '../../src/produce/generator.js';

/** Score histograms of n draws from a beta-like shape, shifted by `shift`. */
function bins(n: number, seed: number, shift = 0): number[] {
  const random = new Random(seed);
  const counts = new Array<number>(SCORE_BINS).fill(0);
  for (let i = 0; i < n; i += 1)
    counts[scoreBin(Math.min(1, Math.max(0, random.uniform() ** 2 + shift)))]! += 1;
  return counts;
}

const healthy: StepEvidence = {
  canaryEvents: 2_000,
  canaryFailures: 0,
  canaryInferencePerEvent: 12e-6,
  primaryInferencePerEvent: 10e-6,
  canaryScoreBins: bins(2_000, 1),
  primaryScoreBins: bins(20_000, 2),
  agreement: 0.99,
  canaryAuc: 0.9,
  primaryAuc: 0.905,
};

describe('rollout plan', () => {
  it('reads steps and durations, and refuses plans that do not rise to 100%', () => {
    assert.deepEqual(parseSteps('5%:10m,25%:30s,0.5,100%', 60_000), [
      { share: 0.05, holdMs: 600_000 },
      { share: 0.25, holdMs: 30_000 },
      { share: 0.5, holdMs: 60_000 },
      { share: 1, holdMs: 60_000 },
    ]);
    assert.equal(parseDuration('1.5h', 'x'), 5_400_000);
    assert.throws(() => parseSteps('5%,50%', 1), /the last step must be 100%/);
    assert.throws(() => parseSteps('50%,25%,100%', 1), /shares must rise/);
    assert.throws(() => parseSteps('0%,100%', 1), /is not SHARE/);
    assert.throws(() => parseSteps('5%:soon,100%', 1), /is not a duration/);
  });

  it('goes on when every gate with evidence passes, and skips gates without evidence', () => {
    const { decision, verdicts } = judgeStep(healthy, DEFAULT_GATES);
    assert.equal(decision, 'next', JSON.stringify(verdicts));
    const bare = judgeStep({ canaryEvents: 600, canaryFailures: 0 }, DEFAULT_GATES);
    assert.equal(bare.decision, 'next');
    assert.deepEqual(
      bare.verdicts.filter((v) => v.ok === undefined).map((v) => v.gate),
      ['latency', 'scores', 'agreement', 'quality'],
    );
  });

  it('rolls back a canary whose scores moved, that errs, that is slow, that disagrees or that predicts worse', () => {
    const cases: [string, Partial<StepEvidence>][] = [
      ['scores', { canaryScoreBins: bins(2_000, 3, 0.3) }],
      ['failures', { canaryFailures: 60 }],
      ['latency', { canaryInferencePerEvent: 30e-6 }],
      ['agreement', { agreement: 0.8 }],
      ['quality', { canaryAuc: 0.85 }],
    ];
    for (const [gate, change] of cases) {
      const { decision, verdicts } = judgeStep({ ...healthy, ...change }, DEFAULT_GATES);
      assert.equal(decision, 'rollback', gate);
      assert.deepEqual(
        verdicts.filter((v) => v.ok === false).map((v) => v.gate),
        [gate],
      );
    }
  });

  it('holds while the window is short, unless the canary already fails too often', () => {
    assert.equal(
      judgeStep({ ...healthy, canaryEvents: 100, canaryFailures: 1 }, DEFAULT_GATES).decision,
      'hold',
    );
    assert.equal(
      judgeStep({ ...healthy, canaryEvents: 100, canaryScoreBins: bins(100, 4, 0.4) }, DEFAULT_GATES)
        .decision,
      'hold',
      'a moved distribution on 100 events is not yet evidence',
    );
    assert.equal(
      judgeStep({ ...healthy, canaryEvents: 100, canaryFailures: 40 }, DEFAULT_GATES).decision,
      'rollback',
    );
  });

  it('never rolls back a canary that scores like the primary, over 50 windows', () => {
    let passed = 0;
    for (let seed = 10; seed < 60; seed += 1) {
      const same = judgeStep({ ...healthy, canaryScoreBins: bins(2_000, seed) }, DEFAULT_GATES);
      if (same.decision === 'next') passed += 1;
    }
    assert.equal(passed, 50, 'no false rollbacks in 50 stationary windows');
  });
});
