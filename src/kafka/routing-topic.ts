import { randomUUID } from 'node:crypto';
import avro from 'avsc';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { RecordDecoder } from '../codec/records.js';
import {
  MAGIC_BYTE,
  HEADER_BYTES,
  readSchemaFile,
  registerValueSchema,
  type RegistryClient,
} from '../codec/registry.js';
import { StreamscoreError, describeError, isStreamscoreError } from '../errors.js';
import { fromRecord, toRecord, type RoutingEntry } from '../models/routing-record.js';
import type { Logger } from '../telemetry/logger.js';

/** A routing record as read: the entry (undefined for a tombstone) and where it sits. */
export interface RoutingUpdate {
  entry: RoutingEntry | undefined;
  offset: string;
}

/** A record for the model that cannot be read as a routing; the current routing is kept. */
export interface RoutingProblem {
  offset: string;
  reason: 'undecodable' | 'invalid';
  message: string;
}

/**
 * Creates the routing topic when it is missing: compacted, so the latest record per model is kept
 * for ever, and one partition, since a handful of keys need no more and every reader reads it all.
 */
export async function ensureRoutingTopic(admin: Admin, topic: string): Promise<boolean> {
  if ((await admin.listTopics()).includes(topic)) return false;
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    waitForLeaders: true,
  });
  return true;
}

/** Writes routing records: Avro with Confluent framing, the schema registered under `<topic>-value`. */
export async function encodeRoutingRecord(
  registry: RegistryClient,
  topic: string,
  entry: RoutingEntry,
): Promise<Buffer> {
  const schema = await readSchemaFile('routing.avsc');
  const id = await registerValueSchema(registry, topic, schema);
  const body = avro.Type.forSchema(schema as avro.Schema).toBuffer(toRecord(entry));
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(MAGIC_BYTE, 0);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, body]);
}

/**
 * Follows the routing topic for one model: reads it from the beginning with a throw-away group
 * (nothing committed, no replica shares it), and keeps the latest record whose key is the model.
 * start() resolves once the topic is read to the end it had at start; from then on every record
 * for the model is handed to onUpdate, in order.
 */
export class RoutingFollower {
  readonly #kafka: Kafka;
  readonly #topic: string;
  readonly #model: string;
  readonly #decoder: RecordDecoder;
  readonly #log: Logger;
  #consumer: Consumer | undefined;
  #latest: RoutingUpdate | undefined;
  #onUpdate: ((update: RoutingUpdate) => Promise<void>) | undefined;
  #onProblem: ((problem: RoutingProblem) => void) | undefined;
  #caughtUp = false;

  constructor(options: {
    kafka: Kafka;
    topic: string;
    model: string;
    decoder: RecordDecoder;
    logger: Logger;
  }) {
    this.#kafka = options.kafka;
    this.#topic = options.topic;
    this.#model = options.model;
    this.#decoder = options.decoder;
    this.#log = options.logger;
  }

  /** The latest routing record for the model read so far (undefined if none, or a tombstone). */
  get latest(): RoutingUpdate | undefined {
    return this.#latest;
  }

  async start(
    handlers: {
      onUpdate?: (update: RoutingUpdate) => Promise<void>;
      onProblem?: (problem: RoutingProblem) => void;
    } = {},
  ): Promise<RoutingUpdate | undefined> {
    this.#onProblem = handlers.onProblem;
    const admin = this.#kafka.admin();
    await admin.connect();
    // The end of each partition now: what must be read before the routing is known.
    const ends = new Map<number, bigint>();
    try {
      for (const { partition, high, low } of await admin.fetchTopicOffsets(this.#topic)) {
        if (BigInt(high) > BigInt(low)) ends.set(partition, BigInt(high));
      }
    } finally {
      await admin.disconnect();
    }
    const consumer = this.#kafka.consumer({
      groupId: `streamscore-routing-${randomUUID()}`,
      maxWaitTimeInMs: 100,
    });
    this.#consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topic: this.#topic, fromBeginning: true });
    let caughtUp!: () => void;
    let failed!: (error: unknown) => void;
    const read = new Promise<void>((resolve, reject) => ((caughtUp = resolve), (failed = reject)));
    if (ends.size === 0) caughtUp();
    // A failure before the routing is known fails start(); later ones the client retries.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!this.#caughtUp) failed(payload.error);
    });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          if (message.key?.toString() === this.#model) await this.#read(message.value, message.offset);
        }
        // lastOffset() counts records compaction removed from the batch too.
        const end = ends.get(batch.partition);
        if (end !== undefined && BigInt(batch.lastOffset()) + 1n >= end) {
          ends.delete(batch.partition);
          if (ends.size === 0) caughtUp();
        }
      },
    });
    await read;
    this.#caughtUp = true;
    this.#onUpdate = handlers.onUpdate;
    return this.#latest;
  }

  async stop(): Promise<void> {
    await this.#consumer?.disconnect();
    this.#consumer = undefined;
  }

  async #read(value: Buffer | null, offset: string): Promise<void> {
    let update: RoutingUpdate;
    if (value === null) {
      update = { entry: undefined, offset };
    } else {
      const decoded = await this.#decoder.decode(value);
      if (!decoded.ok) return this.#problem({ offset, reason: 'undecodable', message: decoded.message });
      try {
        update = { entry: fromRecord(decoded.record, `${this.#topic} offset ${offset}`), offset };
      } catch (error) {
        if (!isStreamscoreError(error) || error.code !== 'ROUTING_INVALID') throw error;
        return this.#problem({ offset, reason: 'invalid', message: error.message });
      }
    }
    this.#latest = update;
    if (this.#caughtUp) await this.#onUpdate?.(update);
  }

  #problem(problem: RoutingProblem): void {
    if (this.#onProblem !== undefined) this.#onProblem(problem);
    else this.#log.warn({ topic: this.#topic, ...problem }, `routing record skipped: ${problem.message}`);
  }
}

/** The routing topic's latest record for a model, read to the end and closed; undefined if none. */
export async function readRoutingTopic(options: {
  kafka: Kafka;
  topic: string;
  model: string;
  decoder: RecordDecoder;
  logger: Logger;
}): Promise<RoutingUpdate | undefined> {
  const admin = options.kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(options.topic)) return undefined;
  } finally {
    await admin.disconnect();
  }
  const follower = new RoutingFollower(options);
  try {
    return await follower.start();
  } catch (error) {
    if (isStreamscoreError(error)) throw error;
    throw new StreamscoreError('KAFKA_UNAVAILABLE', `Cannot read ${options.topic}: ${describeError(error)}`, {
      cause: error,
      retriable: true,
    });
  } finally {
    await follower.stop();
  }
}
