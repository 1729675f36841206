/**
 * Shared pieces of the integration tests: a real broker and registry (from KAFKA_BROKERS and
 * SCHEMA_REGISTRY_URL, which `npm test` sets), random topic and group names, serve as a child
 * process, and helpers to produce and collect records. Nothing here stands in for Kafka or the
 * registry: if they cannot be reached, the tests fail.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Kafka, Partitioners, logLevel, type Admin, type IHeaders, type Producer } from 'kafkajs';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { FeatureEvent } from '../src/codec/requests.js';
import { RegistryClient, readSchemaFile, registerValueSchema } from '../src/codec/registry.js';
import { quietKafkajsTimers } from '../src/kafka/client-log.js';
import { EventGenerator, readFeatureSpecs } from '../src/produce/generator.js';

export const BROKERS = process.env.KAFKA_BROKERS;
export const REGISTRY_URL = process.env.SCHEMA_REGISTRY_URL;
/**
 * The Kafka client the processes under test use (STREAMSCORE_KAFKA_CLIENT): the suite runs once
 * per supported client (scripts/run-tests.ts), and every process it starts takes the run's client.
 */
export const CLIENT_ENV: Record<string, string> =
  process.env.STREAMSCORE_KAFKA_CLIENT === undefined
    ? {}
    : { STREAMSCORE_KAFKA_CLIENT: process.env.STREAMSCORE_KAFKA_CLIENT };
if (!BROKERS || !REGISTRY_URL) {
  throw new Error(
    'Integration tests need a broker and a registry: run them with `npm test`, which starts or finds them, ' +
      'or set KAFKA_BROKERS and SCHEMA_REGISTRY_URL.',
  );
}

quietKafkajsTimers();
export const kafka = new Kafka({
  clientId: 'streamscore-tests',
  brokers: BROKERS.split(','),
  logLevel: logLevel.NOTHING,
});
/** A third-party registry client, so tests encode and decode with code other than serve's. */
export const registry = new SchemaRegistry({ host: REGISTRY_URL });
/** streamscore's own registry client, for registering schemas as serve does. */
export const registryClient = new RegistryClient({ url: REGISTRY_URL });

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export interface TestTopics {
  requests: string;
  predictions: string;
  dlq: string;
  shadow: string;
  group: string;
}

/** Fresh topics and group for one test (on `client`'s cluster); remove() deletes the topics. */
export async function createTopics(
  prefix: string,
  partitions = 3,
  client: Kafka = kafka,
): Promise<TestTopics & { remove(): Promise<void> }> {
  const base = uniqueName(prefix);
  const topics = {
    requests: `${base}.requests`,
    predictions: `${base}.predictions`,
    dlq: `${base}.dlq`,
    shadow: `${base}.shadow`,
    group: `${base}-serve`,
  };
  const admin = await connectAdmin(client);
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [topics.requests, topics.predictions, topics.dlq, topics.shadow].map((topic) => ({
        topic,
        numPartitions: partitions,
      })),
    });
  } finally {
    await admin.disconnect();
  }
  return {
    ...topics,
    remove: async () => {
      const cleanup = await connectAdmin(client);
      try {
        await cleanup.deleteTopics({
          topics: [topics.requests, topics.predictions, topics.dlq, topics.shadow],
        });
        await cleanup.deleteGroups([topics.group]).catch(() => undefined);
      } finally {
        await cleanup.disconnect();
      }
    },
  };
}

async function connectAdmin(client: Kafka): Promise<Admin> {
  const admin = client.admin();
  await admin.connect();
  return admin;
}

export async function registerFeatureSchema(topic: string): Promise<number> {
  return registerValueSchema(registryClient, topic, await readSchemaFile('feature-event.avsc'));
}

export async function connectProducer(): Promise<Producer> {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  return producer;
}

export interface RawRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/**
 * Reads a topic from the start with a throw-away group until `count` records arrived and then
 * `settleMs` passed with nothing new (so extras would be seen), or until `timeoutMs`. Only
 * committed records are read: what a transactional writer aborted, or has not committed yet, is not
 * output.
 */
export async function collect(
  topic: string,
  options: { count: number; timeoutMs: number; settleMs?: number },
): Promise<RawRecord[]> {
  const consumer = kafka.consumer({
    groupId: uniqueName('collect'),
    maxWaitTimeInMs: 200,
    readUncommitted: false,
  });
  const records: RawRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let lastArrival = Date.now();
    await consumer.run({
      autoCommit: false,
      eachBatch: ({ batch }) => {
        for (const message of batch.messages) {
          records.push({
            topic,
            partition: batch.partition,
            offset: message.offset,
            key: message.key?.toString() ?? null,
            value: message.value,
            headers: headersOf(message.headers),
          });
        }
        lastArrival = Date.now();
        return Promise.resolve();
      },
    });
    const deadline = Date.now() + options.timeoutMs;
    const settle = options.settleMs ?? 1_500;
    while (Date.now() < deadline) {
      if (records.length >= options.count && Date.now() - lastArrival >= settle) break;
      await sleep(100);
    }
  } finally {
    await consumer.disconnect();
  }
  return records;
}

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) result[name] = String(value);
  return result;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What a finished CLI process printed and how it ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `streamscore ARGS` to its end (killed after `timeoutMs`) with only PATH and `env` in its
 * environment.
 */
