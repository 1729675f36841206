/**
 * Delivery accounting for the fault tests (delivery.test.ts): a writer puts fraud events with
 * unique request ids on the requests topic, a scenario breaks something while they flow, and a
 * reader accounts for every request id the broker acknowledged: scored (a prediction), dead-lettered
 * (a dead letter and no prediction) or lost (neither), with the ids that came out more than once.
 *
 * Outputs are read as a downstream consumer would read them: committed records only
 * (read_committed), to the end offsets that isolation level reports once every replica stopped. In
 * at-least-once mode nothing is transactional and that is every record; in exactly-once mode a
 * transaction that was aborted, or never finished, is not output.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Kafka, Partitioners, logLevel, type Producer } from 'kafkajs';
import type { Prediction } from '../src/codec/predictions.js';
import type { FeatureEvent } from '../src/codec/requests.js';
import {
  CLIENT_ENV,
  ServeProcess,
  createTopics,
  fraudEvents,
  kafka as sharedKafka,
  metricValue,
  registerFeatureSchema,
  registry,
  sleep,
  uniqueName,
  waitFor,
  type TestTopics,
} from './harness.js';

export const DELIVERY_MODES = ['at-least-once', 'exactly-once'] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];

/**
 * The delivery modes this run checks: both, except with kafkajs, which serve supports in
 * at-least-once mode only. STREAMSCORE_TEST_DELIVERY=at-least-once (a comma-separated list) narrows
 * them, e.g. to leave out a mode under construction; it is the test runner's setting and never
 * reaches serve.
 */
export function deliveryModes(): DeliveryMode[] {
  const supported: DeliveryMode[] =
    process.env.STREAMSCORE_KAFKA_CLIENT === 'kafkajs' ? ['at-least-once'] : [...DELIVERY_MODES];
  const chosen = process.env.STREAMSCORE_TEST_DELIVERY;
  if (chosen === undefined || chosen.trim() === '') return supported;
  const names = chosen.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(DELIVERY_MODES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `STREAMSCORE_TEST_DELIVERY: unknown mode "${unknown.join(', ')}" - expected ${DELIVERY_MODES.join(' or ')}`,
    );
  }
  const modes = supported.filter((mode) => names.includes(mode));
  for (const mode of names.filter((name) => !(modes as string[]).includes(name))) {
    process.stdout.write(`# delivery test: ${mode} needs the platformatic client; not run with kafkajs\n`);
  }
  return modes;
}

/**
 * serve's environment for a mode. At-least-once is serve's default and is left unset, so the same
 * runs check a serve that has no STREAMSCORE_DELIVERY setting (it refuses unknown variables).
 */
export function deliveryEnv(mode: DeliveryMode): Record<string, string> {
  return mode === 'at-least-once' ? {} : { STREAMSCORE_DELIVERY: mode };
}

/** The client and mode, for summary lines. */
export function runLabel(mode: DeliveryMode): string {
  return `${CLIENT_ENV.STREAMSCORE_KAFKA_CLIENT ?? 'platformatic'}, ${mode}`;
}

/** Events to write, and the request ids among them that serve must dead-letter. */
export interface EventPlan {
  events: FeatureEvent[];
  poison: ReadonlySet<string>;
}

/**
 * `count` fraud events; every `poisonEvery`-th one lacks the feature "amount", which the model
 * needs, so serve dead-letters it (MISSING_FEATURE): the dead-letter path is counted too.
 */
export function plannedEvents(
  count: number,
  options: { seed: number; runId: string; keyOf?: (i: number) => string; poisonEvery?: number },
): EventPlan {
  const every = options.poisonEvery ?? 50;
  const poison = new Set<string>();
  const events = fraudEvents(count, options).map((event, i) => {
    if (i % every !== every - 1) return event;
    poison.add(event.request_id);
    const { amount: _amount, ...features } = event.features;
    return { ...event, features };
  });
  return { events, poison };
}

/**
 * Writes a plan's events in chunks every 50 ms until finish(). An event counts as produced once
 * the broker acknowledged it (acks -1). With `tolerant`, a failed write is not sent again: its ids
 * are set aside as unconfirmed (the broker may have taken them) and the writer goes on with new
 * ones. A chunk the client itself sent twice is seen on the requests topic (OutputReader).
 */
