import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it, mock } from 'node:test';
import avro from 'avsc';
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { pino } from 'pino';
import { MicroBatcher } from '../../src/batching/batcher.js';
import { PendingLimit } from '../../src/batching/capacity.js';
import { DLQ_HEADERS } from '../../src/codec/dead-letter.js';
import { RequestDecoder } from '../../src/codec/requests.js';
import type { SchemaLookup } from '../../src/codec/schemas.js';
import { StreamscoreError } from '../../src/errors.js';
import type { TakeContext } from '../../src/kafka/intake.js';
import { OffsetLedger, type OffsetEntry, type PartitionLease } from '../../src/kafka/offsets.js';
import { OrderedPublisher } from '../../src/kafka/publisher.js';
import { DeadLetters } from '../../src/pipeline/dead-letters.js';
import { DecodeStage, type Pending } from '../../src/pipeline/decode-stage.js';
import { PipelineHealth } from '../../src/pipeline/health.js';
import { createRegistry, createServeMetrics } from '../../src/telemetry/metrics.js';
import { RecordingProducer } from '../support/producers.js';
import { StaticSchemas } from '../support/schemas.js';

const FEATURE_SCHEMA = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as avro.Schema;
const featureType = avro.Type.forSchema(FEATURE_SCHEMA);
const SCHEMA_ID = 3;
const DLQ = 'requests-dlq';
const LIMITS = { maxValueBytes: 1_048_576, maxFeatures: 10_000 };
const REQUIRED = ['amount', 'merchant_risk', 'hour_of_day'];
/** Not the order the events list their features in, so a row built in the wrong order shows. */
const LAYOUT = ['hour_of_day', 'amount', 'merchant_risk'];
const silent = pino({ level: 'silent' });

interface FeatureEvent {
  request_id: string;
  entity_key: string;
  event_time: number;
  features: Record<string, number>;
}

function event(id: string, features: Record<string, number>): FeatureEvent {
  return { request_id: id, entity_key: `card-${id}`, event_time: 1_700_000_000_000, features };
}

const GOOD = event('r1', { amount: 12.5, merchant_risk: 0.25, hour_of_day: 3, other: 9 });

function framed(id: number, record: FeatureEvent): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, featureType.toBuffer(record)]);
}

function messageOf(value: Buffer | null, offset = '41'): KafkaMessage {
  return {
    key: Buffer.from('card-r1'),
    value,
    headers: { trace: Buffer.from('trace-7') },
    offset,
    timestamp: '1700000000000',
    attributes: 0,
  };
}

/** A schema source whose peek fails with a plain Error once `failing` is set. */
class BrokenSchemas extends StaticSchemas {
  failing = false;

  override peek(id: number): SchemaLookup | undefined {
    if (this.failing) throw new Error('schema cache corrupted');
    return super.peek(id);
  }
}

/** A TakeContext as intake builds one, recording what the stage asks of it. */
function contextFor(message: KafkaMessage) {
  const lease = new OffsetLedger().lease('t', 0);
  const seen = { tracked: [] as OffsetEntry[], heartbeats: 0, live: true };
  const context: TakeContext = {
    topic: 't',
    partition: 0,
    message,
    track: () => {
      const entry = lease.track(message.offset);
      seen.tracked.push(entry);
      return { lease, entry };
    },
    heartbeat: () => {
      seen.heartbeats += 1;
      return Promise.resolve();
    },
    live: () => seen.live,
  };
  return { context, lease, seen };
}

function setup(schemas: StaticSchemas) {
  const producer = new RecordingProducer();
  producer.held = true;
  const metrics = createServeMetrics(createRegistry(false));
  const capacity = new PendingLimit(100);
  const batcher = new MicroBatcher<Pending>({ maxRows: 100, lingerMs: 0 });
  const fatal: unknown[] = [];
  const publisher = new OrderedPublisher(producer, silent, {
    stalled: () => undefined,
    recovered: () => undefined,
    fatal: (error) => fatal.push(error),
  });
  const acknowledged = { count: 0 };
  const deadLetters = new DeadLetters({
    publisher,
    capacity,
    topic: DLQ,
    maxRecordBytes: 1_048_576,
    metrics,
    acknowledged: () => (acknowledged.count += 1),
  });
  const health = new PipelineHealth(silent, metrics);
  const stage = new DecodeStage({
    decoder: new RequestDecoder(schemas, LIMITS, []),
    batcher,
    capacity,
    deadLetters,
    health,
    onFatal: (error) => fatal.push(error),
  });
  stage.setFeatures(REQUIRED, LAYOUT, false);
  return {
    producer,
    metrics,
    capacity,
    batcher,
    publisher,
    acknowledged,
    health,
    fatal,
    stage,
  };
}

