import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OffsetLedger } from '../../src/kafka/offsets.js';

describe('OffsetLedger', () => {
  it('commits one past the longest finished run, whatever order outcomes arrive in', () => {
    const ledger = new OffsetLedger();
    const entries = ['10', '11', '12', '13'].map((offset) => ledger.track('t', 0, offset));
    assert.deepEqual(ledger.committable(), []);
    entries[1]!.done = true;
    entries[2]!.done = true;
    assert.deepEqual(ledger.committable(), [], 'must not pass 10, still in flight');
    entries[0]!.done = true;
    assert.deepEqual(ledger.committable(), [{ topic: 't', partition: 0, offset: '13' }]);
  });

  it('handles gaps in offsets and large offsets', () => {
    const ledger = new OffsetLedger();
    const a = ledger.track('t', 1, '9007199254740993');
    const b = ledger.track('t', 1, '9007199254740999');
    a.done = true;
    b.done = true;
    assert.deepEqual(ledger.committable(), [{ topic: 't', partition: 1, offset: '9007199254741000' }]);
  });

  it('reports an offset once until it moves again', () => {
    const ledger = new OffsetLedger();
    const a = ledger.track('t', 0, '0');
    a.done = true;
    const first = ledger.committable();
    ledger.markCommitted(first);
    assert.deepEqual(ledger.committable(), []);
    const b = ledger.track('t', 0, '1');
    b.done = true;
    assert.deepEqual(ledger.committable(), [{ topic: 't', partition: 0, offset: '2' }]);
  });

  it('keeps partitions apart and counts what is in flight', () => {
    const ledger = new OffsetLedger();
    const p0 = ledger.track('t', 0, '5');
    ledger.track('t', 1, '7');
    p0.done = true;
    assert.deepEqual(ledger.committable(), [{ topic: 't', partition: 0, offset: '6' }]);
    assert.equal(ledger.inFlight, 1);
  });

  it('after reset(), records of the old generation no longer move commits', () => {
    const ledger = new OffsetLedger();
    const old = ledger.track('t', 0, '3');
    ledger.reset();
    old.done = true;
    assert.deepEqual(ledger.committable(), []);
    assert.equal(ledger.inFlight, 0);
  });

  it('stays correct over many records (the finished prefix is compacted)', () => {
    const ledger = new OffsetLedger();
    const entries = Array.from({ length: 5_000 }, (_, i) => ledger.track('t', 0, String(i)));
    for (const entry of entries.slice(0, 4_000)) entry.done = true;
    assert.deepEqual(ledger.committable(), [{ topic: 't', partition: 0, offset: '4000' }]);
    for (const entry of entries.slice(4_000)) entry.done = true;
    assert.deepEqual(ledger.committable(), [{ topic: 't', partition: 0, offset: '5000' }]);
    assert.equal(ledger.inFlight, 0);
  });
});
