import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventGenerator, Random, readFeatureSpecs, sampleFeature } from '../../src/produce/generator.js';

const specs = readFeatureSpecs('training/fraud_features.json');
const names = specs.map((spec) => spec.name);

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

describe('EventGenerator', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const make = (seed: number) =>
      new EventGenerator({ featureNames: names, specs, seed, keys: 10, runId: 'r' });
    const a = make(7);
    const b = make(7);
    const c = make(8);
    const first = a.next(1);
    assert.deepEqual(first, b.next(1));
    assert.notDeepEqual(first.features, c.next(1).features);
    assert.equal(first.request_id, 'r-0');
    assert.equal(a.next(1).request_id, 'r-1');
    assert.match(first.entity_key, /^entity-\d$/);
  });

  it('draws each kind with the moments its spec states', () => {
    const random = new Random(3);
    const n = 20_000;
    const draw = (name: string) => {
      const spec = specs.find((s) => s.name === name)!;
      return Array.from({ length: n }, () => sampleFeature(spec, random));
    };
    assert.ok(Math.abs(mean(draw('tx_count_24h')) - 3) < 0.1, 'poisson mean');
    assert.ok(Math.abs(mean(draw('is_foreign')) - 0.08) < 0.01, 'bernoulli p');
    const hours = draw('hour_of_day');
    assert.equal(Math.min(...hours), 0);
    assert.equal(Math.max(...hours), 23);
    assert.ok(hours.every(Number.isInteger));
    const risk = draw('merchant_risk');
    assert.ok(
      risk.every((v) => v >= 0 && v <= 1),
      'clip',
    );
    const logAmount = draw('amount').map(Math.log);
    assert.ok(Math.abs(mean(logAmount) - 3.6) < 0.05, 'lognormal mu');
  });

  it('draws features missing from the spec as standard normal', () => {
    const generator = new EventGenerator({ featureNames: ['f000'], specs: [], seed: 1, keys: 1, runId: 'h' });
    const values = Array.from({ length: 20_000 }, () => generator.next().features.f000!);
    const m = mean(values);
    const variance = mean(values.map((v) => (v - m) ** 2));
    assert.ok(Math.abs(m) < 0.05 && Math.abs(variance - 1) < 0.05, `mean ${m}, variance ${variance}`);
  });
});
