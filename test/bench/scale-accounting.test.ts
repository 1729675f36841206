import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { latencyIn, longestGap, repeatsIn, spread, tally } from '../../bench/scale-accounting.js';

describe('scale accounting (bench:scale)', () => {
  it('keeps the first prediction of each event and counts every later one as a repeat', () => {
    const counted = tally(
      [
        { event: 0, at: 100 },
        { event: 1, at: 110 },
        { event: 0, at: 300 },
        { event: 0, at: 400 },
        // A fetch handed over after a later one: its earlier stamp is the first prediction.
        { event: 2, at: 500 },
        { event: 2, at: 450 },
      ],
      4,
    );
    assert.deepEqual([...counted.first], [100, 110, 450, Number.NaN]);
    assert.deepEqual(
      counted.repeats.map((r) => [r.event, r.at]),
      [
        [0, 300],
        [0, 400],
        [2, 500],
      ],
    );
    assert.equal(counted.missing, 1);
    assert.throws(() => tally([{ event: 4, at: 1 }], 4), RangeError);
  });

  it('finds the longest stretch of a partition without a new prediction around a window', () => {
    // Partition 0: steady every 100 ms. Partition 1: a 900 ms hole from 1,100 to 2,000.
    const first = Float64Array.from([1_000, 1_100, 1_200, 1_300, 1_100, 2_000, 2_100]);
    const partitionOf = [0, 0, 0, 0, 1, 1, 1];
    assert.deepEqual(longestGap(first, partitionOf, 2, { from: 1_500, to: 1_600 }), {
      ms: 900,
      partition: 1,
      from: 1_100,
      to: 2_000,
    });
    // A window after the hole sees only the partitions' ordinary spacing, and partition 0's silence
    // after its last prediction up to the window's end.
    assert.deepEqual(longestGap(first, partitionOf, 2, { from: 2_050, to: 2_500 }), {
      ms: 1_200,
      partition: 0,
      from: 1_300,
      to: 2_500,
    });
  });

  it('does not let a repeat end a gap, and counts a partition never predicted as one gap', () => {
    const counted = tally(
      [
        { event: 0, at: 0 },
        { event: 1, at: 50 },
        { event: 0, at: 500 }, // a repeat in the middle of partition 0's hole
        { event: 2, at: 1_000 },
      ],
      4,
    );
    const partitionOf = [0, 0, 0, 1];
    const gap = longestGap(counted.first, partitionOf, 2, { from: 0, to: 800 });
    assert.deepEqual(gap, { ms: 950, partition: 0, from: 50, to: 1_000 });
    // Partition 1 (event 3) was never predicted: the whole window is its gap, longer than 950 here.
    assert.deepEqual(longestGap(counted.first, partitionOf, 2, { from: 0, to: 2_000 }), {
      ms: 2_000,
      partition: 1,
      from: 0,
      to: 2_000,
    });
    assert.equal(longestGap(new Float64Array([Number.NaN]), [0], 1, { from: 0, to: 0 }), undefined);
  });

  it('takes latency from event_time to the first prediction, for the events due in the window', () => {
    const eventTime = [0, 10, 20, 30, 40];
    const first = Float64Array.from([5, 60, 25, Number.NaN, 1_000]);
    const window = latencyIn(first, eventTime, { from: 10, to: 40 });
    assert.deepEqual(window, { events: 2, missing: 1, p50_ms: 5, p99_ms: 50, max_ms: 50 });
    const none = latencyIn(first, eventTime, { from: 100, to: 200 });
    assert.equal(none.events, 0);
    assert.ok(Number.isNaN(none.p99_ms) && Number.isNaN(none.max_ms));
  });

  it('counts repeats by when they arrived', () => {
    const repeats = [
      { event: 0, at: 99 },
      { event: 1, at: 100 },
      { event: 2, at: 199 },
      { event: 3, at: 200 },
    ];
    assert.equal(repeatsIn(repeats, { from: 100, to: 200 }), 2);
  });

  it('gives the median and the worst over runs, leaving out runs with nothing measured', () => {
    assert.deepEqual(spread([30, 10, 20]), { median: 20, worst: 30, runs: [30, 10, 20] });
    assert.deepEqual(spread([4, Number.NaN, 1, 2, 3]).median, 2.5);
    const empty = spread([Number.NaN]);
    assert.ok(Number.isNaN(empty.median) && Number.isNaN(empty.worst));
  });
});