async function deadLetterCounts(metrics: ReturnType<typeof setup>['metrics']) {
  const counts: Record<string, number> = {};
  for (const { labels, value } of (await metrics.deadLetters.get()).values)
    counts[String(labels.reason)] = value;
  return counts;
}

async function registryGauge(metrics: ReturnType<typeof setup>['metrics']) {
  return (await metrics.stalled.get()).values.find((v) => v.labels.reason === 'registry')?.value;
}

/** Lets promise continuations and I/O run (setImmediate is not among the faked timers). */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function until(condition: () => boolean, what: string): Promise<void> {
  // performance.now(), because Date is faked in some tests.
  const deadline = performance.now() + 5_000;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`still waiting for: ${what}`);
    await turn();
  }
}

function headerText(message: Message, name: string): string | undefined {
  const value = message.headers?.[name];
  return value === undefined ? undefined : String(value);
}

function checkPending(
  item: Pending,
  expected: { lease: PartitionLease; entry: OffsetEntry; message: KafkaMessage; record: FeatureEvent },
) {
  const { record, message } = expected;
  assert.deepEqual(item.event, {
    request_id: record.request_id,
    entity_key: record.entity_key,
    event_time: record.event_time,
  });
  assert.deepEqual(item.features.layout, LAYOUT);
  assert.deepEqual(
    [...item.features.row],
    LAYOUT.map((name) => Math.fround(record.features[name]!)),
  );
  assert.deepEqual(item.source, {
    topic: 't',
    partition: 0,
    offset: message.offset,
    key: message.key,
    value: message.value,
    headers: message.headers as IHeaders,
  });
  assert.equal(item.lease, expected.lease);
  assert.equal(item.entry, expected.entry);
  assert.equal(item.entry.offset, message.offset);
  assert.equal(item.entry.done, false, 'done only once its prediction is acknowledged');
}

