import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import avro from 'avsc';
import { pino } from 'pino';
import { RecordDecoder } from '../../src/codec/records.js';
import { DriftMonitor } from '../../src/drift/monitor.js';
import { parseReference } from '../../src/drift/reference.js';
import type { DriftReport } from '../../src/drift/report.js';
import { versionProfile } from '../../src/drift/window.js';
import { StreamscoreError } from '../../src/errors.js';
import { DriftReader, type DriftRecordContext } from '../../src/pipeline/drift-reader.js';
import { StaticSchemas } from '../support/schemas.js';

const TOPICS = { requests: 'requests', predictions: 'predictions', shadow: 'shadow', outcomes: 'outcomes' };
const LIMITS = { maxValueBytes: 1_048_576, maxFeatures: 10_000 };
const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as {
  fields: object[];
};
const predictionSchema = JSON.parse(readFileSync('schemas/prediction.avsc', 'utf8')) as avro.Schema;
const shadowSchema = JSON.parse(readFileSync('schemas/shadow-prediction.avsc', 'utf8')) as avro.Schema;
const outcomeSchema = JSON.parse(readFileSync('schemas/outcome.avsc', 'utf8')) as avro.Schema;
/** FeatureEvent with one more field at the end, which neither serve nor the monitor reads. */
const wideSchema = {
  ...featureSchema,
  fields: [...featureSchema.fields, { name: 'trace', type: 'long', default: 0 }],
} as avro.Schema;
const FEATURE_ID = 1;
const WIDE_ID = 2;
const PREDICTION_ID = 3;
const SHADOW_ID = 4;
const OUTCOME_ID = 5;
const featureType = avro.Type.forSchema(featureSchema as avro.Schema);
const predictionType = avro.Type.forSchema(predictionSchema);
const shadowType = avro.Type.forSchema(shadowSchema);
const outcomeType = avro.Type.forSchema(outcomeSchema);

function framed(id: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, payload]);
}

/** An Avro long written by hand: avsc refuses to write one beyond 2^53. */
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

const event = (id: string) => ({
  request_id: id,
  entity_key: 'e1',
  event_time: 1_700_000_000_000,
  features: { amount: -0.5, risk: 0.5 },
});
const prediction = (id: string, version = '1') => ({
  request_id: id,
  entity_key: 'e1',
  model_name: 'm',
  model_version: version,
  route: 'primary',
  outputs: { score: 0.2 },
  event_time: 1_700_000_000_000,
  scored_at: 1_700_000_000_001,
});
const shadow = (id: string) => ({
  ...prediction(id, '2'),
  route: 'shadow',
  served_version: '1',
  served_route: 'primary',
  served_outputs: { score: 0.2 },
});

const requestValue = (id: string) => framed(FEATURE_ID, featureType.toBuffer(event(id)));
const wideValue = (id: string) =>
  framed(WIDE_ID, Buffer.concat([featureType.toBuffer(event(id)), avroLong(2n ** 60n + 1n)]));
const predictionValue = (id: string, version = '1') =>
  framed(PREDICTION_ID, predictionType.toBuffer(prediction(id, version)));
const shadowValue = (id: string) => framed(SHADOW_ID, shadowType.toBuffer(shadow(id)));
const outcomeValue = (id: string, observed: number) =>
  framed(OUTCOME_ID, outcomeType.toBuffer({ request_id: id, observed, observed_at: 1_700_000_000_002 }));

const distribution = (edge: number) => ({
  count: 100,
  mean: 0,
  std: 1,
  min: -1,
  max: 1,
  edges: [edge],
  counts: [50, 50],
});
const reference = (version: string) =>
  parseReference(
    {
      name: 'm',
      version,
      features: { amount: distribution(0), risk: distribution(0) },
      outputs: { score: distribution(0.5) },
    },
    `m/${version}`,
  );

