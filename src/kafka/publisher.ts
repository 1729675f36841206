import type { TopicMessages } from 'kafkajs';
import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import {
  PRODUCER_THREAD_FAILED,
  RemoteProducerError,
  kafkaErrorTypes,
  type BatchProducer,
} from './producer-thread.js';
import { byteLength } from './record-pack.js';

/** Kafka error types that no retry will fix: the service must stop rather than spin. */
const PERMANENT_ERRORS = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'SASL_AUTHENTICATION_FAILED',
  PRODUCER_THREAD_FAILED,
]);

const MAX_BACKOFF_MS = 5_000;

/**
 * The most record bytes (keys + values) one coalesced request carries. Kafka refuses a record batch
 * over the broker's message.max.bytes (1 MiB by default) for one partition; half of it in all keeps
 * every partition's share under that however the records fall. One publish() larger than this is
 * still sent whole, alone.
 */
export const MAX_REQUEST_BYTES = 524_288;

interface Send {
  topicMessages: TopicMessages[];
  onAck: () => void;
  bytes: number;
}

/**
 * Sends in the order publish() was called, so records of one key keep their order across batches.
 * One produce request is in flight at a time; publishes that queue up behind it go out together
 * in the next request (up to MAX_REQUEST_BYTES), so a slow acknowledgement delays the records
 * behind it once instead of once per batch. A failed request is retried with backoff until it
 * succeeds (a broker restart only delays output) unless the error is permanent, which goes to
 * onFatal. Each publish's onAck runs, in publish order, after the broker acknowledged it, and
 * before idle() resolves.
 */
export class OrderedPublisher {
  readonly #producer: BatchProducer;
  readonly #logger: Logger;
  readonly #onFatal: (error: unknown) => void;
  readonly #maxRequestBytes: number;
  readonly #waiting: Send[] = [];
  #sending: Promise<void> | undefined;
  #inFlight = 0;
  #stopped = false;

  constructor(
    producer: BatchProducer,
    logger: Logger,
    onFatal: (error: unknown) => void,
    maxRequestBytes = MAX_REQUEST_BYTES,
  ) {
    this.#producer = producer;
    this.#logger = logger;
    this.#onFatal = onFatal;
    this.#maxRequestBytes = maxRequestBytes;
  }

  /** Publishes waiting or in flight. */
  get queued(): number {
    return this.#waiting.length + this.#inFlight;
  }

  publish(topicMessages: TopicMessages[], onAck: () => void): void {
    if (this.#stopped) return;
    this.#waiting.push({ topicMessages, onAck, bytes: recordBytes(topicMessages) });
    this.#sending ??= this.#sendAll();
  }

  /** Resolves once everything published so far was acknowledged (or abandoned after stop()). */
  async idle(): Promise<void> {
    while (this.#sending !== undefined) await this.#sending;
  }

  /** Abandons retries; sends not yet acknowledged never call onAck (their offsets stay uncommitted). */
  stop(): void {
    this.#stopped = true;
    this.#waiting.length = 0;
  }

  async #sendAll(): Promise<void> {
    try {
      while (this.#waiting.length > 0 && !this.#stopped) {
        const sends = this.#takeRequest();
        this.#inFlight = sends.length;
        const sent = await this.#sendWithRetry(mergeByTopic(sends));
        this.#inFlight = 0;
        if (sent) for (const send of sends) send.onAck();
      }
    } catch (error) {
      this.#stopped = true;
      this.#waiting.length = 0;
      this.#onFatal(error);
    } finally {
      this.#inFlight = 0;
      this.#sending = undefined;
    }
  }

  /** The longest run of waiting publishes, in order, within the byte limit (at least one). */
  #takeRequest(): Send[] {
    let count = 1;
    let bytes = this.#waiting[0]!.bytes;
    while (count < this.#waiting.length && bytes + this.#waiting[count]!.bytes <= this.#maxRequestBytes) {
      bytes += this.#waiting[count]!.bytes;
      count += 1;
    }
    return this.#waiting.splice(0, count);
  }

  async #sendWithRetry(topicMessages: TopicMessages[]): Promise<boolean> {
    let backoff = 100;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#producer.sendBatch({ topicMessages, acks: -1 });
        return true;
      } catch (error) {
        if (isPermanent(error)) throw error;
        if (this.#stopped) return false;
        const records = topicMessages.reduce((sum, t) => sum + t.messages.length, 0);
        this.#logger.warn(
          { err: error, attempt, records },
          `publish failed, retrying in ${backoff} ms: ${describeError(error)}`,
        );
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}

/** One entry per topic, records in publish order: sendBatch keeps a topic's array order per partition. */
function mergeByTopic(sends: readonly Send[]): TopicMessages[] {
  if (sends.length === 1) return sends[0]!.topicMessages;
  const byTopic = new Map<string, TopicMessages>();
  for (const send of sends) {
    for (const { topic, messages } of send.topicMessages) {
      const merged = byTopic.get(topic);
      if (merged === undefined) byTopic.set(topic, { topic, messages: [...messages] });
      else for (const message of messages) merged.messages.push(message);
    }
  }
  return [...byTopic.values()];
}

function recordBytes(topicMessages: readonly TopicMessages[]): number {
  let bytes = 0;
  for (const { messages } of topicMessages) {
    for (const { key, value } of messages) bytes += byteLength(key) + byteLength(value);
  }
  return bytes;
}

function isPermanent(error: unknown): boolean {
  if (kafkaErrorTypes(error).some((type) => PERMANENT_ERRORS.has(type))) return true;
  // A programming error (a bad record) repeats on every retry, in this thread or the producer's.
  const name = error instanceof RemoteProducerError ? error.name : undefined;
  return (
    error instanceof TypeError || error instanceof RangeError || name === 'TypeError' || name === 'RangeError'
  );
}