export class Writer {
  readonly acknowledged: string[] = [];
  readonly unconfirmed = new Set<string>();
  /** When each acknowledged chunk was acknowledged, in order. */
  readonly #ackTimes: number[] = [];
  readonly #producer: Producer;
  readonly #running: Promise<void>;
  #target = Infinity;
  #done = false;

  private constructor(
    producer: Producer,
    topic: string,
    schemaId: number,
    events: FeatureEvent[],
    options: { rate: number; tolerant: boolean },
  ) {
    this.#producer = producer;
    this.#running = this.#write(topic, schemaId, events, options).finally(() => (this.#done = true));
    // finish() awaits it and reports the failure; this only keeps it from counting as unhandled.
    this.#running.catch(() => undefined);
  }

  static async start(
    client: Kafka,
    topic: string,
    events: FeatureEvent[],
    options: { rate: number; tolerant?: boolean },
  ): Promise<Writer> {
    const schemaId = await registerFeatureSchema(topic);
    const tolerant = options.tolerant ?? false;
    const producer = client.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      ...(tolerant ? { retry: { retries: 0 } } : {}),
    });
    await producer.connect();
    return new Writer(producer, topic, schemaId, events, { rate: options.rate, tolerant });
  }

  /** True once it stopped: finish() was called and reached, or the events ran out, or it failed. */
  get done(): boolean {
    return this.#done;
  }

  /** When the first chunk acknowledged at or after `time` was acknowledged. */
  firstAckAfter(time: number): number | undefined {
    return this.#ackTimes.find((at) => at >= time);
  }

  /** Writes on until at least `count` events were acknowledged, then stops and disconnects. */
  async finish(count: number): Promise<void> {
    this.#target = count;
    try {
      await this.#running;
    } finally {
      await this.#producer.disconnect();
    }
  }

  /** Stops at once (cleanup after a failure); never rejects. */
  async close(): Promise<void> {
    this.#target = 0;
    await this.#running.catch(() => undefined);
    await this.#producer.disconnect().catch(() => undefined);
  }

  async #write(
    topic: string,
    schemaId: number,
    events: FeatureEvent[],
    options: { rate: number; tolerant: boolean },
  ): Promise<void> {
    const tickMs = 50;
    const chunk = Math.max(1, Math.round((options.rate * tickMs) / 1_000));
    let next = 0;
    while (this.acknowledged.length < this.#target && next < events.length) {
      const started = Date.now();
      const slice = events.slice(next, next + chunk);
      next += slice.length;
      const messages = [];
      for (const event of slice) {
        messages.push({
          key: event.entity_key,
          value: await registry.encode(schemaId, { ...event, event_time: Date.now() }),
        });
      }
      try {
        await this.#producer.send({ topic, messages, acks: -1 });
        this.acknowledged.push(...slice.map((event) => event.request_id));
        this.#ackTimes.push(Date.now());
      } catch (error) {
        if (!options.tolerant) throw error;
        for (const event of slice) this.unconfirmed.add(event.request_id);
      }
      const wait = started + tickMs - Date.now();
      if (wait > 0) await sleep(wait);
    }
  }
}

/** A prediction as read back: which request, which key, where it was written. */
export interface ScoredRecord {
  requestId: string;
  entityKey: string;
  partition: number;
  offset: bigint;
}

/** The topics a reader reads. */
export interface CountedTopics {
  requests: string;
  predictions: string;
  dlq: string;
}

/**
 * Reads the predictions and dead-letter topics from the start, committed records only, counting
 * outputs per request id as they come; finish() reads on to the end offsets and stops. It reads
 * the requests topic too, so that an event the writer's client wrote twice is known as such and
 * its two outputs are not taken for serve's repeat.
 */
