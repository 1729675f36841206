import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import avro from 'avsc';
import { Registry } from 'prom-client';
import { createDriftMetrics, recordReport } from '../../src/drift/metrics.js';
import { DriftMonitor, type SkipReason } from '../../src/drift/monitor.js';
import { OutcomeJoin, labelOf } from '../../src/drift/outcomes.js';
import { parseReference } from '../../src/drift/reference.js';
import { qualitySnapshot } from '../../src/drift/report.js';
import { versionProfile } from '../../src/drift/window.js';
import { ManualClock } from './simulator.js';

function recorder() {
  const matched: string[] = [];
  const unmatched: string[] = [];
  const orphans: string[] = [];
  return {
    matched,
    unmatched,
    orphans,
    callbacks: {
      onMatch: (key: string, score: number, label: 0 | 1) => matched.push(`${key} ${score} ${label}`),
      onUnmatched: (key: string) => unmatched.push(key),
      onOrphan: (requestId: string) => orphans.push(requestId),
    },
  };
}

describe('outcome join', () => {
  it('matches in either order, once per version', () => {
    const r = recorder();
    const join = new OutcomeJoin({ ttlMs: 1_000, maxEntries: 10, ...r.callbacks });
    join.prediction('a', 'm/1', 0.9, 0);
    assert.equal(join.outcome('a', 1, 10), true);
    assert.equal(join.outcome('b', 0, 20), true);
    join.prediction('b', 'm/1', 0.2, 30);
    join.prediction('b', 'm/2', 0.3, 30);
    assert.equal(join.prediction('b', 'm/2', 0.3, 40), false, 'a redelivered score');
    assert.equal(join.outcome('a', 1, 50), false, 'a redelivered outcome');
    assert.deepEqual(r.matched, ['m/1 0.9 1', 'm/1 0.2 0', 'm/2 0.3 0']);
    join.expireAll();
    assert.deepEqual(r.unmatched, []);
    assert.deepEqual(r.orphans, []);
  });

  it('counts a prediction whose outcome comes after the join time as unmatched, and the outcome as orphaned', () => {
    const r = recorder();
    const join = new OutcomeJoin({ ttlMs: 1_000, maxEntries: 10, ...r.callbacks });
    join.prediction('late', 'm/1', 0.7, 0);
    join.expire(999);
    assert.deepEqual(r.unmatched, [], 'still within its time');
    join.expire(1_000);
    assert.deepEqual(r.unmatched, ['m/1']);
    join.outcome('late', 1, 1_500);
    join.expire(2_500);
    assert.deepEqual(r.matched, [], 'an expired prediction is not matched');
    assert.deepEqual(r.orphans, ['late']);
  });

  it('holds at most maxEntries request ids, settling the oldest first', () => {
    const r = recorder();
    const join = new OutcomeJoin({ ttlMs: 60_000, maxEntries: 3, ...r.callbacks });
    for (let i = 0; i < 5; i += 1) join.prediction(`r${i}`, 'm/1', 0.5, i);
    assert.equal(join.size, 3);
    assert.equal(join.evictions, 2);
    assert.deepEqual(r.unmatched, ['m/1', 'm/1']);
    join.outcome('r0', 1, 10); // evicted: it cannot match any more, and takes r2's place
    join.outcome('r4', 0, 10);
    assert.deepEqual(r.matched, ['m/1 0.5 0']);
    assert.equal(join.size, 3);
    assert.equal(join.evictions, 3);
  });

  it('reads 0 and 1 as labels and nothing else', () => {
    assert.equal(labelOf(0), 0);
    assert.equal(labelOf(1), 1);
    assert.equal(labelOf(0.5), undefined);
    assert.equal(labelOf(Number.NaN), undefined);
  });
});

