import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import {
  EventGenerator,
  LabelDrawer,
  Random,
  featureStd,
  labelLogit,
  readFeatureSpecs,
  readLabelSpec,
  sampleFeature,
  type DriftOptions,
} from '../../src/produce/generator.js';

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

  it('injects drift from a given event on: a k-sigma mean shift and a new categorical mix', () => {
    const drift = { fromEvent: 5_000, shifts: { merchant_risk: 0.5, amount: 1 }, mixes: { is_foreign: 0.3 } };
    const generator = new EventGenerator({
      featureNames: names,
      specs,
      seed: 9,
      keys: 10,
      runId: 'd',
      drift,
    });
    const events = Array.from({ length: 25_000 }, () => generator.next());
    const before = events.slice(0, 5_000).map((e) => e.features);
    const after = events.slice(5_000).map((e) => e.features);
    const gap = (name: string) => mean(after.map((f) => f[name]!)) - mean(before.map((f) => f[name]!));
    const risk = specs.find((s) => s.name === 'merchant_risk')!;
    assert.ok(
      Math.abs(gap('merchant_risk') - 0.5 * 0.15) < 0.01,
      `merchant_risk moved ${gap('merchant_risk')}`,
    );
    const amount = specs.find((s) => s.name === 'amount')!;
    assert.ok(Math.abs(gap('amount') / featureStd(amount) - 1) < 0.15, `amount moved ${gap('amount')}`);
    assert.ok(Math.abs(mean(after.map((f) => f.is_foreign!)) - 0.3) < 0.015);
    assert.ok(Math.abs(gap('hour_of_day')) < 0.3, 'untouched features stay put');
    assert.equal(featureStd(risk), 0.15);
  });

  it('drifts slowly (a ramp), widens a spread around its median, and follows a clock', () => {
    const drift = {
      fromEvent: 0,
      shifts: {},
      mixes: {},
      ramps: { merchant_risk: 1e-4 },
      scales: { amount: 1.5 },
    };
    const generator = new EventGenerator({
      featureNames: names,
      specs,
      seed: 11,
      keys: 10,
      runId: 'r',
      drift,
      timeOfDay: { feature: 'hour_of_day', eventsPerHour: 1_000, startHour: 22 },
    });
    const events = Array.from({ length: 20_000 }, () => generator.next().features);
    const risk = (from: number) => mean(events.slice(from, from + 2_000).map((f) => f.merchant_risk!));
    // 1e-4 sigma per event: 1.5 sigma (0.225) between the windows centred on events 1,000 and 16,000,
    // a little less where clipping at 1 bites.
    const moved = risk(15_000) - risk(0);
    assert.ok(moved > 0.19 && moved < 0.24, `merchant_risk moved ${moved}`);
    const amounts = events.map((f) => f.amount!).sort((a, b) => a - b);
    const median = amounts[amounts.length / 2]!;
    assert.ok(Math.abs(Math.log(median) - 3.6) < 0.05, `median amount ${median} stays exp(3.6)`);
    const logs = amounts.map(Math.log);
    const sd = Math.sqrt(mean(logs.map((v) => (v - mean(logs)) ** 2)));
    assert.ok(Math.abs(sd - 1.65) < 0.05, `sigma of ln(amount) ${sd}`);
    assert.deepEqual(
      [0, 999, 1_000, 2_000, 3_000].map((i) => events[i]!.hour_of_day),
      [22, 22, 23, 0, 1],
    );
  });

  it('refuses drift on a feature the model does not use, or a mix on a non-bernoulli feature', () => {
    const make = (drift: DriftOptions) =>
      new EventGenerator({ featureNames: names, specs, seed: 1, keys: 1, runId: 'x', drift });
    assert.throws(() => make({ fromEvent: 0, shifts: { nope: 1 }, mixes: {} }), StreamscoreError);
    assert.throws(() => make({ fromEvent: 0, shifts: {}, mixes: { amount: 0.5 } }), /only bernoulli/);
    assert.throws(
      () => make({ fromEvent: 0, shifts: {}, mixes: {}, scales: { is_foreign: 2 } }),
      /only normal and lognormal/,
    );
  });
});

describe('labels drawn from the spec', () => {
  const spec = readFeatureSpecs('training/fraud_features.json');
  const label = readLabelSpec('training/fraud_features.json')!;
  const draw = (seed: number, n: number) => {
    const events = new EventGenerator({
      featureNames: spec.map((s) => s.name),
      specs: spec,
      seed,
      keys: 10,
      runId: 'labels',
    });
    const labels = new LabelDrawer(label, seed);
    return Array.from({ length: n }, () => labels.draw(events.next(0).features));
  };

  it('computes the logit as train.py does', () => {
    const features = {
      amount: 100,
      account_age_days: 30,
      tx_count_24h: 2,
      distance_from_home_km: 5,
      merchant_risk: 0.2,
      hour_of_day: 13,
      is_foreign: 1,
      card_present: 0,
    };
    const expected =
      -7.3 +
      0.8 * Math.log1p(100) -
      0.5 * Math.log1p(30) +
      0.3 * 2 +
      0.6 * Math.log1p(5) +
      6 * 0.2 -
      0.03 * 13 +
      2 * 1 -
      1.8 * 0;
    assert.ok(Math.abs(labelLogit(label, features) - expected) < 1e-12);
  });

  it('draws about the positive rate the spec yields in training (2.96 %)', () => {
    const truths = draw(3, 50_000);
    const rate = truths.filter((t) => t.label === 1).length / truths.length;
    // Two samples of 50,000 at about 3 %: each has a standard error of 0.08 points.
    assert.ok(Math.abs(rate - 0.0296) < 0.005, `positive rate ${rate}`);
    const meanProbability = truths.reduce((sum, t) => sum + t.probability, 0) / truths.length;
    assert.ok(Math.abs(meanProbability - rate) < 0.004, `mean probability ${meanProbability}, rate ${rate}`);
  });

  it('is the same for a seed, and another for another seed', () => {
    assert.deepEqual(draw(5, 2_000), draw(5, 2_000));
    assert.notDeepEqual(draw(5, 2_000), draw(6, 2_000));
  });

  it('leaves the events of a seed as they are without labels', () => {
    const plain = new EventGenerator({
      featureNames: spec.map((s) => s.name),
      specs: spec,
      seed: 9,
      keys: 10,
      runId: 'x',
    });
    const labelled = new EventGenerator({
      featureNames: spec.map((s) => s.name),
      specs: spec,
      seed: 9,
      keys: 10,
      runId: 'x',
    });
    const labels = new LabelDrawer(label, 9);
    for (let i = 0; i < 100; i += 1) {
      const event = labelled.next(0);
      labels.draw(event.features);
      assert.deepEqual(event, plain.next(0));
    }
  });
});