function setup() {
  const schemas = new StaticSchemas({
    [FEATURE_ID]: featureSchema as avro.Schema,
    [WIDE_ID]: wideSchema,
    [PREDICTION_ID]: predictionSchema,
    [SHADOW_ID]: shadowSchema,
    [OUTCOME_ID]: outcomeSchema,
  });
  const skips: string[] = [];
  const monitor = new DriftMonitor({
    profiles: [versionProfile(reference('1'), 0.5), versionProfile(reference('2'), 0.5)],
    window: { maxEvents: 1_000, maxDurationMs: 600_000 },
    join: { ttlMs: 600_000, maxEntries: 1_000 },
    onSkip: (reason, detail) => skips.push(`${reason} ${detail.message}`),
  });
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const fatal: unknown[] = [];
  const reader = new DriftReader({
    topics: TOPICS,
    schemas,
    limits: LIMITS,
    monitor,
    logger,
    onFatal: (error) => fatal.push(error),
  });
  const context = (topic: string, value: Buffer | null, overrides: Partial<DriftRecordContext> = {}) => ({
    topic,
    value,
    heartbeat: () => Promise.resolve(),
    live: () => true,
    ...overrides,
  });
  return { schemas, monitor, skips, lines, fatal, reader, context };
}

function only(reports: DriftReport[], version: string): DriftReport {
  const matching = reports.filter((r) => r.model_version === version);
  assert.equal(matching.length, 1, `one report for version ${version}`);
  return matching[0]!;
}

/** Features counted per name in a report. */
function featureCounts(report: DriftReport): Record<string, number> {
  return Object.fromEntries(report.features.map((f) => [f.name, f.count]));
}

function unavailable(retriable: boolean): StreamscoreError {
  return new StreamscoreError(
    'REGISTRY_UNAVAILABLE',
    'GET http://registry/schemas/ids/1: connect ECONNREFUSED',
    {
      retriable,
    },
  );
}

