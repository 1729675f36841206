import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgreementAccumulator, decision } from '../../src/drift/agreement.js';
import { ExpiringJoin } from '../../src/drift/join.js';
import { Random } from '../../src/produce/generator.js';

describe('AgreementAccumulator', () => {
  it('gives agreement 1, mean difference 0 and correlation 1 for identical scores', () => {
    const random = new Random(1);
    const accumulator = new AgreementAccumulator(0.5, 0.5);
    for (let i = 0; i < 5_000; i += 1) {
      const score = Math.fround(random.uniform() ** 3);
      accumulator.add(score, score);
    }
    const snapshot = accumulator.snapshot();
    assert.equal(snapshot.compared, 5_000);
    assert.equal(snapshot.agreement, 1);
    assert.equal(snapshot.meanAbsDiff, 0);
    assert.ok(Math.abs(snapshot.correlation! - 1) < 1e-12, `correlation ${snapshot.correlation}`);
  });

  it('equals the two-pass computation on different scores', () => {
    const random = new Random(2);
    const served: number[] = [];
    const shadow: number[] = [];
    const accumulator = new AgreementAccumulator(0.4, 0.6);
    for (let i = 0; i < 3_000; i += 1) {
      const x = random.uniform();
      const y = Math.min(1, Math.max(0, x + 0.2 * random.normal()));
      served.push(x);
      shadow.push(y);
      accumulator.add(x, y);
    }
    const n = served.length;
    const agreed = served.filter((x, i) => decision(x, 0.4) === decision(shadow[i]!, 0.6)).length;
    const mad = served.reduce((s, x, i) => s + Math.abs(x - shadow[i]!), 0) / n;
    const mx = served.reduce((s, x) => s + x, 0) / n;
    const my = shadow.reduce((s, y) => s + y, 0) / n;
    let sxy = 0;
    let sxx = 0;
    let syy = 0;
    for (let i = 0; i < n; i += 1) {
      sxy += (served[i]! - mx) * (shadow[i]! - my);
      sxx += (served[i]! - mx) ** 2;
      syy += (shadow[i]! - my) ** 2;
    }
    const snapshot = accumulator.snapshot();
    assert.equal(snapshot.agreed, agreed);
    assert.equal(snapshot.agreement, agreed / n);
    assert.ok(Math.abs(snapshot.meanAbsDiff! - mad) < 1e-12);
    assert.ok(Math.abs(snapshot.correlation! - sxy / Math.sqrt(sxx * syy)) < 1e-12);
    assert.ok(snapshot.agreement < 1 && snapshot.agreement > 0.5);
  });

  it('decides strictly above the threshold, and counts missing and one-sided records apart', () => {
    assert.equal(decision(0.5, 0.5), false);
    assert.equal(decision(0.5000001, 0.5), true);
    const accumulator = new AgreementAccumulator(0.5, 0.5);
    accumulator.add(undefined, 0.2);
    accumulator.add(0.2, Number.NaN);
    accumulator.add(0.3, 0.3);
    accumulator.countServedOnly();
    accumulator.countShadowOnly();
    accumulator.countShadowOnly();
    accumulator.countEvicted();
    const snapshot = accumulator.snapshot();
    assert.deepEqual(
      [snapshot.compared, snapshot.missing, snapshot.servedOnly, snapshot.shadowOnly, snapshot.evicted],
      [1, 2, 1, 2, 1],
    );
    assert.equal(snapshot.correlation, null, 'one record has no correlation');
    assert.equal(new AgreementAccumulator(0.5, 0.5).snapshot().agreement, null);
  });
});

describe('ExpiringJoin', () => {
  it('settles entries once their time is up, oldest first', () => {
    const expired: string[] = [];
    const join = new ExpiringJoin<{ n: number }>({
      ttlMs: 100,
      maxEntries: 10,
      onExpire: (key) => expired.push(key),
      onEvict: () => assert.fail('nothing is evicted'),
    });
    join.entry('a', 0, () => ({ n: 1 }));
    join.entry('b', 50, () => ({ n: 2 }));
    assert.equal(join.entry('a', 60, () => ({ n: 99 })).n, 1, 'an existing entry is returned');
    join.expire(99);
    assert.deepEqual(expired, []);
    join.expire(100);
    assert.deepEqual(expired, ['a']);
    join.expireAll();
    assert.deepEqual(expired, ['a', 'b']);
    assert.equal(join.size, 0);
  });

  it('stays in insertion order through long runs of expiry', () => {
    const expired: number[] = [];
    const join = new ExpiringJoin<number>({
      ttlMs: 1_000,
      maxEntries: 100_000,
      onExpire: (_key, value) => expired.push(value),
      onEvict: () => assert.fail('nothing is evicted'),
    });
    for (let t = 0; t < 10_000; t += 1) {
      join.entry(`k${t}`, t, () => t);
      join.expire(t);
      assert.equal(join.size, Math.min(t + 1, 1_000));
    }
    assert.deepEqual(
      expired,
      Array.from({ length: 9_000 }, (_, i) => i),
    );
    assert.equal(
      join.entry('k9999', 10_000, () => -1),
      9_999,
      'live entries are still found',
    );
  });

  it('evicts the oldest entry when full, and counts it', () => {
    const evicted: string[] = [];
    const join = new ExpiringJoin<number>({
      ttlMs: 1_000,
      maxEntries: 2,
      onExpire: () => undefined,
      onEvict: (key) => evicted.push(key),
    });
    for (const key of ['a', 'b', 'c', 'd']) join.entry(key, 0, () => 0);
    assert.deepEqual(evicted, ['a', 'b']);
    assert.equal(join.size, 2);
    assert.equal(join.evictions, 2);
    assert.throws(
      () => new ExpiringJoin({ ttlMs: 1, maxEntries: 0, onExpire() {}, onEvict() {} }),
      RangeError,
    );
  });
});
