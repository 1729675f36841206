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

  it('finds the longest stretch of a partition with a request waiting and no new prediction', () => {
    // Partition 0: a prediction every 100 ms. Partition 1: event 5, sent at 1,150, waits until 2,000.
    const sentAt = [950, 1_050, 1_150, 1_250, 1_050, 1_150, 2_050];
    const first = Float64Array.from([1_000, 1_100, 1_200, 1_300, 1_100, 2_000, 2_100]);
    const partitionOf = [0, 0, 0, 0, 1, 1, 1];
    assert.deepEqual(longestGap(first, sentAt, partitionOf, 2, { from: 1_500, to: 1_600 }), {
      ms: 850,
      partition: 1,
      from: 1_150,
      to: 2_000,
    });
    // After its last prediction partition 0 has nothing waiting: no gap, however long the silence.
    assert.deepEqual(longestGap(first, sentAt, partitionOf, 2, { from: 2_050, to: 2_500 }), {
      ms: 50,
      partition: 1,
      from: 2_050,
      to: 2_100,
    });
  });

  it('opens no gap while the load generator falls behind', () => {
    // Nothing was sent between 0 and 3,000: the partition had nothing to predict.
    const gap = longestGap(Float64Array.from([10, 3_010]), [0, 3_000], [0, 0], 1, { from: 0, to: 4_000 });
    assert.deepEqual(gap, { ms: 10, partition: 0, from: 0, to: 10 });
  });

  it('does not let a repeat end a gap, and lets a request never predicted wait to the window end', () => {
    const counted = tally(
      [
        { event: 0, at: 0 },
        { event: 1, at: 50 },
        { event: 0, at: 500 }, // a repeat in the middle of partition 0's wait
        { event: 2, at: 1_000 },
      ],
      4,
    );
    const sentAt = [0, 40, 45, 700];
    const partitionOf = [0, 0, 0, 1];
    assert.deepEqual(longestGap(counted.first, sentAt, partitionOf, 2, { from: 0, to: 800 }), {
      ms: 950,
      partition: 0,
      from: 50,
      to: 1_000,
    });
    // Event 3 (partition 1), sent at 700, was never predicted: it waits until the window's end.
    assert.deepEqual(longestGap(counted.first, sentAt, partitionOf, 2, { from: 0, to: 2_000 }), {
      ms: 1_300,
      partition: 1,
      from: 700,
      to: 2_000,
    });
    assert.equal(longestGap(new Float64Array([Number.NaN]), [0], [0], 1, { from: 0, to: 0 }), undefined);
  });

  it('takes latency to the first prediction, for the events due in the window', () => {
    const due = [0, 10, 20, 30, 40];
    const sentAt = [0, 30, 21, 30, 40];
    const first = Float64Array.from([5, 60, 25, Number.NaN, 1_000]);
    const window = { from: 10, to: 40 };
    assert.deepEqual(latencyIn(first, due, due, window), {
      events: 2,
      missing: 1,
      p50_ms: 5,
      p99_ms: 50,
      max_ms: 50,
    });
    // From the send: the same events, without the sender's lag.
    assert.deepEqual(latencyIn(first, sentAt, due, window), {
      events: 2,
      missing: 1,
      p50_ms: 4,
      p99_ms: 30,
      max_ms: 30,
    });
    const none = latencyIn(first, due, due, { from: 100, to: 200 });
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