describe('DecodeStage', () => {
  it('turns a good value into a pending event in the layout set, holding one unit of capacity', async () => {
    const schemas = await new StaticSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA }).primeAll();
    const { stage, batcher, capacity, producer } = setup(schemas);
    const message = messageOf(framed(SCHEMA_ID, GOOD));
    const { context, lease, seen } = contextFor(message);

    assert.equal(stage.take(context), true, 'a known schema is read without awaiting anything');
    assert.equal(seen.tracked.length, 1);
    assert.equal(lease.inFlight, 1);
    assert.equal(capacity.pending, 1);
    const batch = await batcher.next();
    assert.equal(batch?.length, 1);
    checkPending(batch[0]!, { lease, entry: seen.tracked[0]!, message, record: GOOD });
    assert.equal(batch[0]!.features.features, undefined, 'no map is kept unless asked for');

    // A canary needing features outside the layout: the decoded map is kept beside the row.
    stage.setFeatures([...REQUIRED, 'other'], LAYOUT, true);
    const second = messageOf(framed(SCHEMA_ID, GOOD), '42');
    const next = contextFor(second);
    assert.equal(stage.take(next.context), true);
    const kept = (await batcher.next())![0]!;
    checkPending(kept, { lease: next.lease, entry: next.seen.tracked[0]!, message: second, record: GOOD });
    assert.deepEqual({ ...kept.features.features }, GOOD.features);
    assert.equal(capacity.pending, 2);
    assert.equal(producer.requests.length, 0, 'no dead letter');
  });

  it('dead-letters a bad value with its reason and original bytes; frees it only once acknowledged', async () => {
    const cases: { value: Buffer | null; reason: string; stage: string; message: RegExp }[] = [
      { value: Buffer.from('{"not":"avro"}'), reason: 'BAD_FRAMING', stage: 'decode', message: /magic byte/ },
      {
        value: framed(SCHEMA_ID, event('r2', { amount: 1, hour_of_day: 2 })),
        reason: 'MISSING_FEATURE',
        stage: 'validate',
        message: /"merchant_risk" is missing/,
      },
      { value: null, reason: 'EMPTY_VALUE', stage: 'decode', message: /no value/ },
    ];
    for (const expected of cases) {
      const schemas = await new StaticSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA }).primeAll();
      const { stage, batcher, capacity, producer, publisher, metrics, acknowledged, fatal } = setup(schemas);
      const message = messageOf(expected.value, '17');
      const { context, seen } = contextFor(message);

      assert.equal(stage.take(context), true, expected.reason);
      assert.equal(seen.tracked.length, 1);
      const entry = seen.tracked[0]!;
      await producer.requested(1);
      const letters = producer.messagesTo(DLQ);
      assert.equal(letters.length, 1, expected.reason);
      const letter = letters[0]!;
      assert.deepEqual(letter.key, message.key);
      assert.deepEqual(letter.value, message.value);
      assert.deepEqual(letter.headers?.trace, Buffer.from('trace-7'), 'the original headers are kept');
      assert.equal(headerText(letter, DLQ_HEADERS.reason), expected.reason);
      assert.equal(headerText(letter, DLQ_HEADERS.stage), expected.stage);
      assert.match(headerText(letter, DLQ_HEADERS.message)!, expected.message);
      assert.equal(headerText(letter, DLQ_HEADERS.sourceTopic), 't');
      assert.equal(headerText(letter, DLQ_HEADERS.sourcePartition), '0');
      assert.equal(headerText(letter, DLQ_HEADERS.sourceOffset), '17');
      assert.equal(batcher.queued, 0);

      // Until the broker acknowledges the dead letter, the record holds its place.
      assert.equal(capacity.pending, 1);
      assert.equal(entry.done, false);
      assert.deepEqual(await deadLetterCounts(metrics), {});
      assert.equal(acknowledged.count, 0);

      producer.ack();
      await publisher.idle();
      assert.equal(capacity.pending, 0);
      assert.equal(entry.done, true);
      assert.deepEqual(await deadLetterCounts(metrics), { [expected.reason]: 1 });
      assert.equal(acknowledged.count, 1);
      assert.deepEqual(fatal, []);
    }
  });

  it('waits out a registry outage with heartbeats, stalled, then takes the record and recovers', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const schemas = new StaticSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA });
      const outage = new StreamscoreError('REGISTRY_UNAVAILABLE', 'the registry answered 503', {
        retriable: true,
      });
      schemas.answer = () => {
        throw outage;
      };
      const { stage, batcher, capacity, health, metrics, producer, fatal } = setup(schemas);
      const message = messageOf(framed(SCHEMA_ID, GOOD));
      const { context, lease, seen } = contextFor(message);

      const outcome = stage.take(context);
      assert.ok(outcome instanceof Promise, 'an unknown schema id is looked up first');
      await until(() => health.stalls.length > 0, 'the registry stall');
      assert.deepEqual(health.stalls, ['registry']);
      assert.equal(await registryGauge(metrics), 1);
      assert.deepEqual(schemas.lookups, [SCHEMA_ID]);

      // Backoff 200 ms, then 400, 800, 1,600; heartbeats go on at least once a second meanwhile.
      mock.timers.tick(199);
      await turn();
      assert.equal(schemas.lookups.length, 1);
      assert.equal(seen.heartbeats, 0);
      mock.timers.tick(1);
      await until(() => schemas.lookups.length === 2, 'the second lookup');
      assert.equal(seen.heartbeats, 1);
      mock.timers.tick(400);
      await until(() => schemas.lookups.length === 3, 'the third lookup');
      mock.timers.tick(800);
      await until(() => schemas.lookups.length === 4, 'the fourth lookup');
      assert.equal(seen.heartbeats, 3);
      mock.timers.tick(1_000);
      await until(() => seen.heartbeats === 4, 'a heartbeat within the 1,600 ms wait');
      assert.equal(schemas.lookups.length, 4);
      assert.equal(seen.tracked.length, 0, 'not tracked while it waits');
      assert.equal(capacity.pending, 0);
      assert.deepEqual(health.stalls, ['registry']);

      schemas.answer = undefined;
      mock.timers.tick(600);
      assert.equal(await outcome, true);
      assert.equal(schemas.lookups.length, 5);
      assert.deepEqual(health.stalls, []);
      assert.equal(await registryGauge(metrics), 0);
      assert.equal(seen.tracked.length, 1);
      assert.equal(capacity.pending, 1);
      const batch = await batcher.next();
      checkPending(batch![0]!, { lease, entry: seen.tracked[0]!, message, record: GOOD });
      assert.equal(producer.requests.length, 0, 'a registry outage never makes a dead letter');
      assert.deepEqual(fatal, []);
    } finally {
      mock.timers.reset();
    }
  });

  it('gives a waiting record up, untracked, when it stops being live', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const schemas = new StaticSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA });
      schemas.answer = () => {
        throw new StreamscoreError('REGISTRY_UNAVAILABLE', 'connect ECONNREFUSED', { retriable: true });
      };
      const { stage, batcher, capacity, health, producer, fatal } = setup(schemas);
      const { context, seen } = contextFor(messageOf(framed(SCHEMA_ID, GOOD)));

      const outcome = stage.take(context) as Promise<boolean>;
      let settled: boolean | undefined;
      void outcome.then((tracked) => (settled = tracked));
      await until(() => health.stalls.length > 0, 'the registry stall');
      for (const [ms, lookups] of [
        [200, 2],
        [400, 3],
        [800, 4],
      ] as const) {
        mock.timers.tick(ms);
        await until(() => schemas.lookups.length === lookups, `lookup ${lookups}`);
      }
      assert.equal(seen.heartbeats, 3);

      // Within the 1,600 ms wait: given up at the next heartbeat's turn, not at the end of the wait.
      seen.live = false;
      schemas.answer = undefined;
      mock.timers.tick(1_000);
      await until(() => settled !== undefined, 'take() to settle');
      assert.equal(settled, false);
      assert.equal(seen.heartbeats, 3, 'no heartbeat for a record given up');
      assert.equal(seen.tracked.length, 0, 'intake leaves it for whoever owns the partition next');
      assert.equal(schemas.lookups.length, 4, 'no lookup after it was given up');
      assert.equal(capacity.pending, 0);
      assert.equal(batcher.queued, 0);
      assert.equal(producer.requests.length, 0);
      assert.deepEqual(fatal, []);
    } finally {
      mock.timers.reset();
    }
  });

  // A stall that outlived every record waiting on it would leave readiness at 503 with nothing to
  // clear it: the records still read here name known schema ids and never look anything up.
  it('leaves no registry stall behind once the only record waiting on the registry is given up', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const schemas = new StaticSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA });
      schemas.answer = () => {
        throw new StreamscoreError('REGISTRY_UNAVAILABLE', 'connect ECONNREFUSED', { retriable: true });
      };
      const { stage, health } = setup(schemas);
      const { context, seen } = contextFor(messageOf(framed(SCHEMA_ID, GOOD)));
      const outcome = stage.take(context) as Promise<boolean>;
      await until(() => health.stalls.length > 0, 'the registry stall');
      seen.live = false;
      mock.timers.tick(200);
      assert.equal(await outcome, false);

      // The registry is back; records of known schemas flow, and nothing waits on a lookup.
      schemas.answer = undefined;
      await schemas.primeAll();
      const next = contextFor(messageOf(framed(SCHEMA_ID, GOOD), '42'));
      assert.equal(stage.take(next.context), true);
      assert.deepEqual(health.stalls, [], 'readiness would stay 503 with nothing waiting');
    } finally {
      mock.timers.reset();
    }
  });

  it('stays stalled while any record waits on the registry, not only until the first one gets through', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const schemas = new StaticSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA });
      let down = true;
      schemas.answer = () => {
        if (down)
          throw new StreamscoreError('REGISTRY_UNAVAILABLE', 'connect ECONNREFUSED', { retriable: true });
      };
      const { stage, health } = setup(schemas);
      const first = contextFor(messageOf(framed(SCHEMA_ID, GOOD), '1'));
      const firstTaken = stage.take(first.context) as Promise<boolean>;
      await until(() => health.stalls.length > 0, 'the registry stall');
      mock.timers.tick(100);
      const second = contextFor(messageOf(framed(SCHEMA_ID, GOOD), '2'));
      const secondTaken = stage.take(second.context) as Promise<boolean>;
      await until(() => schemas.lookups.length === 2, 'the second lookup');
      // The registry answers again: the first record's next try (at 200 ms) gets through first.
      down = false;
      mock.timers.tick(100);
      assert.equal(await firstTaken, true);
      assert.deepEqual(health.stalls, ['registry'], 'the second record still waits');
      mock.timers.tick(200);
      assert.equal(await secondTaken, true);
      assert.deepEqual(health.stalls, []);
    } finally {
      mock.timers.reset();
    }
  });

  it('stops the pipeline on a registry failure that waiting cannot mend', async () => {
    const schemas = new StaticSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA });
    const refused = new StreamscoreError('REGISTRY_UNAVAILABLE', 'the registry answered 401', {
      retriable: false,
    });
    schemas.answer = () => {
      throw refused;
    };
    const { stage, batcher, capacity, health, producer, fatal } = setup(schemas);
    const { context, seen } = contextFor(messageOf(framed(SCHEMA_ID, GOOD)));

    const outcome = stage.take(context) as Promise<boolean>;
    let settled: boolean | undefined;
    void outcome.then((tracked) => (settled = tracked));
    await until(() => settled !== undefined, 'take() to settle, without waiting');
    assert.equal(settled, false);
    assert.deepEqual(fatal, [refused]);
    assert.equal(seen.tracked.length, 0);
    assert.equal(seen.heartbeats, 0);
    assert.equal(capacity.pending, 0);
    assert.equal(batcher.queued, 0);
    assert.equal(producer.requests.length, 0);
    assert.deepEqual(health.stalls, [], 'nothing is waited for');
  });

  it('dead-letters what decoding throws as UNEXPECTED_ERROR, and takes the records after it', async () => {
    // Thrown on the first read (schema known) and after a lookup (schema unknown until then).
    for (const when of ['known', 'looked up'] as const) {
      const schemas = new BrokenSchemas({ [SCHEMA_ID]: FEATURE_SCHEMA });
      if (when === 'known') {
        await schemas.primeAll();
        schemas.failing = true;
      } else {
        schemas.answer = () => (schemas.failing = true);
      }
      const { stage, batcher, capacity, producer, publisher, metrics, fatal } = setup(schemas);
      const bad = contextFor(messageOf(framed(SCHEMA_ID, GOOD), '5'));

      const outcome = stage.take(bad.context);
      assert.equal(outcome instanceof Promise, when === 'looked up', when);
      assert.equal(await outcome, true, when);
      assert.equal(bad.seen.tracked.length, 1, when);
      await producer.requested(1);
      const letter = producer.messagesTo(DLQ)[0]!;
      assert.equal(headerText(letter, DLQ_HEADERS.reason), 'UNEXPECTED_ERROR', when);
      assert.equal(headerText(letter, DLQ_HEADERS.stage), 'decode');
      assert.equal(headerText(letter, DLQ_HEADERS.message), 'Error: schema cache corrupted');
      assert.deepEqual(letter.value, bad.context.message.value);
      producer.ack();
      await publisher.idle();
      assert.equal(bad.seen.tracked[0]!.done, true);
      assert.deepEqual(await deadLetterCounts(metrics), { UNEXPECTED_ERROR: 1 });

      schemas.failing = false;
      schemas.answer = undefined;
      const message = messageOf(framed(SCHEMA_ID, GOOD), '6');
      const good = contextFor(message);
      assert.equal(await stage.take(good.context), true, when);
      const batch = await batcher.next();
      checkPending(batch![0]!, { lease: good.lease, entry: good.seen.tracked[0]!, message, record: GOOD });
      assert.equal(capacity.pending, 1);
      assert.deepEqual(fatal, []);
    }
  });
});
