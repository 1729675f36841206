import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LOG_LOSS_EPSILON,
  QualityAccumulator,
  evaluateQualityGate,
  rankAuc,
  type QualitySnapshot,
} from '../../src/drift/quality.js';
import { Random } from '../../src/produce/generator.js';

/** AUC by counting every positive-negative pair: 1 when ordered right, 1/2 when tied. */
function pairwiseAuc(scores: number[], labels: (0 | 1)[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i += 1) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j += 1) {
      if (labels[j] !== 0) continue;
      pairs += 1;
      if (scores[i]! > scores[j]!) wins += 1;
      else if (scores[i] === scores[j]) wins += 0.5;
    }
  }
  return wins / pairs;
}

/** Scores rounded to two decimals (many ties) and labels drawn with P(1) = score. */
function sample(seed: number, n: number, digits = 2): { scores: number[]; labels: (0 | 1)[] } {
  const random = new Random(seed);
  const scores: number[] = [];
  const labels: (0 | 1)[] = [];
  for (let i = 0; i < n; i += 1) {
    const score = Number(random.uniform().toFixed(digits));
    scores.push(score);
    labels.push(random.uniform() < score ? 1 : 0);
  }
  return { scores, labels };
}

function accumulate(scores: number[], labels: (0 | 1)[], threshold = 0.5): QualitySnapshot {
  const q = new QualityAccumulator(threshold);
  scores.forEach((score, i) => q.addMatched(score, labels[i]!));
  return q.snapshot();
}

describe('realised quality', () => {
  it('AUC from ranks equals the pairwise count, ties included', () => {
    for (const [seed, digits] of [
      [1, 1],
      [2, 2],
      [3, 6],
    ] as const) {
      const { scores, labels } = sample(seed, 700, digits);
      const auc = rankAuc(scores, labels);
      assert.ok(auc !== null);
      assert.ok(Math.abs(auc - pairwiseAuc(scores, labels)) < 1e-12, `seed ${seed}: ${auc}`);
    }
    assert.equal(rankAuc([0.3, 0.3, 0.3], [1, 0, 1]), 0.5);
    assert.equal(rankAuc([0.1, 0.9], [0, 1]), 1);
    assert.equal(rankAuc([0.1, 0.9], [1, 1]), null);
  });

  it('log loss, precision, recall and ECE equal their offline definitions', () => {
    const { scores, labels } = sample(7, 2_000, 3);
    // Scores at 0 and 1 exercise the clipping: a confident miss must stay finite.
    scores.push(0, 1);
    labels.push(1, 0);
    const threshold = 0.4;
    const q = accumulate(scores, labels, threshold);

    const n = scores.length;
    const clipped = scores.map((s) => Math.min(Math.max(s, LOG_LOSS_EPSILON), 1 - LOG_LOSS_EPSILON));
    const logLoss =
      clipped.reduce((sum, p, i) => sum - (labels[i] === 1 ? Math.log(p) : Math.log(1 - p)), 0) / n;
    assert.ok(Math.abs(q.logLoss! - logLoss) < 1e-12);
    assert.ok(Number.isFinite(q.logLoss));

    const tp = scores.filter((s, i) => s > threshold && labels[i] === 1).length;
    const fp = scores.filter((s, i) => s > threshold && labels[i] === 0).length;
    const fn = scores.filter((s, i) => s <= threshold && labels[i] === 1).length;
    assert.equal(q.precision, tp / (tp + fp));
    assert.equal(q.recall, tp / (tp + fn));

    let ece = 0;
    for (let b = 0; b < 10; b += 1) {
      const inBin = scores
        .map((s, i) => ({ s, y: labels[i]! }))
        .filter(({ s }) => (b === 9 ? s >= 0.9 : s >= b / 10 && s < (b + 1) / 10));
      if (inBin.length === 0) continue;
      const meanScore = inBin.reduce((a, x) => a + x.s, 0) / inBin.length;
      const meanLabel = inBin.reduce((a, x) => a + x.y, 0) / inBin.length;
      ece += (inBin.length / n) * Math.abs(meanScore - meanLabel);
    }
    assert.ok(Math.abs(q.ece! - ece) < 1e-12, `${q.ece} vs ${ece}`);
    // Labels drawn with P(1) = score: calibrated, up to sampling noise.
    assert.ok(q.ece! < 0.05, `ece ${q.ece}`);
    assert.equal(q.matched, n);
    assert.equal(q.positives, labels.filter((y) => y === 1).length);
  });

  it('counts the share of settled predictions that got an outcome', () => {
    const q = new QualityAccumulator(0.5);
    q.addMatched(0.8, 1);
    q.addMatched(0.2, 0);
    q.addUnmatched();
    q.addUnmatched();
    q.addUnmatched();
    const s = q.snapshot();
    assert.equal(s.settled, 5);
    assert.equal(s.matched, 2);
    assert.equal(s.outcomeShare, 0.4);
    assert.equal(s.auc, 1);
    const none = new QualityAccumulator(0.5);
    none.addUnmatched();
    const empty = none.snapshot();
    assert.equal(empty.outcomeShare, 0);
    assert.equal(empty.auc, null);
    assert.equal(empty.logLoss, null);
    assert.equal(empty.ece, null);
    assert.equal(empty.precision, null);
  });
});

describe('quality gate', () => {
  const { scores, labels } = sample(11, 1_000);
  const quality = accumulate(scores, labels);

  it('passes figures within the limits and fails each one outside', () => {
    assert.deepEqual(evaluateQualityGate(quality, { minMatched: 100, minAuc: 0.6, maxEce: 0.1 }), {
      verdict: 'pass',
      reasons: [],
    });
    const failed = evaluateQualityGate(quality, {
      minMatched: 100,
      minAuc: 0.99,
      maxLogLoss: 0.01,
      minRecall: 0.1,
    });
    assert.equal(failed.verdict, 'fail');
    assert.equal(failed.reasons.length, 2);
    assert.match(failed.reasons[0]!, /^auc 0\.\d{4} < 0\.99$/);
    assert.match(failed.reasons[1]!, /^log loss/);
  });

  it('is insufficient with too few outcomes or a figure it could not compute', () => {
    assert.equal(evaluateQualityGate(null, { minMatched: 1 }).verdict, 'insufficient');
    assert.equal(evaluateQualityGate(quality, { minMatched: 1_001, minAuc: 0 }).verdict, 'insufficient');
    const oneClass = accumulate([0.1, 0.2, 0.3], [0, 0, 0]);
    const verdict = evaluateQualityGate(oneClass, { minMatched: 1, minAuc: 0.5 });
    assert.deepEqual(verdict, { verdict: 'insufficient', reasons: ['auc could not be computed'] });
  });
});
