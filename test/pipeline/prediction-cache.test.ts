import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PredictionCache, rowHash } from '../../src/pipeline/prediction-cache.js';

/** A one-row matrix of `width` values from `seed`, and its hash. */
function row(seed: number, width = 4): { matrix: Float32Array; hash: number } {
  const matrix = Float32Array.from({ length: width }, (_, i) => seed * 10 + i);
  return { matrix, hash: rowHash(matrix, 0, width) };
}

describe('PredictionCache', () => {
  it('keeps the most recently used rows within its entry bound, counting hits, misses and evictions', () => {
    const cache = new PredictionCache({ maxEntries: 3, maxBytes: 1_000_000, ttlMs: 1_000 });
    const [a, b, c, d] = [1, 2, 3, 4].map((seed) => row(seed));
    for (const [i, r] of [a!, b!, c!].entries()) cache.set(r.hash, r.matrix.slice(), { score: i });
    assert.deepEqual(cache.get(a!.hash, a!.matrix, 0, 4), { score: 0 }); // a is now the most recent
    cache.set(d!.hash, d!.matrix.slice(), { score: 3 });
    assert.equal(cache.get(b!.hash, b!.matrix, 0, 4), undefined, 'b, the least recently used, went');
    assert.deepEqual(cache.get(c!.hash, c!.matrix, 0, 4), { score: 2 });
    assert.equal(cache.size, 3);
    assert.deepEqual(cache.counts, { hits: 2, misses: 1, evictions: 1 });
  });

  it('never answers for a different row under the same hash', () => {
    const cache = new PredictionCache({ maxEntries: 10, maxBytes: 1_000_000, ttlMs: 1_000 });
    const a = row(1);
    const b = row(2);
    cache.set(a.hash, a.matrix.slice(), { score: 1 });
    // As if b's hash collided with a's: the values differ, so it is a miss.
    assert.equal(cache.get(a.hash, b.matrix, 0, 4), undefined);
    assert.equal(cache.get(a.hash, row(1, 5).matrix, 0, 5), undefined, 'a wider row is another row');
    assert.deepEqual(cache.get(a.hash, a.matrix, 0, 4), { score: 1 });
  });

  it('treats an entry past its time to live as a miss, and stays within its byte bound', () => {
    let now = 0;
    const cache = new PredictionCache({ maxEntries: 100, maxBytes: 3_000, ttlMs: 1_000 }, () => now);
    const a = row(1);
    cache.set(a.hash, a.matrix.slice(), { score: 1 });
    now = 1_000;
    assert.deepEqual(cache.get(a.hash, a.matrix, 0, 4), { score: 1 });
    now = 2_001;
    assert.equal(cache.get(a.hash, a.matrix, 0, 4), undefined);
    assert.equal(cache.size, 0);
    for (let seed = 0; seed < 10; seed += 1) {
      const wide = row(seed, 256);
      cache.set(wide.hash, wide.matrix, { score: seed });
    }
    assert.ok(cache.bytes <= 3_000, String(cache.bytes));
    assert.equal(cache.size, 2);
    const huge = row(0, 1_000);
    cache.set(huge.hash, huge.matrix, { score: 0 });
    assert.equal(
      cache.get(huge.hash, huge.matrix, 0, 1_000),
      undefined,
      'a row larger than the bound is not kept',
    );
    cache.clear();
    assert.deepEqual([cache.size, cache.bytes], [0, 0]);
  });

  it('hashes rows by their exact float32 bits, wherever they sit in a matrix', () => {
    const matrix = new Float32Array([1, 2, 3, 1, 2, 3, 1, 2, 3.0000002, -0, 0, 0]);
    assert.equal(rowHash(matrix, 0, 3), rowHash(matrix, 1, 3));
    assert.notEqual(rowHash(matrix, 0, 3), rowHash(matrix, 2, 3));
    assert.ok(Number.isSafeInteger(rowHash(matrix, 3, 3)));
    const seen = new Set<number>();
    const many = Float32Array.from({ length: 50_000 * 8 }, (_, i) => Math.fround(Math.sin(i) * 1_000));
    for (let r = 0; r < 50_000; r += 1) seen.add(rowHash(many, r, 8));
    assert.equal(seen.size, 50_000, 'no collisions among 50,000 distinct rows');
  });
});
