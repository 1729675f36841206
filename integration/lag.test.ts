/**
 * streamscore_consumer_lag_messages against the lag the broker reports for the serving group, which
 * is what an autoscaler reads (deploy/serve-autoscaling.yaml).
 *
 * The two measure from different places. The broker's lag of a partition is its end offset minus
 * the group's committed offset; the gauge is the end offset minus the next offset serve fetches,
 * as of its last fetch. With nothing produced meanwhile, their difference is what the replica holds
 * in flight: records taken in and not yet committed, plus the rest of the fetch being taken in (at
 * most one fetch a partition). So:
 *   - stalled on a backlog, for every partition 0 < gauge <= broker lag, and summed over partitions
 *     broker lag - gauge is at least the pending events and at most that plus one fetch each;
 *   - while the backlog drains, a gauge read after the broker's lag is never above it;
 *   - once everything is committed, both are 0 for every partition.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Admin } from 'kafkajs';
import {
  ServeProcess,
  connectProducer,
  createTopics,
  fraudEvents,
  kafka,
  metricValue,
  registerFeatureSchema,
  registry,
  sleep,
  waitFor,
  type TestTopics,
} from './harness.js';

const PARTITIONS = 3;
/** Per partition: well above the pending limit plus the most records one fetch can hold. */
const EVENTS_PER_PARTITION = 12_000;
const PENDING_LIMIT = 300;
/**
 * The most bytes one fetch returns for a partition: serve asks for 256 KiB; 1 MiB, the Kafka
 * consumer's default, leaves room for a client that asks for more. (A fetch may exceed its limit
 * by one record batch; the batches written here are far smaller.)
 */
const FETCH_BYTES = 1_048_576;

interface PartitionLag {
  /** End offset minus the committed offset (the earliest offset when nothing is committed yet). */
  lag: number;
  committed: number;
}

/**
 * The group's lag per partition as the broker reports it. A partition without a committed offset
 * counts from its earliest offset, where a new serving group starts (STREAMSCORE_FROM_BEGINNING).
 */
async function brokerLag(admin: Admin, topics: TestTopics): Promise<Map<number, PartitionLag>> {
  const ends = await admin.fetchTopicOffsets(topics.requests);
  const [group] = await admin.fetchOffsets({ groupId: topics.group, topics: [topics.requests] });
  const lags = new Map<number, PartitionLag>();
  for (const end of ends) {
    const offset = Number(group?.partitions.find((p) => p.partition === end.partition)?.offset ?? -1);
    const committed = offset < 0 ? Number(end.low) : offset;
    lags.set(end.partition, { lag: Number(end.high) - committed, committed });
  }
  return lags;
}

/** streamscore_consumer_lag_messages per partition of `topic`, from serve's /metrics. */
function lagGauge(metrics: string, topic: string): Map<number, number> {
  const gauge = new Map<number, number>();
  const line = /^streamscore_consumer_lag_messages\{([^}]*)\} (\S+)$/gm;
  for (const [, labels, value] of metrics.matchAll(line)) {
    if (!labels!.includes(`topic="${topic}"`)) continue;
    const partition = /partition="(\d+)"/.exec(labels!)?.[1];
    if (partition !== undefined) gauge.set(Number(partition), Number(value));
  }
  return gauge;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/** Reads until two reads half a second apart agree; returns the last. */
async function settled<T>(read: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  for (;;) {
    assert.ok(
      Date.now() < deadline,
      `still moving after ${timeoutMs} ms: ${JSON.stringify(last, mapsAsArrays)}`,
    );
    await sleep(500);
    const next = await read();
    if (JSON.stringify(next, mapsAsArrays) === JSON.stringify(last, mapsAsArrays)) return next;
    last = next;
  }
}

function mapsAsArrays(_key: string, value: unknown): unknown {
  return value instanceof Map ? [...(value as Map<unknown, unknown>)] : value;
}

function writeRouting(path: string, primary: string): void {
  writeFileSync(`${path}.tmp`, JSON.stringify({ fraud: { primary } }));
  renameSync(`${path}.tmp`, path);
}

/** Writes the events round-robin over the partitions; returns the smallest value written, bytes. */
async function produceBacklog(topic: string): Promise<number> {
  const events = fraudEvents(EVENTS_PER_PARTITION * PARTITIONS, { seed: 41, runId: topic });
  const schemaId = await registerFeatureSchema(topic);
  const producer = await connectProducer();
  let smallest = Number.POSITIVE_INFINITY;
  try {
    for (let start = 0; start < events.length; start += 1_500) {
      const messages = [];
      for (const [i, event] of events.slice(start, start + 1_500).entries()) {
        const value = await registry.encode(schemaId, { ...event, event_time: Date.now() });
        smallest = Math.min(smallest, value.length);
        messages.push({ key: event.entity_key, value, partition: (start + i) % PARTITIONS });
      }
      await producer.send({ topic, messages });
    }
  } finally {
    await producer.disconnect();
  }
  return smallest;
}

