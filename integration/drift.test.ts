import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import avro from 'avsc';
import type { ShadowPrediction } from '../src/codec/predictions.js';
import { readSchemaFile, registerValueSchema } from '../src/codec/registry.js';
import type { DriftReport } from '../src/drift/report.js';
import {
  ServeProcess,
  collect,
  connectProducer,
  createTopics,
  decodeAll,
  fraudEvents,
  kafka,
  metricValue,
  produceEvents,
  registryClient,
  sleep,
  uniqueName,
  waitFor,
  type TestTopics,
} from './harness.js';

const WINDOW = 500;
const STATIONARY = 50_000; // 100 windows
const SHIFTED = 5_000; // 10 windows with merchant_risk + 0.5 sigma

/** An Avro long written by hand (zigzag varint): avsc refuses to write one beyond 2^53. */
function avroLong(value: bigint): Buffer {
  let zigzag = value >= 0n ? value << 1n : (-value << 1n) - 1n;
  const bytes: number[] = [];
  while (zigzag >= 0x80n) {
    bytes.push(Number((zigzag & 0x7fn) | 0x80n));
    zigzag >>= 7n;
  }
  bytes.push(Number(zigzag));
  return Buffer.from(bytes);
}

describe('drift monitor on real topics', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let driftTopic: string;
  let models: string;
  const processes: ServeProcess[] = [];

  before(async () => {
    // One partition: windows then follow the production order exactly, so "the window where the
    // shift starts" is well defined. Partition splitting across replicas is the assignor's job.
    topics = await createTopics('drift', 1);
    // Versions 1 and 2 as shipped, and 3: version 1's model under another version, an identical shadow.
    models = mkdtempSync(join(tmpdir(), 'streamscore-drift-'));
    cpSync('models/fraud/1', join(models, 'fraud', '1'), { recursive: true });
    cpSync('models/fraud/2', join(models, 'fraud', '2'), { recursive: true });
    cpSync('models/fraud/1', join(models, 'fraud', '3'), { recursive: true });
    for (const file of ['model.json', 'reference.json']) {
      const path = join(models, 'fraud', '3', file);
      writeFileSync(
        path,
        JSON.stringify({ ...(JSON.parse(readFileSync(path, 'utf8')) as object), version: '3' }),
      );
    }
    driftTopic = `${topics.requests}.drift`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: driftTopic, numPartitions: 1 }] });
    await admin.disconnect();
  });
  after(async () => {
    for (const process of processes) await process.stop('SIGKILL');
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [driftTopic] }).catch(() => undefined);
    await admin.disconnect();
    await topics.remove();
    rmSync(models, { recursive: true, force: true });
  });

  it('stays quiet on stationary traffic, flags a 0.5 sigma shift at once, and measures shadows exactly', async () => {
    const stationary = fraudEvents(STATIONARY, { seed: 31, runId: 'stationary' });
    await produceEvents(topics.requests, stationary);
    // The shift, drawn by the same generator produce --shift uses: +0.5 sd on merchant_risk only.
    const { EventGenerator, readFeatureSpecs } = await import('../src/produce/generator.js');
    const specs = readFeatureSpecs('training/fraud_features.json');
    const shifted = new EventGenerator({
      featureNames: specs.map((s) => s.name),
      specs,
      seed: 32,
      keys: 1_000,
      runId: 'shifted',
      drift: { fromEvent: 0, shifts: { merchant_risk: 0.5 }, mixes: {} },
    });
    await produceEvents(
      topics.requests,
      Array.from({ length: SHIFTED }, () => shifted.next()),
    );

    // Version 1 serves; version 3 (the same model) and version 2 run as shadows.
    const serve = ServeProcess.start(topics, {
      STREAMSCORE_MODELS_DIR: models,
      STREAMSCORE_MODEL_VERSION: '1',
      STREAMSCORE_SHADOW_VERSIONS: '3,2',
    });
    processes.push(serve);
    const drift = ServeProcess.start(
      topics,
      {
        STREAMSCORE_MODELS_DIR: models,
        STREAMSCORE_DRIFT_TOPIC: driftTopic,
        STREAMSCORE_DRIFT_GROUP_ID: uniqueName('drift'),
        STREAMSCORE_DRIFT_WINDOW_EVENTS: String(WINDOW),
      },
      'drift',
    );
    processes.push(drift);
    await Promise.all([serve.ready(), drift.ready()]);
    const started = Date.now();
    const total = STATIONARY + SHIFTED;
    // Serve is done when its shadow output stops growing; drift is done when it has read all of it.
    let shadowCount = -1;
    await waitFor(
      'serve to score everything',
      async () => {
        const metrics = await serve.metrics();
        const scored = metricValue(metrics, 'streamscore_predictions_published_total') === total;
        const shadows = metricValue(metrics, 'streamscore_shadow_predictions_published_total');
        const settled = scored && shadows === shadowCount;
        shadowCount = shadows;
        if (!settled) await new Promise((resolve) => setTimeout(resolve, 500));
        return settled;
      },
      120_000,
    );
    await waitFor(
      'the drift monitor to read every record',
      async () => {
        const metrics = await drift.metrics();
        const read = (topic: string) =>
          metricValue(metrics, 'streamscore_drift_records_read_total', { topic });
        return (
          read(topics.requests) === total &&
          read(topics.predictions) === total &&
          read(topics.shadow) === shadowCount
        );
      },
      120_000,
    );
    process.stdout.write(`# drift test: all records read ${Date.now() - started} ms after start\n`);
    // Windows closed so far, then SIGTERM writes the open ones (collect waits for those to settle).
    const closed = metricValue(await drift.metrics(), 'streamscore_drift_windows_total');
    assert.equal((await drift.stop('SIGTERM')).code, 0, drift.output());
    const reports = await decodeAll<DriftReport>(
      await collect(driftTopic, { count: closed, timeoutMs: 30_000 }),
    );
    const v1 = reports
      .filter((r) => r.model_version === '1')
      .sort((a, b) => Number(a.window_start) - Number(b.window_start));
    assert.ok(v1.length >= total / WINDOW, `${v1.length} reports for version 1`);
    const flaggedFeatures = (r: DriftReport) =>
      r.features.filter((f) => f.status !== 'ok').map((f) => f.name);

    // Stationary: 100 windows, at most 1 flagged.
    const quiet = v1.slice(0, STATIONARY / WINDOW);
    assert.ok(quiet.every((r) => r.event_count === WINDOW));
    const falseAlarms = quiet.filter((r) => r.status !== 'ok');
    assert.ok(falseAlarms.length <= 1, `${falseAlarms.length} of 100 stationary windows flagged`);

    // The shift starts with window 100: merchant_risk flagged within 2 windows, nothing else.
    const shiftedWindows = v1.slice(STATIONARY / WINDOW, total / WINDOW);
    const firstFlag = shiftedWindows.findIndex((r) => flaggedFeatures(r).includes('merchant_risk'));
    assert.ok(
      firstFlag >= 0 && firstFlag <= 1,
      `merchant_risk first flagged ${firstFlag} windows after the shift`,
    );
    for (const report of shiftedWindows) {
      assert.deepEqual(
        flaggedFeatures(report).filter((name) => name !== 'merchant_risk'),
        [],
        'an untouched feature was flagged',
      );
    }

    // Shadows: identical -> agreement 1 and no difference; version 2 -> what an offline count gives.
    const comparisons = (shadow: string) =>
      v1.flatMap((r) => r.shadows.filter((s) => s.shadow_version === shadow));
    const identical = comparisons('3');
    assert.ok(identical.length > 0);
    for (const c of identical) {
      assert.equal(c.agreement, 1);
      assert.equal(c.mean_abs_diff, 0);
    }
    const records = await decodeAll<ShadowPrediction>(
      await collect(topics.shadow, { count: shadowCount, timeoutMs: 60_000 }),
    );
    assert.equal(records.length, shadowCount);
    // At saturation serve may shed shadow work (counted); agreement is over the records that exist.
    const fromV2 = records.filter((r) => r.model_version === '2');
    assert.ok(fromV2.length > 0);
    const offlineAgreed = fromV2.filter(
      (r) => r.outputs.score! > 0.5 === r.served_outputs.score! > 0.5,
    ).length;
    const compared = comparisons('2').reduce((sum, c) => sum + Number(c.compared), 0);
    const agreed = comparisons('2').reduce((sum, c) => sum + Number(c.agreed), 0);
    assert.equal(compared, fromV2.length, 'every shadow record compared once');
    assert.equal(agreed, offlineAgreed);
    process.stdout.write(
      `# drift test: ${falseAlarms.length}/100 stationary windows flagged; shift flagged after ${firstFlag} windows; ` +
        `v2 agreement ${(agreed / compared).toFixed(4)} (offline ${(offlineAgreed / fromV2.length).toFixed(4)})\n`,
    );
  });

  it('counts a request whose unused field holds a long beyond 2^53, which serve scores', async () => {
    const own = await createTopics('drift-wide', 1);
    const reportTopic = `${own.requests}.drift`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: reportTopic, numPartitions: 1 }] });
    await admin.disconnect();
    try {
      // The writer's schema: FeatureEvent and one more field, last, which nobody reads.
      const featureSchema = await readSchemaFile('feature-event.avsc');
      const wideSchema = {
        ...featureSchema,
        fields: [...(featureSchema.fields as object[]), { name: 'trace', type: 'long', default: 0 }],
      };
      const schemaId = await registerValueSchema(registryClient, own.requests, wideSchema);
      const [event] = fraudEvents(1, { seed: 41, runId: 'wide' });
      const header = Buffer.alloc(5);
      header.writeInt32BE(schemaId, 1);
      const fields = avro.Type.forSchema(featureSchema as avro.Schema).toBuffer({
        ...event!,
        event_time: Date.now(),
      });
      const value = Buffer.concat([header, fields, avroLong(2n ** 60n + 1n)]);
      // Valid Avro of the registered schema: a reader of every field sees the long (and avsc refuses it).
      assert.throws(() => avro.Type.forSchema(wideSchema as avro.Schema).fromBuffer(value.subarray(5)));
      const producer = await connectProducer();
      await producer.send({ topic: own.requests, messages: [{ key: event!.entity_key, value }] });
      await producer.disconnect();

      const serve = ServeProcess.start(own, {
        STREAMSCORE_MODELS_DIR: models,
        STREAMSCORE_MODEL_VERSION: '1',
      });
      const drift = ServeProcess.start(
        own,
        {
          STREAMSCORE_MODELS_DIR: models,
          STREAMSCORE_DRIFT_TOPIC: reportTopic,
          STREAMSCORE_DRIFT_GROUP_ID: uniqueName('drift-wide'),
        },
        'drift',
      );
      processes.push(serve, drift);
      await Promise.all([serve.ready(), drift.ready()]);
      await waitFor(
        'serve to score the event',
        async () => metricValue(await serve.metrics(), 'streamscore_predictions_published_total') === 1,
        60_000,
      );
      await waitFor(
        'the drift monitor to read the request and its prediction',
        async () => {
          const metrics = await drift.metrics();
          const read = (topic: string) =>
            metricValue(metrics, 'streamscore_drift_records_read_total', { topic });
          return read(own.requests) === 1 && read(own.predictions) === 1;
        },
        60_000,
      );
      assert.equal(metricValue(await drift.metrics(), 'streamscore_drift_records_skipped_total'), 0);
      assert.equal((await drift.stop('SIGTERM')).code, 0, drift.output());
      await serve.stop('SIGTERM');

      // The open window, written at shutdown, counted the request's features with its prediction.
      const reports = await decodeAll<DriftReport>(
        await collect(reportTopic, { count: 1, timeoutMs: 30_000 }),
      );
      assert.equal(reports.length, 1, JSON.stringify(reports));
      const [report] = reports;
      assert.equal(report!.model_version, '1');
      assert.equal(report!.event_count, 1);
      assert.ok(report!.features.length > 0);
      for (const feature of report!.features) assert.equal(feature.count, 1, feature.name);
    } finally {
      const cleanup = kafka.admin();
      await cleanup.connect();
      await cleanup.deleteTopics({ topics: [reportTopic] }).catch(() => undefined);
      await cleanup.disconnect();
      await own.remove();
    }
  });

  it('stops cleanly on SIGTERM while the cluster does not answer at start-up', async () => {
    const child = spawn(process.execPath, ['dist/src/cli.js', 'drift'], {
      env: {
        PATH: process.env.PATH,
        KAFKA_BROKERS: '127.0.0.1:1',
        KAFKA_CONNECT_TIMEOUT_MS: '60000',
        STREAMSCORE_MODELS_DIR: models,
        STREAMSCORE_DRIFT_METRICS_PORT: '0',
      },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor('drift to be connecting', () => /drift metrics on/.test(stdout), 20_000);
    await sleep(500);
    const signalled = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stdout);
    assert.ok(Date.now() - signalled < 5_000, 'exits at once, without waiting for the connect timeout');
    assert.match(stdout, /"msg":"shutting down"/);
  });

  it('stops cleanly on SIGTERM before its group is joined', async () => {
    const env = {
      STREAMSCORE_MODELS_DIR: models,
      STREAMSCORE_DRIFT_TOPIC: driftTopic,
      STREAMSCORE_DRIFT_GROUP_ID: uniqueName('drift-join'),
    };
    // A member already in the group makes the next join wait for a rebalance (up to a heartbeat).
    const member = ServeProcess.start(topics, env, 'drift');
    processes.push(member);
    await member.ready();
    const joining = ServeProcess.start(topics, env, 'drift');
    processes.push(joining);
    await waitFor('the second replica to reach Kafka', () =>
      joining.lines.some((line) => /drift metrics on/.test(String(line.msg))),
    );
    await sleep(300);
    const joinedAlready = joining.lines.some((line) => line.msg === 'drift monitor joined its group');
    const exit = await joining.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, joining.output());
    assert.equal(joinedAlready, false, 'the signal must come before the join for this test to mean anything');
    assert.ok(
      joining.lines.every((line) => Number(line.level) < 50),
      joining.output(),
    );
    assert.equal((await member.stop('SIGTERM')).code, 0, member.output());
  });
});
