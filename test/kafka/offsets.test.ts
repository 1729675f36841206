import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OffsetLedger } from '../../src/kafka/offsets.js';

/** committable() without the lease objects, for comparing. */
function offsets(ledger: OffsetLedger) {
  return ledger.committable().map(({ topic, partition, offset }) => ({ topic, partition, offset }));
}

describe('OffsetLedger', () => {
  it('commits one past the longest finished run, whatever order outcomes arrive in', () => {
    const ledger = new OffsetLedger();
    const entries = ['10', '11', '12', '13'].map((offset) => ledger.lease('t', 0).track(offset));
    assert.deepEqual(offsets(ledger), []);
    entries[1]!.done = true;
    entries[2]!.done = true;
    assert.deepEqual(offsets(ledger), [], 'must not pass 10, still in flight');
    entries[0]!.done = true;
    assert.deepEqual(offsets(ledger), [{ topic: 't', partition: 0, offset: '13' }]);
  });

  it('handles gaps in offsets and large offsets', () => {
    const ledger = new OffsetLedger();
    const a = ledger.lease('t', 1).track('9007199254740993');
    const b = ledger.lease('t', 1).track('9007199254740999');
    a.done = true;
    b.done = true;
    assert.deepEqual(offsets(ledger), [{ topic: 't', partition: 1, offset: '9007199254741000' }]);
  });

  it('reports an offset once until it moves again', () => {
    const ledger = new OffsetLedger();
    const a = ledger.lease('t', 0).track('0');
    a.done = true;
    ledger.markCommitted(ledger.committable());
    assert.deepEqual(offsets(ledger), []);
    const b = ledger.lease('t', 0).track('1');
    b.done = true;
    assert.deepEqual(offsets(ledger), [{ topic: 't', partition: 0, offset: '2' }]);
  });

  it('keeps partitions apart and counts what is in flight', () => {
    const ledger = new OffsetLedger();
    const p0 = ledger.lease('t', 0).track('5');
    ledger.lease('t', 1).track('7');
    p0.done = true;
    assert.deepEqual(offsets(ledger), [{ topic: 't', partition: 0, offset: '6' }]);
    assert.equal(ledger.inFlight, 1);
  });

  it('a new assignment revokes the partitions it does not keep; their records no longer move commits', () => {
    const ledger = new OffsetLedger();
    const lost = ledger.lease('t', 0);
    const kept = ledger.lease('t', 1);
    const lostEntry = lost.track('3');
    const keptEntry = kept.track('8');
    const revoked = ledger.assign({ t: [1, 2] }, true);
    assert.deepEqual(revoked, [lost]);
    assert.equal(lost.revoked, true);
    assert.equal(kept.revoked, false);
    assert.equal(ledger.lease('t', 1), kept, 'a kept partition keeps its lease');
    lostEntry.done = true;
    keptEntry.done = true;
    assert.deepEqual(offsets(ledger), [{ topic: 't', partition: 1, offset: '9' }]);
    assert.notEqual(ledger.lease('t', 0), lost, 'a partition that comes back gets a fresh lease');
  });

  it('revokes everything when the replica came back as a new member', () => {
    const ledger = new OffsetLedger();
    const lease = ledger.lease('t', 0);
    lease.track('1');
    assert.deepEqual(ledger.assign({ t: [0] }, false), [lease]);
    assert.equal(ledger.inFlight, 0);
  });

  it('knows which offsets a lease already took in (the group hands them out again on rejoin)', () => {
    const lease = new OffsetLedger().lease('t', 0);
    assert.equal(lease.alreadyTaken('0'), false);
    lease.track('41');
    assert.equal(lease.alreadyTaken('40'), true);
    assert.equal(lease.alreadyTaken('41'), true);
    assert.equal(lease.alreadyTaken('42'), false);
  });

  it('stays correct over many records (the finished prefix is compacted)', () => {
    const ledger = new OffsetLedger();
    const entries = Array.from({ length: 5_000 }, (_, i) => ledger.lease('t', 0).track(String(i)));
    for (const entry of entries.slice(0, 4_000)) entry.done = true;
    assert.deepEqual(offsets(ledger), [{ topic: 't', partition: 0, offset: '4000' }]);
    for (const entry of entries.slice(4_000)) entry.done = true;
    assert.deepEqual(offsets(ledger), [{ topic: 't', partition: 0, offset: '5000' }]);
    assert.equal(ledger.inFlight, 0);
  });
});
