import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  JobBounds,
  checkJobName,
  decodeRange,
  defaultJobName,
  encodeRange,
  jobState,
  totals,
  type CommittedOffset,
} from '../../src/backfill/job.js';
import { OffsetLedger } from '../../src/kafka/offsets.js';

const planned = new Map([
  [0, { start: 10n, end: 20n }],
  [1, { start: 0n, end: 0n }],
  [2, { start: 5n, end: 9n }],
]);

describe('backfill job', () => {
  it('derives a stable id from its arguments, and checks ids', () => {
    const args = { topic: 't', model: 'fraud', version: '3', output: 'o', range: ['beginning', undefined] };
    assert.equal(defaultJobName(args), defaultJobName({ ...args }));
    assert.match(defaultJobName(args), /^fraud-v3-[0-9a-f]{10}$/);
    assert.notEqual(defaultJobName(args), defaultJobName({ ...args, output: 'other' }));
    assert.throws(() => checkJobName('bad name'), /is not a job id/);
    assert.throws(() => checkJobName('-x'), /is not a job id/);
    assert.equal(checkJobName('nightly.2026-11_v3'), 'nightly.2026-11_v3');
  });

  it('stores a range in commit metadata and reads back only its own job', () => {
    const text = encodeRange('job-a', { start: 12n, end: 9_007_199_254_740_993n });
    assert.deepEqual(decodeRange(text, 'job-a'), { start: 12n, end: 9_007_199_254_740_993n });
    assert.equal(decodeRange(text, 'job-b'), undefined);
    for (const junk of [
      null,
      '',
      'not json',
      '{"job":"job-a","start":"5","end":"4"}',
      '{"job":"job-a","start":5,"end":9}',
    ]) {
      assert.equal(decodeRange(junk, 'job-a'), undefined, String(junk));
    }
  });

  it('takes the stored range over this run plan, and resumes at the committed offset', () => {
    const committed = new Map<number, CommittedOffset>([
      // The first run fixed partition 0's end at 30 (the topic had grown since): that range stands.
      [0, { offset: 25n, metadata: encodeRange('job', { start: 10n, end: 30n }) }],
      // A commit outside the range is not trusted: read from the start.
      [2, { offset: 100n, metadata: null }],
    ]);
    const states = jobState('job', planned, committed);
    assert.deepEqual(
      states.map(({ partition, range, committed: at, done, finished }) => ({
        partition,
        range,
        at,
        done,
        finished,
      })),
      [
        { partition: 0, range: { start: 10n, end: 30n }, at: 25n, done: 15n, finished: false },
        { partition: 1, range: { start: 0n, end: 0n }, at: undefined, done: 0n, finished: true },
        { partition: 2, range: { start: 5n, end: 9n }, at: undefined, done: 0n, finished: false },
      ],
    );
    assert.deepEqual(totals(states), {
      partitions: 3,
      finishedPartitions: 1,
      total: 24n,
      done: 15n,
      complete: false,
    });
    const finished = jobState(
      'job',
      planned,
      new Map([
        [0, { offset: 20n, metadata: null }],
        [2, { offset: 9n, metadata: null }],
      ]),
    );
    assert.equal(totals(finished).complete, true);
  });

  it('settles once every partition assigned here finished, whatever the order of joins', async () => {
    const bounds = new JobBounds('job', planned, () => Promise.resolve(new Map()));
    let settled = false;
    void bounds.settled.then(() => (settled = true));
    bounds.assigned([]);
    await Promise.resolve();
    assert.equal(settled, false, 'an empty assignment is not a finished one');
    bounds.assigned([0, 2]);
    bounds.finished(0);
    // A rebalance takes partition 0 away and gives 1: its earlier finish no longer counts.
    bounds.assigned([1, 2]);
    bounds.finished(2);
    await Promise.resolve();
    assert.equal(settled, false);
    bounds.finished(1);
    await bounds.settled;
    assert.deepEqual(bounds.progress, { assigned: 2, finished: 2 });
  });

  it('answers the first join from what start-up read, and later joins from a fresh read', async () => {
    let reads = 0;
    const fresh = new Map<number, CommittedOffset>([
      [0, { offset: 18n, metadata: encodeRange('job', { start: 10n, end: 20n }) }],
    ]);
    const startup = new Map<number, CommittedOffset>([
      [0, { offset: 12n, metadata: encodeRange('job', { start: 10n, end: 20n }) }],
    ]);
    const bounds = new JobBounds(
      'job',
      planned,
      () => {
        reads += 1;
        return Promise.resolve(fresh);
      },
      startup,
    );
    assert.deepEqual(bounds.resolveNow([0])?.get(0), { range: { start: 10n, end: 20n }, committed: 12n });
    assert.equal(bounds.resolveNow([0]), undefined, 'only once');
    assert.equal((await bounds.resolve([0])).get(0)?.committed, 18n);
    assert.equal(reads, 1);
  });

  it('gives partitions the plan does not know an empty range, and commits carry the range', async () => {
    const bounds = new JobBounds('job', planned, () => Promise.resolve(new Map()));
    const positions = await bounds.resolve([2, 5]);
    assert.deepEqual(positions.get(2), { range: { start: 5n, end: 9n }, committed: undefined });
    assert.deepEqual(positions.get(5), { range: { start: 0n, end: 0n }, committed: undefined });
    assert.deepEqual(decodeRange(bounds.metadata(2), 'job'), { start: 5n, end: 9n });
  });
});

describe('bounded leases', () => {
  it('commit the start at once, then progress, then the end once read through and finished', () => {
    const ledger = new OffsetLedger();
    const lease = ledger.lease('t', 0);
    lease.bound({ start: 10n, end: 15n }, undefined);
    const commit = () => {
      const offsets = ledger.committable();
      ledger.markCommitted(offsets);
      return offsets.map((o) => o.offset);
    };
    assert.deepEqual(commit(), ['10'], 'the range is pinned by a first commit');
    assert.deepEqual(commit(), []);
    const entries = [10, 11, 13].map((offset) => lease.track(String(offset)));
    entries[0]!.done = true;
    assert.deepEqual(commit(), ['11']);
    entries[2]!.done = true;
    assert.deepEqual(commit(), [], 'never past a record still in flight');
    // Offset 14 was a transaction marker: the fetch passed the end without a record for it.
    assert.equal(lease.markReadThrough(), true);
    assert.equal(lease.markReadThrough(), false);
    assert.equal(lease.finished, false);
    entries[1]!.done = true;
    assert.deepEqual(commit(), ['15'], 'a finished range commits its end, gaps included');
    assert.equal(lease.finished, true);
  });

  it('are finished from the start when empty or already committed to their end', () => {
    const ledger = new OffsetLedger();
    const empty = ledger.lease('t', 0);
    empty.bound({ start: 7n, end: 7n }, undefined);
    assert.equal(empty.readThrough, true);
    const done = ledger.lease('t', 1);
    done.bound({ start: 0n, end: 40n }, 40n);
    assert.equal(done.finished, true);
    const offsets = ledger.committable();
    assert.deepEqual(
      offsets.map((o) => [o.partition, o.offset]),
      [[0, '7']],
      'the empty range commits its end once; the committed one needs nothing',
    );
    ledger.markCommitted(offsets);
    assert.equal(empty.finished, true);
  });

  it('never commit anything for a partition that is not bounded until a record finishes', () => {
    const ledger = new OffsetLedger();
    const lease = ledger.lease('t', 0);
    assert.deepEqual(ledger.committable(), []);
    lease.track('3').done = true;
    assert.deepEqual(
      ledger.committable().map((o) => o.offset),
      ['4'],
    );
  });
});
