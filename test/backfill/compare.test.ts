import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplayComparison, samplePoint, scoreOf } from '../../src/backfill/compare.js';
import type { Prediction } from '../../src/codec/predictions.js';
import { Random } from '../../src/produce/generator.js';

/** A seeded uniform generator, so a failure can be replayed. */
function random(seed: number): () => number {
  const source = new Random(seed);
  return () => source.uniform();
}

function prediction(id: string, version: string, route: string, score: number, time: number): Prediction {
  return {
    request_id: id,
    entity_key: 'k',
    model_name: 'fraud',
    model_version: version,
    route,
    outputs: { score, label: score > 0.5 ? 1 : 0 },
    event_time: time,
    scored_at: time,
  };
}

describe('replay comparison', () => {
  it('matches an offline computation over the same events, per served version', () => {
    const next = random(7);
    const backfilled: Prediction[] = [];
    const served: Prediction[] = [];
    for (let i = 0; i < 3_000; i += 1) {
      const id = `r${i}`;
      const time = 1_000 + i;
      const mine = next();
      if (i % 100 !== 0) backfilled.push(prediction(id, '3', 'backfill', mine, time));
      // A canary served 20% of events; 1% of events were never served.
      if (i % 97 !== 0) {
        const version = i % 5 === 0 ? '2' : '1';
        served.push(
          prediction(
            id,
            version,
            i % 5 === 0 ? 'canary' : 'primary',
            Math.min(1, Math.max(0, mine + (next() - 0.5) * 0.4)),
            time,
          ),
        );
      }
    }
    // At-least-once: some served predictions were written twice.
    served.push(...served.slice(0, 25));
    // Predictions that are not the backfill's are ignored on its side.
    backfilled.push(
      prediction('r1', '1', 'primary', 0.99, 1_001),
      prediction('x', '3', 'primary', 0.99, 1_001),
    );
    const thresholds: Record<string, number> = { '1': 0.4, '3': 0.6 };
    const comparison = new ReplayComparison({
      model: 'fraud',
      version: '3',
      threshold: 0.6,
      sampleRate: 1,
      thresholdOf: (version) => thresholds[version],
    });
    for (const p of backfilled) comparison.addBackfilled(p);
    for (const p of served) comparison.addServed(p);
    const report = comparison.report();

    // Offline: a plain join over maps, two-pass statistics.
    const mine = new Map(
      backfilled
        .filter((p) => p.route === 'backfill' && p.model_version === '3')
        .map((p) => [p.request_id, p.outputs.score!]),
    );
    const firstServed = new Map<string, Prediction>();
    for (const p of served) if (!firstServed.has(p.request_id)) firstServed.set(p.request_id, p);
    for (const version of ['1', '2']) {
      const pairs = [...firstServed.values()]
        .filter((p) => p.model_version === version && mine.has(p.request_id))
        .map((p) => [p.outputs.score!, mine.get(p.request_id)!] as const);
      const servedThreshold = thresholds[version] ?? 0.6;
      const agreed = pairs.filter(([a, b]) => a > servedThreshold === b > 0.6).length;
      const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
      const ma = mean(pairs.map(([a]) => a));
      const mb = mean(pairs.map(([, b]) => b));
      const cov = pairs.reduce((s, [a, b]) => s + (a - ma) * (b - mb), 0);
      const va = pairs.reduce((s, [a]) => s + (a - ma) ** 2, 0);
      const vb = pairs.reduce((s, [, b]) => s + (b - mb) ** 2, 0);
      const servedOnly = [...firstServed.values()].filter(
        (p) => p.model_version === version && !mine.has(p.request_id),
      ).length;
      const figures = report.served[version]!;
      assert.equal(figures.compared, pairs.length, version);
      assert.equal(figures.agreed, agreed, version);
      assert.ok(Math.abs(figures.meanAbsDiff! - mean(pairs.map(([a, b]) => Math.abs(a - b)))) < 1e-12);
      assert.ok(Math.abs(figures.correlation! - cov / Math.sqrt(va * vb)) < 1e-9);
      assert.equal(figures.servedOnly, servedOnly, version);
      assert.equal(figures.servedThreshold, servedThreshold);
      assert.equal(figures.thresholdFrom, version === '1' ? 'model.json' : 'backfill version');
    }
    assert.equal(report.backfilled, mine.size);
    assert.equal(report.backfillOnly, [...mine.keys()].filter((id) => !firstServed.has(id)).length);
    assert.equal(report.servedRepeats, 25);
  });

  it('samples the same request ids on both sides, at about the rate asked', () => {
    const comparison = new ReplayComparison({
      model: 'fraud',
      version: '3',
      threshold: 0.5,
      sampleRate: 0.25,
      thresholdOf: () => 0.5,
    });
    for (let i = 0; i < 20_000; i += 1) {
      comparison.addBackfilled(prediction(`req-${i}`, '3', 'backfill', 0.3, i));
      comparison.addServed(prediction(`req-${i}`, '1', 'primary', 0.3, i));
    }
    const report = comparison.report();
    assert.ok(Math.abs(report.backfilled / 20_000 - 0.25) < 0.02, String(report.backfilled));
    assert.equal(report.served['1']!.compared, report.backfilled);
    assert.equal(report.backfillOnly, 0);
    assert.equal(report.served['1']!.servedOnly, 0);
    assert.equal(samplePoint('req-1'), samplePoint('req-1'));
  });

  it('takes the score output, or the only output', () => {
    assert.equal(scoreOf({ score: 0.2, label: 0 }), 0.2);
    assert.equal(scoreOf({ value: 3 }), 3);
    assert.equal(scoreOf({ a: 1, b: 2 }), undefined);
  });
});
