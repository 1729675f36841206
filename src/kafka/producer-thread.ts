import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Kafka } from 'kafkajs';
import { createProducer, kafkaSettings, type KafkaSettings } from './client.js';
import { PlatformaticProducer, type TransactionalProducer } from './platformatic-producer.js';
import { packTopicMessages } from './record-pack.js';
import type { TopicRecords } from './records.js';

/** Records for several topics, sent in one request, acknowledged by `acks` replicas (-1: all in sync). */
export interface ProducerBatch {
  topicMessages: TopicRecords[];
  acks: number;
}

/**
 * What serve needs of a producer: kafkajs's Producer is one, PlatformaticProducer another, and
 * ThreadedProducer runs either in a worker thread.
 */
export interface BatchProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  sendBatch(batch: ProducerBatch): Promise<unknown>;
}

/** The Kafka clients serve can fetch and send with (STREAMSCORE_KAFKA_CLIENT). */
export type KafkaClientName = 'kafkajs' | 'platformatic';

/** Messages to the producer thread (see producer-worker.ts). */
export type ProducerRequest =
  | { kind: 'connect'; id: number }
  | { kind: 'send'; id: number; packed: ArrayBuffer; acks: number }
  | { kind: 'disconnect'; id: number };

/** A kafkajs error as it crosses threads: what isPermanent() and the logs look at. */
export interface RemoteError {
  name: string;
  message: string;
  /** Kafka error types along the error and its causes, outermost first. */
  types: string[];
  retriable: boolean | undefined;
}

export type ProducerReply = { id: number; ok: true } | { id: number; ok: false; error: RemoteError };

export interface ProducerThreadOptions {
  client: KafkaClientName;
  kafka: KafkaSettings;
  logLevel: string;
}

const PRODUCER_YOUNG_GENERATION_MB = 8;

/** The error type of a producer whose thread died. */
export const PRODUCER_THREAD_FAILED = 'PRODUCER_THREAD_FAILED';

/** A producer error from the thread, carrying the Kafka error type of its first cause that has one. */
export class RemoteProducerError extends Error {
  readonly type: string | undefined;
  readonly types: readonly string[];
  readonly retriable: boolean | undefined;

  constructor(remote: RemoteError) {
    super(remote.message);
    this.name = remote.name;
    this.types = remote.types;
    this.type = remote.types[0];
    this.retriable = remote.retriable;
  }
}

/**
 * Kafka error types along an error and its causes (kafkajs wraps them in originalError), outermost
 * first; for an error from the producer thread, the types it carried across.
 */
export function kafkaErrorTypes(error: unknown): string[] {
  if (error instanceof RemoteProducerError) return [...error.types];
  const types: string[] = [];
  for (let current: unknown = error; typeof current === 'object' && current !== null;) {
    const type = (current as { type?: unknown }).type;
    if (typeof type === 'string') types.push(type);
    current =
      (current as { originalError?: unknown }).originalError ?? (current as { cause?: unknown }).cause;
  }
  return types;
}

/** serve's producer: in a worker thread (STREAMSCORE_PRODUCER_THREAD) or on this one. */
export function openProducer(
  kafka: Kafka,
  config: KafkaSettings & { producerThread: boolean; logLevel: string; kafkaClient: KafkaClientName },
): BatchProducer {
  if (config.producerThread) {
    return new ThreadedProducer({
      client: config.kafkaClient,
      kafka: kafkaSettings(config),
      logLevel: config.logLevel,
    });
  }
  return config.kafkaClient === 'platformatic' ? new PlatformaticProducer(config) : createProducer(kafka);
}

/**
 * Exactly-once delivery's producer (STREAMSCORE_DELIVERY=exactly-once), or undefined. It is on
 * this thread: a transaction interleaves produce requests with the group's offsets. Its
 * transactional id is unique to the process: fencing of a paused or replaced replica comes from
 * the group generation its offsets carry (KIP-447), not from reusing ids, and a killed replica's
 * open transaction is aborted by the broker after STREAMSCORE_TRANSACTION_TIMEOUT_MS.
 */
export function openTransactionalProducer(
  config: KafkaSettings & { delivery: string; groupId: string; transactionTimeoutMs: number },
): TransactionalProducer | undefined {
  if (config.delivery !== 'exactly-once') return undefined;
  const transactionalId = `${config.groupId}-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  return new PlatformaticProducer(config, { transactionalId, timeoutMs: config.transactionTimeoutMs });
}

/**
 * A producer (kafkajs's, or @platformatic/kafka's) in a worker thread. Encoding produce requests (per-record buffers, varints,
 * CRC32C, partitioning) is the largest single cost in kafkajs, about 10-15 µs a record on the main
 * thread, where it would hold back fetching, decoding and the next batch. Here the main thread
 * packs each request into one buffer and transfers it (record-pack.ts); the thread owns the
 * connection, and requests are sent in the order they were made.
 */
export class ThreadedProducer implements BatchProducer {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  #next = 0;
  #failed: Error | undefined;

  constructor(options: ProducerThreadOptions) {
    this.#worker = new Worker(new URL('./producer-worker.js', import.meta.url), {
      workerData: options,
      // kafkajs's garbage is short-lived (per-record encoders and buffers); a small young generation
      // collects it as often and keeps the thread's memory tens of MB lower than V8's default.
      resourceLimits: { maxYoungGenerationSizeMb: PRODUCER_YOUNG_GENERATION_MB },
    });
    this.#worker.on('message', (reply: ProducerReply) => {
      const waiter = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      if (reply.ok) waiter?.resolve();
      else waiter?.reject(new RemoteProducerError(reply.error));
    });
    // A dead thread cannot send again: its error is permanent, so serve stops instead of retrying.
    const fail = (cause: Error) => {
      const error = new RemoteProducerError({
        name: 'Error',
        message: `producer thread failed: ${cause.message}`,
        types: [PRODUCER_THREAD_FAILED],
        retriable: false,
      });
      this.#failed ??= error;
      for (const waiter of this.#pending.values()) waiter.reject(error);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`producer thread exited (code ${code})`)));
  }

  connect(): Promise<void> {
    return this.#call((id) => ({ kind: 'connect', id }));
  }

  async disconnect(): Promise<void> {
    if (this.#failed === undefined) await this.#call((id) => ({ kind: 'disconnect', id }));
    await this.#worker.terminate();
  }

  sendBatch(batch: ProducerBatch): Promise<void> {
    let packed: ArrayBuffer;
    try {
      packed = packTopicMessages(batch.topicMessages);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.#call((id) => ({ kind: 'send', id, packed, acks: batch.acks ?? -1 }), [packed]);
  }

  #call(request: (id: number) => ProducerRequest, transfer: ArrayBuffer[] = []): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage(request(id), transfer);
    });
  }
}
