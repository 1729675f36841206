import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PredictionCache, rowKey } from '../../src/pipeline/prediction-cache.js';

describe('PredictionCache', () => {
  it('keeps the most recently used rows within its entry bound, counting hits, misses and evictions', () => {
    const cache = new PredictionCache({ maxEntries: 3, maxBytes: 1_000_000, ttlMs: 1_000 });
    for (const key of ['a', 'b', 'c']) cache.set(key, { score: key.charCodeAt(0) });
    assert.deepEqual(cache.get('a'), { score: 97 }); // a is now the most recent: b goes first
    cache.set('d', { score: 100 });
    assert.equal(cache.get('b'), undefined);
    assert.deepEqual(cache.get('c'), { score: 99 });
    assert.equal(cache.size, 3);
    assert.deepEqual(cache.counts, { hits: 2, misses: 1, evictions: 1 });
  });

  it('treats an entry past its time to live as a miss, and stays within its byte bound', () => {
    let now = 0;
    const cache = new PredictionCache({ maxEntries: 100, maxBytes: 2_000, ttlMs: 1_000 }, () => now);
    cache.set('row', { score: 1 });
    now = 1_000;
    assert.deepEqual(cache.get('row'), { score: 1 });
    now = 2_001;
    assert.equal(cache.get('row'), undefined);
    assert.equal(cache.size, 0);
    const wide = 'x'.repeat(600);
    for (let i = 0; i < 10; i += 1) cache.set(`${i}${wide}`, { score: i });
    assert.ok(cache.bytes <= 2_000, String(cache.bytes));
    assert.equal(cache.size, 2);
    cache.set('y'.repeat(5_000), { score: 0 });
    assert.equal(cache.get('y'.repeat(5_000)), undefined, 'a row larger than the bound is not kept');
    cache.clear();
    assert.deepEqual([cache.size, cache.bytes], [0, 0]);
  });

  it('keys rows by their exact float32 values', () => {
    const matrix = new Float32Array([1, 2, 3, 1, 2, 3, 1, 2, 3.0000002]);
    assert.equal(rowKey(matrix, 0, 3), rowKey(matrix, 1, 3));
    assert.notEqual(rowKey(matrix, 0, 3), rowKey(matrix, 2, 3));
    assert.equal(rowKey(matrix, 0, 3).length, 12);
  });
});
