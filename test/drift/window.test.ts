import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { BinnedHistogram } from '../../src/drift/histogram.js';
import { parseReference } from '../../src/drift/reference.js';
import { DriftWindow, checkWindowLimits, versionProfile } from '../../src/drift/window.js';

const profile = (counts: number[], edges: number[]) => ({
  count: counts.reduce((a, b) => a + b, 0),
  mean: 0,
  std: 1,
  min: -10,
  max: 10,
  edges,
  counts,
});

const reference = parseReference(
  {
    name: 'm',
    version: '1',
    features: { a: profile([10, 10, 10], [0, 1]), b: profile([5, 5], [0]) },
    outputs: { score: profile([10, 10], [0.5]) },
  },
  'test',
);

describe('BinnedHistogram', () => {
  it('counts into frozen bins, keeps population moments, and counts missing values apart', () => {
    const histogram = new BinnedHistogram({ edges: [0, 1], min: -0.5, max: 2 });
    for (const v of [-1, 0, 0.5, 1, 2, 3]) histogram.add(v);
    histogram.add(Number.NaN);
    histogram.add(undefined);
    histogram.add(Infinity);
    const snapshot = histogram.snapshot();
    assert.deepEqual(snapshot.counts, [2, 2, 2]);
    assert.equal(snapshot.count, 6);
    assert.equal(snapshot.missing, 3);
    assert.equal(snapshot.outside, 2, '-1 and 3 lie outside [-0.5, 2]');
    assert.ok(Math.abs(snapshot.mean! - 5.5 / 6) < 1e-12);
    const m = 5.5 / 6;
    const variance = [-1, 0, 0.5, 1, 2, 3].reduce((s, v) => s + (v - m) ** 2, 0) / 6;
    assert.ok(Math.abs(snapshot.std! - Math.sqrt(variance)) < 1e-12);
    assert.deepEqual(new BinnedHistogram({ edges: [0] }).snapshot(), {
      counts: [0, 0],
      count: 0,
      missing: 0,
      outside: 0,
      mean: null,
      std: null,
    });
  });

  it('bins the float32 value, as the model and the reference see it', () => {
    const edge = Math.fround(0.1); // 0.10000000149011612
    const histogram = new BinnedHistogram({ edges: [edge] });
    histogram.add(0.1000000001); // a double above the edge that rounds to it in float32
    assert.deepEqual(histogram.snapshot().counts, [1, 0]);
  });
});

describe('DriftWindow', () => {
  it('counts an event per output observation and closes by count or by time, whichever first', () => {
    const window = new DriftWindow(versionProfile(reference), { maxEvents: 3, maxDurationMs: 1_000 }, 100);
    window.observeFeatures({ a: 0.5, b: 1, unknown: 7 });
    assert.equal(window.events, 0);
    window.observeOutputs({ score: 0.9, label: 1 });
    window.observeOutputs({ score: 0.1 });
    assert.equal(window.dueReason(1_099), undefined);
    assert.equal(window.dueReason(1_100), 'time');
    window.observeOutputs({});
    assert.equal(window.dueReason(200), 'count');
    const snapshot = window.snapshot(250, 'count');
    assert.equal(snapshot.model, 'm');
    assert.equal(snapshot.events, 3);
    assert.deepEqual(snapshot.features.get('a')!.counts, [0, 1, 0]);
    assert.deepEqual(snapshot.features.get('b')!.counts, [0, 1]);
    assert.deepEqual(snapshot.outputs.get('score')!.counts, [1, 1]);
    assert.equal(snapshot.outputs.get('score')!.missing, 1);
    assert.deepEqual([snapshot.start, snapshot.end, snapshot.closedBy], [100, 250, 'count']);
  });

  it('keeps one comparison per shadow version, with each side its threshold', () => {
    const window = new DriftWindow(versionProfile(reference, 0.3), { maxEvents: 10, maxDurationMs: 10 }, 0);
    window.comparison('2', 0.7).add(0.5, 0.5); // served says yes (> 0.3), shadow says no (<= 0.7)
    window.comparison('2', 0.7).add(0.8, 0.8);
    const snapshot = window.snapshot(1, 'time').shadows.get('2')!;
    assert.equal(snapshot.compared, 2);
    assert.equal(snapshot.agreed, 1);
    assert.deepEqual(window.shadowVersions(), ['2']);
  });

  it('picks the score output and defaults the threshold', () => {
    const profileOf = versionProfile(reference);
    assert.equal(profileOf.scoreOutput, 'score');
    assert.equal(profileOf.threshold, 0.5);
  });

  it('refuses impossible limits with a config error', () => {
    assert.throws(
      () => checkWindowLimits({ maxEvents: 0, maxDurationMs: -1 }),
      (error: unknown) =>
        error instanceof StreamscoreError &&
        error.code === 'CONFIG_INVALID' &&
        /maxEvents must be an integer >= 1, got 0; maxDurationMs must be a number > 0, got -1/.test(
          error.message,
        ),
    );
  });
});