describe('drift monitor with outcomes', () => {
  const profile = (counts: number[], edges: number[]) => ({
    count: counts.reduce((a, b) => a + b, 0),
    mean: 0,
    std: 1,
    min: -1,
    max: 1,
    edges,
    counts,
  });
  const reference = parseReference(
    {
      name: 'm',
      version: '1',
      features: { a: profile([50, 50], [0]) },
      outputs: { score: profile([50, 50], [0.5]) },
    },
    'm/1',
  );
  const prediction = (id: number, score: number) => ({
    request_id: `r${id}`,
    model_name: 'm',
    model_version: '1',
    outputs: { score },
  });
  const outcome = (id: number, observed: number) => ({ request_id: `r${id}`, observed, observed_at: 0 });

  it('reports the quality of the predictions settled in the window', () => {
    const clock = new ManualClock(0);
    const skips: SkipReason[] = [];
    const monitor = new DriftMonitor({
      profiles: [versionProfile(reference, 0.5)],
      window: { maxEvents: 1_000, maxDurationMs: 600_000 },
      join: { ttlMs: 1_000, maxEntries: 1_000 },
      outcomes: { ttlMs: 60_000, maxEntries: 1_000 },
      clock: clock.read,
      onSkip: (reason) => skips.push(reason),
    });
    monitor.onPrediction(prediction(1, 0.9));
    monitor.onPrediction(prediction(2, 0.2));
    monitor.onPrediction(prediction(3, 0.6));
    monitor.onPrediction(prediction(4, 0.1)); // never gets an outcome
    monitor.onOutcome(outcome(1, 1));
    monitor.onOutcome(outcome(2, 0));
    monitor.onOutcome(outcome(9, 1)); // no prediction
    monitor.onOutcome(outcome(3, 0.5)); // not a label
    clock.now += 30_000;
    monitor.onOutcome(outcome(3, 0));
    assert.deepEqual(monitor.tick(), []);
    clock.now += 30_000; // r4's and r9's join time is up
    monitor.tick();
    assert.deepEqual(skips, ['NOT_A_LABEL', 'NO_PREDICTION']);
    const [report] = monitor.flush();
    assert.ok(report?.quality);
    const q = report.quality;
    assert.equal(q.settled, 4);
    assert.equal(q.matched, 3);
    assert.equal(q.outcome_share, 0.75);
    assert.equal(q.positives, 1);
    assert.equal(q.auc, 1);
    assert.equal(q.precision, 0.5); // 0.9 and 0.6 decided positive, one right
    assert.equal(q.recall, 1);
    assert.equal(q.threshold, 0.5);
    assert.equal(monitor.stats().outcomeEntries, 0);
  });

  it('has no quality in a window where nothing settled; flush settles what still waits', () => {
    const monitor = new DriftMonitor({
      profiles: [versionProfile(reference, 0.5)],
      window: { maxEvents: 1, maxDurationMs: 600_000 },
    });
    const [closed] = monitor.onPrediction(prediction(1, 0.9));
    assert.equal(closed?.event_count, 1);
    assert.equal(closed?.quality, null, 'the prediction still waits for its outcome');
    const [flushed] = monitor.flush();
    assert.equal(flushed?.event_count, 0);
    assert.equal(flushed?.quality?.settled, 1);
    assert.equal(flushed?.quality?.matched, 0);
    assert.equal(flushed?.quality?.outcome_share, 0);
  });

  it('writes quality that old readers skip and reads old reports as without quality', async () => {
    const monitor = new DriftMonitor({ profiles: [versionProfile(reference, 0.5)] });
    monitor.onPrediction(prediction(1, 0.9));
    monitor.onPrediction(prediction(2, 0.3));
    monitor.onOutcome(outcome(1, 1));
    monitor.onOutcome(outcome(2, 0));
    const [report] = monitor.flush();
    assert.ok(report?.quality);

    const schema = JSON.parse(readFileSync('schemas/drift-report.avsc', 'utf8')) as {
      fields: { name: string }[];
    };
    const current = avro.Type.forSchema(schema as avro.Schema);
    const old = avro.Type.forSchema({
      ...schema,
      fields: schema.fields.filter((f) => f.name !== 'quality'),
    } as avro.Schema);
    const written = current.toBuffer(report);
    assert.deepEqual({ ...(current.fromBuffer(written) as typeof report).quality }, report.quality);
    const byOldReader = old.fromBuffer(written, old.createResolver(current)) as Record<string, unknown>;
    assert.equal(byOldReader.model_version, '1');
    assert.equal('quality' in byOldReader, false);
    const { quality: _dropped, ...before } = report;
    const oldRecord = current.fromBuffer(old.toBuffer(before), current.createResolver(old)) as typeof report;
    assert.equal(oldRecord.quality, null);

    const registry = new Registry();
    const metrics = createDriftMetrics(registry);
    recordReport(metrics, report);
    const gauge = async (name: string) =>
      (await registry.getSingleMetric(name)!.get()).values.find((v) => v.labels.version === '1')?.value;
    assert.equal(await gauge('streamscore_drift_quality_auc'), 1);
    assert.equal(await gauge('streamscore_drift_quality_outcome_ratio'), 1);
    assert.equal(await gauge('streamscore_drift_quality_matched_events'), 2);
    assert.equal(await gauge('streamscore_drift_quality_precision'), 1);
    assert.deepEqual(qualitySnapshot(report)?.auc, 1);
  });
});
