import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MicroBatcher } from '../../src/batching/batcher.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('MicroBatcher', () => {
  it('cuts a batch as soon as it holds maxRows, before the linger expires', async () => {
    const batcher = new MicroBatcher<number>({ maxRows: 3, lingerMs: 60_000 });
    for (const n of [1, 2, 3, 4]) batcher.add(n);
    assert.deepEqual(await batcher.next(), [1, 2, 3]);
    assert.equal(batcher.queued, 1);
    batcher.close();
    assert.deepEqual(await batcher.next(), [4]);
    assert.equal(await batcher.next(), undefined);
  });

  it('hands out a partial batch once the linger expires', async () => {
    const batcher = new MicroBatcher<string>({ maxRows: 100, lingerMs: 30 });
    const started = performance.now();
    batcher.add('a');
    batcher.add('b');
    const batch = await batcher.next();
    const waited = performance.now() - started;
    assert.deepEqual(batch, ['a', 'b']);
    assert.ok(waited >= 25, `handed out after ${waited} ms, before the 30 ms linger`);
  });

  it('keeps filling a due batch while the consumer is busy, up to maxRows', async () => {
    const batcher = new MicroBatcher<number>({ maxRows: 5, lingerMs: 5 });
    batcher.add(1);
    await sleep(20); // due now, but nobody asked yet
    batcher.add(2);
    batcher.add(3);
    assert.deepEqual(await batcher.next(), [1, 2, 3]);
  });

  it('with lingerMs 0 hands out whatever is there at once', async () => {
    const batcher = new MicroBatcher<number>({ maxRows: 10, lingerMs: 0 });
    const pending = batcher.next();
    batcher.add(7);
    assert.deepEqual(await pending, [7]);
  });

  it('with lingerMs 0 gives a waiting consumer everything added before the adder yields', async () => {
    const batcher = new MicroBatcher<number>({ maxRows: 3, lingerMs: 0 });
    const pending = batcher.next();
    for (const n of [1, 2, 3, 4, 5]) batcher.add(n); // one synchronous run, like a decoded slice
    assert.deepEqual(await pending, [1, 2, 3]);
    assert.deepEqual(await batcher.next(), [4, 5]);
    const later = batcher.next();
    await sleep(1);
    batcher.add(6);
    batcher.add(7);
    assert.deepEqual(await later, [6, 7]);
  });

  it('keeps the order items were added in, across batches', async () => {
    const batcher = new MicroBatcher<{ partition: number; offset: number }>({
      maxRows: 7,
      lingerMs: 1,
    });
    const seen: { partition: number; offset: number }[] = [];
    const consumer = (async () => {
      for (;;) {
        const batch = await batcher.next();
        if (batch === undefined) return;
        seen.push(...batch);
        await sleep(Math.random() * 3);
      }
    })();
    for (let offset = 0; offset < 200; offset += 1) {
      batcher.add({ partition: offset % 3, offset });
      if (offset % 17 === 0) await sleep(2);
    }
    batcher.close();
    await consumer;
    assert.equal(seen.length, 200);
    for (const partition of [0, 1, 2]) {
      const offsets = seen.filter((item) => item.partition === partition).map((item) => item.offset);
      assert.deepEqual(
        offsets,
        [...offsets].sort((a, b) => a - b),
        `partition ${partition} out of order`,
      );
    }
  });

  it('refuses bad options', () => {
    assert.throws(() => new MicroBatcher({ maxRows: 0, lingerMs: 0 }), RangeError);
    assert.throws(() => new MicroBatcher({ maxRows: 1, lingerMs: -1 }), RangeError);
  });

  it('close() hands out the rest, then ends a waiting next()', async () => {
    const batcher = new MicroBatcher<number>({ maxRows: 10, lingerMs: 60_000 });
    batcher.add(1);
    batcher.close();
    assert.deepEqual(await batcher.next(), [1]);
    const waiting = batcher.next();
    assert.equal(await waiting, undefined);
    assert.throws(() => batcher.add(2), /after close/);
  });
});