export function runCli(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<CliRun> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/src/cli.js', ...args], {
      env: { PATH: process.env.PATH, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...CLIENT_ENV, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** `streamscore serve` as a child process, with its JSON log lines kept for assertions. */
export class ServeProcess {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  private constructor(child: ChildProcess) {
    this.child = child;
    let buffered = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) {
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ msg: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  static start(
    topics: TestTopics,
    env: Record<string, string> = {},
    command: 'serve' | 'drift' | 'backfill' = 'serve',
    args: readonly string[] = [],
  ): ServeProcess {
    const child = spawn(process.execPath, ['dist/src/cli.js', command, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        ...CLIENT_ENV,
        KAFKA_BROKERS: BROKERS,
        SCHEMA_REGISTRY_URL: REGISTRY_URL,
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
        STREAMSCORE_REQUESTS_TOPIC: topics.requests,
        STREAMSCORE_PREDICTIONS_TOPIC: topics.predictions,
        STREAMSCORE_DLQ_TOPIC: topics.dlq,
        STREAMSCORE_SHADOW_TOPIC: topics.shadow,
        STREAMSCORE_GROUP_ID: topics.group,
        STREAMSCORE_METRICS_PORT: '0',
        STREAMSCORE_DRIFT_METRICS_PORT: '0',
        STREAMSCORE_METRICS_HOST: '127.0.0.1',
        STREAMSCORE_INFERENCE_THREADS: '1',
        ...env,
      },
    });
    return new ServeProcess(child);
  }

  /** Resolves once the replica joined its group (or rejects with its output if it exited). */
  async ready(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.lines.some((line) => /joined (consumer|its) group/.test(String(line.msg)))) return;
      if (this.child.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`serve did not join its group (exit ${this.child.exitCode}):\n${this.output()}`);
  }

  get metricsPort(): number {
    const line = this.lines.find((l) => typeof l.port === 'number' && /metrics on/.test(String(l.msg)));
    if (!line) throw new Error('serve has not logged its metrics port yet');
    return line.port as number;
  }

  async metrics(): Promise<string> {
    const response = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    return response.text();
  }

  output(): string {
    return `${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`;
  }

  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** The value of a counter line in Prometheus text, summed over label sets that match. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`)))
      total += Number(match[3]);
  }
  return total;
}

const FRAUD_FEATURES = [
  'amount',
  'account_age_days',
  'tx_count_24h',
  'distance_from_home_km',
  'merchant_risk',
  'hour_of_day',
  'is_foreign',
  'card_present',
];

/** Synthetic fraud events; keyOf(i) sets the entity key (and so the Kafka key) of event i. */
export function fraudEvents(
  count: number,
  options: { seed: number; runId: string; keyOf?: (i: number) => string },
): FeatureEvent[] {
  const generator = new EventGenerator({
    featureNames: FRAUD_FEATURES,
    specs: readFeatureSpecs('training/fraud_features.json'),
    seed: options.seed,
    keys: 1_000,
    runId: options.runId,
  });
  return Array.from({ length: count }, (_, i) => {
    const event = generator.next();
    return options.keyOf === undefined ? event : { ...event, entity_key: options.keyOf(i) };
  });
}

/**
 * Writes events keyed by entity key, in chunks; paced to `rate` events/s when given. With
 * `timeOf`, event i gets that time as its record timestamp and its event_time.
 */
export async function produceEvents(
  topic: string,
  events: FeatureEvent[],
  options: { rate?: number; timeOf?: (i: number) => number } = {},
): Promise<void> {
  const schemaId = await registerFeatureSchema(topic);
  const producer = await connectProducer();
  const chunk = options.rate === undefined ? 1_000 : Math.max(1, Math.round(options.rate / 20));
  const started = Date.now();
  try {
    for (let sent = 0; sent < events.length; sent += chunk) {
      if (options.rate !== undefined) {
        const wait = started + (sent / options.rate) * 1_000 - Date.now();
        if (wait > 0) await sleep(wait);
      }
      const messages = [];
      for (let i = sent; i < Math.min(events.length, sent + chunk); i += 1) {
        const event = events[i]!;
        const time = options.timeOf?.(i);
        messages.push({
          key: event.entity_key,
          value: await registry.encode(schemaId, { ...event, event_time: time ?? Date.now() }),
          ...(time === undefined ? {} : { timestamp: String(time) }),
        });
      }
      await producer.send({ topic, messages });
    }
  } finally {
    await producer.disconnect();
  }
}

/** Decodes collected records through the registry. */
export async function decodeAll<T>(
  records: RawRecord[],
): Promise<(T & { partition: number; offset: string })[]> {
  const decoded = [];
  for (const record of records) {
    const value = (await registry.decode(record.value!)) as T;
    decoded.push({ ...value, partition: record.partition, offset: record.offset });
  }
  return decoded;
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