export class OutputReader {
  readonly predictions = new Map<string, number>();
  readonly deadLetters = new Map<string, number>();
  /** Records per request id on the requests topic. */
  readonly requests = new Map<string, number>();
  /** Every prediction in the order read; within a partition, offset order. */
  readonly scored: ScoredRecord[] = [];
  /** Records whose value could not be decoded, or has no request id. */
  unreadable = 0;
  /** Partitions not read to their end offset by finish(), with where reading stopped. */
  behind: string[] = [];
  readonly #client: Kafka;
  readonly #topics: CountedTopics;
  readonly #consumer: ReturnType<Kafka['consumer']>;
  /** The next offset to read, per "topic:partition", control records (transaction markers) included. */
  readonly #positions = new Map<string, bigint>();
  #closed = false;

  private constructor(client: Kafka, topics: CountedTopics) {
    this.#client = client;
    this.#topics = topics;
    this.#consumer = client.consumer({
      groupId: uniqueName('delivery-count'),
      maxWaitTimeInMs: 200,
      // read_committed (kafkajs's default, stated here because the counts depend on it).
      readUncommitted: false,
    });
    // Emitted after each batch, also for one that held only transaction markers or aborted
    // records (eachBatch does not see those), so the position passes them.
    this.#consumer.on(this.#consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      this.#positions.set(`${payload.topic}:${payload.partition}`, BigInt(payload.lastOffset) + 1n);
    });
  }

  static async start(client: Kafka, topics: CountedTopics): Promise<OutputReader> {
    const reader = new OutputReader(client, topics);
    await reader.#consumer.connect();
    await reader.#consumer.subscribe({
      topics: [topics.requests, topics.predictions, topics.dlq],
      fromBeginning: true,
    });
    await reader.#consumer.run({
      autoCommit: false,
      // Never throws: kafkajs would hand the batch over again. A batch handed over again anyway
      // (the consumer restarted after an error: with no commits, from the start) is not counted
      // again.
      eachBatch: async ({ batch }) => {
        const from = reader.#positions.get(`${batch.topic}:${batch.partition}`) ?? 0n;
        for (const message of batch.messages) {
          if (BigInt(message.offset) < from) continue;
          const fields = await decoded(message.value);
          if (typeof fields?.request_id !== 'string') {
            reader.unreadable += 1;
          } else if (batch.topic === topics.predictions) {
            count(reader.predictions, fields.request_id);
            reader.scored.push({
              requestId: fields.request_id,
              entityKey: String(fields.entity_key),
              partition: batch.partition,
              offset: BigInt(message.offset),
            });
          } else {
            count(batch.topic === topics.dlq ? reader.deadLetters : reader.requests, fields.request_id);
          }
        }
      },
    });
    return reader;
  }

  has(id: string): boolean {
    return this.predictions.has(id) || this.deadLetters.has(id);
  }

  /** Waits until each id has an output; returns how many have none when `timeoutMs` ran out. */
  async waitForAll(ids: readonly string[], timeoutMs: number): Promise<number> {
    let from = 0;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      while (from < ids.length && this.has(ids[from]!)) from += 1;
      if (from === ids.length) return 0;
      await sleep(100);
    }
    return ids.filter((id) => !this.has(id)).length;
  }

  /**
   * Reads on to the end offsets the committed isolation level reports now (the last stable offset),
   * which, with every writer stopped, is the end of the topic; then stops. Partitions not reached
   * within `timeoutMs` are listed in `behind`.
   */
  async finish(timeoutMs = 30_000): Promise<void> {
    const admin = this.#client.admin();
    const ends = new Map<string, bigint>();
    await admin.connect();
    try {
      for (const topic of [this.#topics.requests, this.#topics.predictions, this.#topics.dlq]) {
        // fetchTopicOffsets asks with read_committed: for partitions with transactions, the LSO.
        for (const { partition, offset } of await admin.fetchTopicOffsets(topic)) {
          ends.set(`${topic}:${partition}`, BigInt(offset));
        }
      }
    } finally {
      await admin.disconnect();
    }
    const unread = () =>
      [...ends].filter(([where, end]) => end > 0n && (this.#positions.get(where) ?? 0n) < end);
    await waitFor('the outputs to be read to their end', () => unread().length === 0, timeoutMs).catch(
      () => undefined,
    );
    this.behind = unread().map(([where, end]) => `${where} at ${this.#positions.get(where) ?? 0n} of ${end}`);
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#consumer.disconnect();
  }
}

function count(map: Map<string, number>, id: string): void {
  map.set(id, (map.get(id) ?? 0) + 1);
}

/**
 * A record's fields through the registry: a prediction, or a FeatureEvent (a dead letter keeps the
 * original value). Undefined when the value is missing or cannot be decoded.
 */
async function decoded(value: Buffer | null): Promise<Partial<Prediction & FeatureEvent> | undefined> {
  if (value === null) return undefined;
  try {
    return (await registry.decode(value)) as Partial<Prediction & FeatureEvent>;
  } catch {
    return undefined;
  }
}

/** Where every produced request id ended up. */
export interface Tally {
  /** Ids the broker acknowledged. */
  produced: number;
  /** Produced ids with a prediction. */
  scored: number;
  /** Produced ids with a dead letter and no prediction. */
  deadLettered: number;
  /** Produced ids with neither. */
  lost: number;
  /**
   * Ids with more outputs (predictions and dead letters together) than records on the requests
   * topic: serve's repeats...
   */
  duplicateIds: number;
  /** ...and the outputs beyond one per request record, summed over those ids. */
  extraCopies: number;
  /** Ids on the requests topic more than once (the writer's client sent a chunk again). */
  writtenTwice: number;
  /** Produced ids with the wrong kind of output: a poison event scored, a good one dead-lettered. */
  misrouted: number;
  /** Outputs for ids written without an acknowledgement (the broker took them after all). */
  unconfirmed: number;
  /** Ids in the outputs that the writer never wrote; records that could not be decoded count too. */
  unknown: number;
  /** Some lost ids, for the failure message. */
  lostIds: string[];
  /**
   * Requests-topic records past the group's committed offsets once every replica stopped. With
   * ids lost, it tells the kinds of loss apart: none uncommitted, their offsets were committed
   * without an output (lost for good); otherwise a partition was left unread (the next owner
   * would read them).
   */
  uncommitted: number;
}

export function tally(
  writer: Writer,
  reader: OutputReader,
  poison: ReadonlySet<string>,
  uncommitted: number,
): Tally {
  const produced = new Set(writer.acknowledged);
  let scored = 0;
  let deadLettered = 0;
  let misrouted = 0;
  const lostIds: string[] = [];
  for (const id of produced) {
    const predicted = reader.predictions.has(id);
    const dead = reader.deadLetters.has(id);
    if (predicted) scored += 1;
    else if (dead) deadLettered += 1;
    else lostIds.push(id);
    if ((predicted || dead) && (poison.has(id) ? predicted : dead)) misrouted += 1;
  }
  let duplicateIds = 0;
  let extraCopies = 0;
  let unconfirmed = 0;
  let unknown = reader.unreadable;
  for (const id of new Set([...reader.predictions.keys(), ...reader.deadLetters.keys()])) {
    const outputs = (reader.predictions.get(id) ?? 0) + (reader.deadLetters.get(id) ?? 0);
    const written = Math.max(1, reader.requests.get(id) ?? 0);
    if (outputs > written) {
      duplicateIds += 1;
      extraCopies += outputs - written;
    }
    if (produced.has(id)) continue;
    if (writer.unconfirmed.has(id)) unconfirmed += 1;
    else unknown += 1;
  }
  return {
    produced: produced.size,
    scored,
    deadLettered,
    lost: lostIds.length,
    duplicateIds,
    extraCopies,
    writtenTwice: [...reader.requests.values()].filter((copies) => copies > 1).length,
    misrouted,
    unconfirmed,
    unknown,
    lostIds: lostIds.slice(0, 10),
    uncommitted,
  };
}

/** The one-line summary a scenario prints (node:test shows stdout lines starting with #). */
export function summaryLine(label: string, counted: Tally, notes: string[] = []): string {
  const parts = [
    `produced ${counted.produced}`,
    `scored ${counted.scored}`,
    `dead-lettered ${counted.deadLettered}`,
    `lost ${counted.lost}`,
    `duplicates ${counted.duplicateIds} (${counted.extraCopies} extra copies)`,
    ...(counted.unconfirmed > 0 ? [`unacknowledged but written ${counted.unconfirmed}`] : []),
    ...(counted.writtenTwice > 0 ? [`written twice by the producer ${counted.writtenTwice}`] : []),
    ...(counted.uncommitted > 0 ? [`left uncommitted ${counted.uncommitted}`] : []),
    ...notes,
  ];
  return `# delivery test: ${label}: ${parts.join(', ')}\n`;
}

/** Replicas in these tests: small batches, frequent commits, a session that expires in seconds. */
export const SERVE_ENV: Record<string, string> = {
  STREAMSCORE_BATCH_MAX_ROWS: '50',
  STREAMSCORE_COMMIT_INTERVAL_MS: '100',
  STREAMSCORE_MAX_PENDING_EVENTS: '500',
  STREAMSCORE_SESSION_TIMEOUT_MS: '6000',
};

/**
 * One scenario's topics, replicas, writer and reader, on the shared cluster or another (a private
 * broker), with serve in one delivery mode.
 */
export class DeliveryRun {
  readonly replicas: ServeProcess[] = [];
  readonly client: Kafka;
  readonly topics: TestTopics & { remove(): Promise<void> };
  readonly mode: DeliveryMode;
  readonly #env: Record<string, string>;
  writer: Writer | undefined;
  reader: OutputReader | undefined;

  private constructor(
    client: Kafka,
    topics: TestTopics & { remove(): Promise<void> },
    mode: DeliveryMode,
    env: Record<string, string>,
  ) {
    this.client = client;
    this.topics = topics;
    this.mode = mode;
    this.#env = env;
  }

  static async open(
    name: string,
    mode: DeliveryMode,
    options: { partitions: number; client?: Kafka; brokers?: string },
  ): Promise<DeliveryRun> {
    const client = options.client ?? sharedKafka;
    const topics = await createTopics(name, options.partitions, client);
    const env = {
      ...SERVE_ENV,
      ...deliveryEnv(mode),
      ...(options.brokers === undefined ? {} : { KAFKA_BROKERS: options.brokers }),
    };
    return new DeliveryRun(client, topics, mode, env);
  }

  /** Starts a replica (not awaiting its join). */
  replica(env: Record<string, string> = {}): ServeProcess {
    const replica = ServeProcess.start(this.topics, { ...this.#env, ...env });
    this.replicas.push(replica);
    return replica;
  }

  async startReader(): Promise<OutputReader> {
    this.reader = await OutputReader.start(this.client, this.topics);
    return this.reader;
  }

  async startWriter(events: FeatureEvent[], options: { rate: number; tolerant?: boolean }): Promise<Writer> {
    this.writer = await Writer.start(this.client, this.topics.requests, events, options);
    return this.writer;
  }

  /**
   * The end of a scenario: waits for an output for every acknowledged id (the replicas still
   * running), stops them with SIGTERM so nothing more is written, reads the outputs to their end and
   * counts.
   */
  async settle(poison: ReadonlySet<string>, timeoutMs = 90_000): Promise<Tally> {
    const writer = this.writer!;
    const reader = this.reader ?? (await this.startReader());
    await reader.waitForAll(writer.acknowledged, timeoutMs);
    for (const replica of this.replicas) await replica.stop('SIGTERM');
    await reader.finish();
    return tally(writer, reader, poison, await this.#uncommitted());
  }

  /** Records of the requests topic past the group's committed offsets, summed over partitions. */
  async #uncommitted(): Promise<number> {
    const admin = this.client.admin();
    await admin.connect();
    try {
      const ends = await admin.fetchTopicOffsets(this.topics.requests);
      const [committed] = await admin.fetchOffsets({
        groupId: this.topics.group,
        topics: [this.topics.requests],
      });
      let total = 0;
      for (const { partition, offset } of ends) {
        const at = committed?.partitions.find((entry) => entry.partition === partition)?.offset ?? '-1';
        total += Number(offset) - Math.max(0, Number(at));
      }
      return total;
    } finally {
      await admin.disconnect();
    }
  }

  /** The last log lines of each replica (each cut to 400 characters), for failure messages. */
  logTails(lines = 30): string {
    return this.replicas
      .map((replica, i) => {
        const tail = replica
          .output()
          .split('\n')
          .filter((line) => line !== '')
          .slice(-lines)
          .map((line) => (line.length > 400 ? `${line.slice(0, 400)}...` : line));
        return `replica ${i + 1}:\n${tail.join('\n')}`;
      })
      .join('\n');
  }

  /** Cleanup, also after a failure: kills what still runs and deletes the topics. */
  async close(): Promise<void> {
    await this.writer?.close();
    await this.reader?.close();
    for (const replica of this.replicas) await replica.stop('SIGKILL');
    await this.topics.remove();
  }
}

/** streamscore_predictions_published_total of one replica. */
export async function published(replica: ServeProcess): Promise<number> {
  return metricValue(await replica.metrics(), 'streamscore_predictions_published_total');
}

/**
 * Per key, in offset order, each event's first prediction comes after those of the events written
 * before it (a repeat may come later, but never reorders first ones); request ids end in the
 * event's index. The first key out of order, described, or undefined.
 */
export function orderViolation(scored: readonly ScoredRecord[]): string | undefined {
  const byKey = new Map<string, ScoredRecord[]>();
  for (const record of scored) {
    const list = byKey.get(record.entityKey);
    if (list === undefined) byKey.set(record.entityKey, [record]);
    else list.push(record);
  }
  const indexOf = (id: string) => Number(id.split('-').pop());
  for (const [key, list] of byKey) {
    list.sort(
      (a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0),
    );
    const seen = new Set<string>();
    let last = -1;
    for (const record of list) {
      if (seen.has(record.requestId)) continue;
      seen.add(record.requestId);
      const index = indexOf(record.requestId);
      if (index < last) return `${key}: event ${index} first scored after event ${last}`;
      last = index;
    }
  }
  return undefined;
}

/** The replica's group joins so far, with the partitions of `topic` each one gave it. */
export function joins(replica: ServeProcess, topic: string): number[][] {
  return replica.lines
    .filter((line) => line.msg === 'joined consumer group')
    .map((line) => (line.assignment as Record<string, number[]> | undefined)?.[topic] ?? []);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A broker of the tests' own (scripts/stack.sh with the kafka service only, on free ports), so that
 * killing it disturbs no other test. The schema registry stays the shared one.
 */
export class PrivateBroker {
  readonly brokers: string;
  readonly client: Kafka;
  readonly #env: Record<string, string>;

  private constructor(port: number, controllerPort: number) {
    this.brokers = `127.0.0.1:${port}`;
    // The stack's run folder is named by all three ports; the registry port is unused here.
    this.#env = {
      KAFKA_PORT: String(port),
      KAFKA_CONTROLLER_PORT: String(controllerPort),
      REGISTRY_PORT: String(port),
    };
    this.client = new Kafka({
      clientId: 'delivery-test',
      brokers: [this.brokers],
      logLevel: logLevel.NOTHING,
      retry: { initialRetryTime: 100, maxRetryTime: 500, retries: 5 },
    });
  }

  static async up(): Promise<PrivateBroker> {
    const broker = new PrivateBroker(await freePort(), await freePort());
    await broker.#stack('up');
    return broker;
  }

  /** kill -9 of the broker's JVM; its data stays for restart(). */
  async kill(): Promise<void> {
    const status = await this.#stack('status');
    const pid = /kafka\s+running\s+pid\s+(\d+)/.exec(status)?.[1];
    if (pid === undefined) throw new Error(`the private broker is not running:\n${status}`);
    process.kill(Number(pid), 'SIGKILL');
  }

  /** Starts the broker again on its data; resolves once it answers. */
  async restart(): Promise<void> {
    await this.#stack('up');
  }

  /** Stops it and deletes its data. */
  async down(): Promise<void> {
    await this.#stack('down');
  }

  /** scripts/stack.sh for this broker; resolves with its output, rejects on failure. */
  #stack(command: 'up' | 'down' | 'status'): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', ['scripts/stack.sh', command], {
        env: { ...process.env, ...this.#env, STREAMSCORE_STACK_SERVICES: 'kafka' },
      });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.on('exit', (code) =>
        code === 0 || command === 'status' ? resolve(output) : reject(new Error(output)),
      );
    });
  }
}