describe('consumer lag: the gauge against the lag the broker reports for the group', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let folder: string;
  let admin: Admin;
  let serve: ServeProcess | undefined;

  before(async () => {
    topics = await createTopics('lag', PARTITIONS);
    folder = mkdtempSync(join(tmpdir(), 'streamscore-lag-'));
    admin = kafka.admin();
    await admin.connect();
  });
  after(async () => {
    await serve?.stop('SIGKILL');
    await admin.disconnect();
    await topics.remove();
    rmSync(folder, { recursive: true, force: true });
  });

  it('differs by what is in flight while serve is stalled on a backlog, and agrees at 0 once it is drained', async () => {
    const smallestValue = await produceBacklog(topics.requests);
    const recordsPerFetch = Math.floor(FETCH_BYTES / smallestValue);

    // fraud/9 loads, then fails on every batch that is not exactly 2 rows: serve stalls, holding
    // PENDING_LIMIT events, and stops taking records in.
    const routing = join(folder, 'routing.json');
    writeRouting(routing, '9');
    serve = ServeProcess.start(topics, {
      STREAMSCORE_MODELS_DIR: 'test/fixtures/models',
      STREAMSCORE_ROUTING_FILE: routing,
      STREAMSCORE_RELOAD_INTERVAL_MS: '100',
      STREAMSCORE_MAX_PENDING_EVENTS: String(PENDING_LIMIT),
      STREAMSCORE_BATCH_MAX_ROWS: '100',
      STREAMSCORE_COMMIT_INTERVAL_MS: '100',
    });
    await serve.ready();
    const current = serve;
    const metrics = () => current.metrics();
    await waitFor('the inference stall with the pending limit reached', async () => {
      const text = await metrics();
      return (
        metricValue(text, 'streamscore_stalled', { reason: 'inference' }) === 1 &&
        metricValue(text, 'streamscore_pending_events') === PENDING_LIMIT
      );
    });
    // Settled: the broker's view and the gauge no longer move (commits of anything scored before
    // the stall included).
    const { broker: before, gauge } = await settled(async () => ({
      broker: await brokerLag(admin, topics),
      gauge: lagGauge(await metrics(), topics.requests),
    }));
    const pending = metricValue(await metrics(), 'streamscore_pending_events');
    assert.equal(pending, PENDING_LIMIT);

    const stalled = [...before].map(([partition, broker]) => ({
      partition,
      broker: broker.lag,
      gauge: gauge.get(partition),
    }));
    for (const { partition, broker, gauge: value } of stalled) {
      assert.ok(value !== undefined, `partition ${partition}: no gauge (${JSON.stringify(stalled)})`);
      assert.ok(
        value > 0 && value <= broker,
        `partition ${partition}: 0 < gauge ${value} <= broker lag ${broker}`,
      );
    }
    const inFlight = sum(stalled.map((p) => p.broker)) - sum(stalled.map((p) => p.gauge!));
    assert.ok(
      inFlight >= pending && inFlight <= pending + PARTITIONS * recordsPerFetch,
      `broker lag - gauge = ${inFlight}: expected the ${pending} pending events plus at most one fetch ` +
        `(${recordsPerFetch} records) a partition (${JSON.stringify(stalled)})`,
    );

    // A working version: the backlog drains. Read the broker first, then the gauge: the gauge may
    // have moved on since, never back.
    writeRouting(routing, '8');
    const total = sum([...before.values()].map((p) => p.lag));
    let partial = 0;
    let drained = false;
    const deadline = Date.now() + 60_000;
    while (!drained) {
      assert.ok(Date.now() < deadline, `not drained within a minute:\n${current.output()}`);
      const broker = await brokerLag(admin, topics);
      const now = lagGauge(await metrics(), topics.requests);
      for (const [partition, { lag }] of broker) {
        const value = now.get(partition)!;
        assert.ok(value <= lag, `partition ${partition}: gauge ${value} read after broker lag ${lag}`);
      }
      const left = sum([...broker.values()].map((p) => p.lag));
      if (left > 0 && left < total) partial += 1;
      drained = left === 0;
      if (!drained) await sleep(100);
    }
    assert.ok(partial >= 2, `only ${partial} samples taken while the backlog drained`);

    // Everything committed: the gauge says 0 for every partition, as the broker does.
    const final = lagGauge(await metrics(), topics.requests);
    assert.deepEqual(
      [...final].sort(([a], [b]) => a - b),
      Array.from({ length: PARTITIONS }, (_, partition) => [partition, 0]),
    );
    assert.equal(
      metricValue(await metrics(), 'streamscore_predictions_published_total'),
      EVENTS_PER_PARTITION * PARTITIONS,
    );
    const exit = await current.stop('SIGTERM');
    assert.equal(exit.code, 0, current.output());
  });
});
