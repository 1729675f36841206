import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Prediction } from '../src/codec/predictions.js';
import type { OutcomeRecord } from '../src/drift/outcomes.js';
import type { DriftReport } from '../src/drift/report.js';
import {
  BROKERS,
  REGISTRY_URL,
  ServeProcess,
  collect,
  createTopics,
  decodeAll,
  kafka,
  metricValue,
  runCli,
  uniqueName,
  waitFor,
  type TestTopics,
} from './harness.js';

const EVENTS = 4_000;
const SHARE = 0.7;
const PARTITIONS = 2;

/** The figures of docs/drift.md, computed the plain way: every pair for the AUC, every bin by hand. */
function offlineQuality(pairs: { score: number; label: number }[], threshold: number) {
  const positives = pairs.filter((p) => p.label === 1);
  const negatives = pairs.filter((p) => p.label === 0);
  let wins = 0;
  for (const p of positives) {
    for (const n of negatives) wins += p.score > n.score ? 1 : p.score === n.score ? 0.5 : 0;
  }
  const clip = (s: number) => Math.min(Math.max(s, 1e-15), 1 - 1e-15);
  const logLoss =
    pairs.reduce(
      (sum, p) => sum - (p.label === 1 ? Math.log(clip(p.score)) : Math.log(1 - clip(p.score))),
      0,
    ) / pairs.length;
  const decided = pairs.filter((p) => p.score > threshold);
  const truePositives = decided.filter((p) => p.label === 1).length;
  let ece = 0;
  for (let bin = 0; bin < 10; bin += 1) {
    const members = pairs.filter((p) => Math.min(9, Math.floor(p.score * 10)) === bin);
    if (members.length === 0) continue;
    const meanScore = members.reduce((a, p) => a + p.score, 0) / members.length;
    const meanLabel = members.reduce((a, p) => a + p.label, 0) / members.length;
    ece += (members.length / pairs.length) * Math.abs(meanScore - meanLabel);
  }
  return {
    positives: positives.length,
    auc: wins / (positives.length * negatives.length),
    logLoss,
    precision: truePositives / decided.length,
    recall: truePositives / positives.length,
    ece,
  };
}

describe('realised quality from outcomes on real topics', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let outcomesTopic: string;
  let driftTopic: string;
  const processes: ServeProcess[] = [];

  before(async () => {
    topics = await createTopics('outcomes', PARTITIONS);
    outcomesTopic = `${topics.requests}.outcomes`;
    driftTopic = `${topics.requests}.drift`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [outcomesTopic, driftTopic].map((topic) => ({ topic, numPartitions: PARTITIONS })),
    });
    await admin.disconnect();
  });
  after(async () => {
    for (const process of processes) await process.stop('SIGKILL');
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [outcomesTopic, driftTopic] }).catch(() => undefined);
    await admin.disconnect();
    await topics.remove();
  });

  it('joins outcomes written by produce with the predictions serve wrote, and reports their quality exactly', async () => {
    const env = {
      KAFKA_BROKERS: BROKERS!,
      SCHEMA_REGISTRY_URL: REGISTRY_URL!,
      STREAMSCORE_REQUESTS_TOPIC: topics.requests,
      STREAMSCORE_OUTCOMES_TOPIC: outcomesTopic,
      STREAMSCORE_LOG_LEVEL: 'warn',
    };
    const produced = await runCli(
      [
        'produce',
        '--count',
        String(EVENTS),
        '--seed',
        '41',
        '--run-id',
        uniqueName('run'),
        '--outcomes',
        '--outcome-share',
        String(SHARE),
      ],
      env,
      60_000,
    );
    assert.equal(produced.code, 0, produced.stdout + produced.stderr);

    const serve = ServeProcess.start(topics);
    processes.push(serve);
    const drift = ServeProcess.start(
      topics,
      {
        STREAMSCORE_OUTCOMES_TOPIC: outcomesTopic,
        STREAMSCORE_DRIFT_TOPIC: driftTopic,
        STREAMSCORE_DRIFT_GROUP_ID: uniqueName('drift'),
        // One window for the whole run: it closes when the monitor stops.
        STREAMSCORE_DRIFT_WINDOW_EVENTS: '1000000',
        STREAMSCORE_DRIFT_WINDOW_MS: '3600000',
      },
      'drift',
    );
    processes.push(drift);
    await Promise.all([serve.ready(), drift.ready()]);

    const outcomes = await decodeAll<OutcomeRecord>(
      await collect(outcomesTopic, { count: EVENTS * SHARE * 0.9, timeoutMs: 30_000 }),
    );
    await waitFor(
      'serve to score every event',
      async () => metricValue(await serve.metrics(), 'streamscore_predictions_published_total') === EVENTS,
      60_000,
    );
    await waitFor(
      'the drift monitor to read every prediction and outcome',
      async () => {
        const metrics = await drift.metrics();
        const read = (topic: string) =>
          metricValue(metrics, 'streamscore_drift_records_read_total', { topic });
        return read(topics.predictions) === EVENTS && read(outcomesTopic) === outcomes.length;
      },
      60_000,
    );
    // Stopping settles the predictions still waiting (those without an outcome) and writes the window.
    assert.equal((await drift.stop('SIGTERM')).code, 0, drift.output());

    const predictions = await decodeAll<Prediction>(
      await collect(topics.predictions, { count: EVENTS, timeoutMs: 30_000 }),
    );
    assert.equal(new Set(predictions.map((p) => p.request_id)).size, EVENTS);
    const reports = await decodeAll<DriftReport>(await collect(driftTopic, { count: 1, timeoutMs: 30_000 }));
    const withQuality = reports.filter((r) => r.quality !== null);
    assert.equal(withQuality.length, 1, JSON.stringify(reports.map((r) => [r.model_version, r.quality])));
    const report = withQuality[0]!;
    const quality = report.quality!;

    const labels = new Map(outcomes.map((o) => [o.request_id, o.observed]));
    const scored = predictions.filter((p) => p.model_version === report.model_version);
    assert.equal(scored.length, EVENTS);
    const pairs = scored
      .filter((p) => labels.has(p.request_id))
      .map((p) => ({ score: p.outputs.score!, label: labels.get(p.request_id)! }));
    const model = JSON.parse(readFileSync(`models/fraud/${report.model_version}/model.json`, 'utf8')) as {
      threshold?: number;
    };
    const expected = offlineQuality(pairs, model.threshold ?? 0.5);

    assert.equal(outcomes.length, new Set(outcomes.map((o) => o.request_id)).size);
    assert.equal(quality.settled, EVENTS);
    assert.equal(quality.matched, pairs.length);
    assert.equal(quality.outcome_share, pairs.length / EVENTS);
    assert.ok(Math.abs(quality.outcome_share - SHARE) < 0.05, `outcome share ${quality.outcome_share}`);
    assert.equal(quality.positives, expected.positives);
    assert.equal(quality.threshold, model.threshold ?? 0.5);
    const close = (name: string, actual: number | null, wanted: number) =>
      assert.ok(actual !== null && Math.abs(actual - wanted) < 1e-9, `${name}: ${actual} vs ${wanted}`);
    close('auc', quality.auc, expected.auc);
    close('log loss', quality.log_loss, expected.logLoss);
    close('precision', quality.precision, expected.precision);
    close('recall', quality.recall, expected.recall);
    close('ece', quality.ece, expected.ece);
    // The labels follow the spec's rule, which the model learned: it ranks them well.
    assert.ok(quality.auc! > 0.8, `auc ${quality.auc}`);
  });
});
