import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PendingLimit } from '../../src/batching/capacity.js';

describe('PendingLimit', () => {
  it('holds waiters until enough is released, then lets them all go', async () => {
    const limit = new PendingLimit(4);
    limit.acquire(3);
    assert.equal(limit.hasCapacity(), true);
    limit.acquire(1);
    assert.equal(limit.hasCapacity(), false);
    let freed = 0;
    const waiting = [limit.waitForCapacity(), limit.waitForCapacity()].map((p) => p.then(() => (freed += 1)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(freed, 0, 'capacity came back before anything was released');
    limit.release(1);
    await Promise.all(waiting);
    assert.equal(freed, 2);
    assert.equal(limit.pending, 3);
  });

  it('lets waiters go at close(), and refuses releasing more than was acquired', async () => {
    const limit = new PendingLimit(1);
    limit.acquire(1);
    const waiting = limit.waitForCapacity();
    limit.close();
    await waiting;
    assert.throws(() => limit.release(2), /released 1 more than acquired/);
    assert.throws(() => new PendingLimit(0), RangeError);
  });
});