describe('DriftReader', () => {
  it('counts a request whose unused field holds a long beyond 2^53, as serve scores it', async () => {
    const { schemas, monitor, skips, reader, context } = setup();
    const wide = wideValue('r1');
    // Reading every field, as the monitor once did for requests too, refuses this value.
    const whole = await new RecordDecoder(schemas, LIMITS.maxValueBytes).decode(wide);
    assert.equal(whole.ok, false);

    assert.deepEqual(await reader.read(context(TOPICS.requests, wide)), []);
    assert.deepEqual(await reader.read(context(TOPICS.predictions, predictionValue('r1'))), []);
    assert.deepEqual(skips, []);
    const report = only(monitor.flush(), '1');
    assert.equal(report.event_count, 1);
    assert.deepEqual(featureCounts(report), { amount: 1, risk: 1 });
  });

  it('hands outcomes to the monitor, which joins them with the predictions', async () => {
    const { monitor, skips, reader, context } = setup();
    assert.deepEqual(await reader.read(context(TOPICS.outcomes, outcomeValue('r1', 0))), []);
    assert.deepEqual(await reader.read(context(TOPICS.predictions, predictionValue('r1'))), []);
    assert.deepEqual(await reader.read(context(TOPICS.predictions, predictionValue('r2'))), []);
    assert.deepEqual(await reader.read(context(TOPICS.outcomes, predictionValue('r3'))), []);
    assert.deepEqual(
      skips.map((skip) => skip.split(':')[0]),
      ['UNDECODABLE outcomes'],
    );
    const quality = only(monitor.flush(), '1').quality;
    assert.equal(quality?.settled, 2);
    assert.equal(quality?.matched, 1);
    assert.equal(quality?.positives, 0);
  });

  it('hands predictions and shadow records to the monitor by topic, and skips what is neither', async () => {
    const { monitor, skips, reader, context } = setup();
    for (const [topic, value] of [
      [TOPICS.requests, requestValue('r1')],
      [TOPICS.predictions, predictionValue('r1')],
      [TOPICS.shadow, shadowValue('r1')],
    ] as const) {
      assert.deepEqual(await reader.read(context(topic, value)), []);
    }
    assert.equal(skips.length, 0, skips.join('; '));

    for (const [topic, value] of [
      [TOPICS.requests, predictionValue('r2')],
      [TOPICS.requests, null],
      [TOPICS.predictions, requestValue('r3')],
      [TOPICS.shadow, predictionValue('r4')],
      [TOPICS.predictions, Buffer.from([1, 2, 3, 4, 5, 6])],
    ] as const) {
      assert.deepEqual(await reader.read(context(topic, value)), []);
    }
    assert.deepEqual(
      skips.map((skip) => skip.split(':')[0]),
      [
        'UNDECODABLE requests',
        'UNDECODABLE requests',
        'UNDECODABLE predictions',
        'UNDECODABLE shadow',
        'UNDECODABLE predictions',
      ],
    );
    assert.match(skips[0]!, /field "features" is missing/);
    assert.match(skips[2]!, /not a Prediction or ShadowPrediction record/);

    const reports = monitor.flush();
    const served = only(reports, '1');
    assert.equal(served.event_count, 1);
    assert.deepEqual(featureCounts(served), { amount: 1, risk: 1 });
    assert.deepEqual(
      served.shadows.map((s) => [s.shadow_version, s.compared]),
      [['2', 1]],
    );
    assert.equal(only(reports, '2').event_count, 1);
  });

  it('waits out a registry that does not answer: backoff, heartbeats, one line as it starts and ends', async () => {
    const { schemas, monitor, skips, lines, fatal, reader, context } = setup();
    const asked: number[] = [];
    schemas.answer = () => {
      asked.push(Date.now());
      if (asked.length <= 3) throw unavailable(true);
    };
    const waitingAtHeartbeat: boolean[] = [];
    const closed = await reader.read(
      context(TOPICS.requests, requestValue('r1'), {
        heartbeat: () => {
          waitingAtHeartbeat.push(reader.waiting);
          return Promise.resolve();
        },
      }),
    );
    assert.deepEqual(closed, []);
    assert.equal(asked.length, 4);
    const gaps = asked.slice(1).map((at, i) => at - asked[i]!);
    assert.ok(gaps[0]! >= 195 && gaps[1]! >= 395 && gaps[2]! >= 795, `gaps ${gaps.join(', ')} ms`);
    assert.ok(waitingAtHeartbeat.length >= 3 && waitingAtHeartbeat.every(Boolean));
    assert.equal(reader.waiting, false);
    assert.deepEqual(skips, []);
    assert.deepEqual(fatal, []);
    const said = lines.filter((line) => line.stall === 'registry');
    assert.deepEqual(
      said.map((line) => [line.level, String(line.msg).split(':')[0]]),
      [
        [40, 'stalled (registry)'],
        [30, 'recovered (registry)'],
      ],
    );
    assert.match(String(said[0]!.msg), /ECONNREFUSED/);

    await reader.read(context(TOPICS.predictions, predictionValue('r1')));
    assert.deepEqual(featureCounts(only(monitor.flush(), '1')), { amount: 1, risk: 1 });
  });

  it('gives a waiting record up when stopping, neither counting nor skipping it', async () => {
    const { schemas, monitor, skips, fatal, reader, context } = setup();
    let stopping = false;
    schemas.answer = () => {
      stopping = true;
      throw unavailable(true);
    };
    const closed = await reader.read(context(TOPICS.requests, requestValue('r1'), { live: () => !stopping }));
    assert.equal(closed, undefined);
    assert.deepEqual(schemas.lookups, [FEATURE_ID]);
    assert.deepEqual(skips, []);
    assert.deepEqual(fatal, []);
    assert.equal(monitor.stats().joinEntries, 0);
  });

  it('a registry that refuses us is fatal, not a skip and not a wait', async () => {
    const { schemas, skips, fatal, reader, context } = setup();
    const refused = unavailable(false);
    schemas.answer = () => {
      throw refused;
    };
    assert.equal(await reader.read(context(TOPICS.shadow, shadowValue('r1'))), undefined);
    assert.deepEqual(fatal, [refused]);
    assert.deepEqual(schemas.lookups, [SHADOW_ID]);
    assert.deepEqual(skips, []);
    assert.equal(reader.waiting, false);
  });

  it('an error the decoder did not expect skips that record, and the next one is read', async () => {
    const { schemas, monitor, skips, fatal, reader, context } = setup();
    schemas.answer = () => {
      schemas.answer = undefined;
      throw new TypeError('something unforeseen');
    };
    assert.deepEqual(await reader.read(context(TOPICS.requests, requestValue('r1'))), []);
    assert.deepEqual(skips, ['UNDECODABLE requests: TypeError: something unforeseen']);
    assert.deepEqual(await reader.read(context(TOPICS.requests, requestValue('r2'))), []);
    assert.equal(skips.length, 1);
    assert.deepEqual(fatal, []);
    assert.equal(monitor.stats().joinEntries, 1);
  });
});
