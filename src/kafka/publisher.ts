import type { OffsetEntry } from './offsets.js';
import type { OutRecord, TopicRecords } from './records.js';
import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import {
  PRODUCER_THREAD_FAILED,
  RemoteProducerError,
  kafkaErrorTypes,
  type BatchProducer,
} from './producer-thread.js';
import { byteLength } from './record-pack.js';
import { Backoff } from '../timers.js';

/**
 * Kafka error types that say the broker will refuse this request however often it is sent. They
 * are not retried quickly: the publisher stalls (readiness says so) and tries again slowly, since
 * an operator can fix the cause (an ACL, a topic's max.message.bytes) without restarting serve.
 */
const REFUSALS = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'SASL_AUTHENTICATION_FAILED',
  'POLICY_VIOLATION',
]);

const MAX_BACKOFF_MS = 5_000;
const REFUSED_BACKOFF_MS = 30_000;

/**
 * The most record bytes one request carries. Kafka refuses a record batch over the topic's
 * max.message.bytes (1 MiB by default) for one partition; half of that in all keeps every
 * partition's share under it however the records fall. serve lowers it for topics that take less.
 */
export const MAX_REQUEST_BYTES = 524_288;

/** Per-record bytes on the wire beyond key, value and headers (lengths, varints, attributes). */
export const RECORD_OVERHEAD_BYTES = 64;

export interface PublisherEvents {
  /** A request failed and is retried; `refused` when the broker refuses it (see REFUSALS). */
  stalled(error: unknown, refused: boolean): void;
  /** A request succeeded after failures. */
  recovered(): void;
  /** The producer cannot send any more (its thread died): serve must stop. */
  fatal(error: unknown): void;
}

/**
 * Where serve's outputs go: OrderedPublisher (at-least-once) or TransactionalPublisher
 * (exactly-once, transactional-publisher.ts).
 */
export interface Publisher {
  /** Publishes waiting or in flight. */
  readonly queued: number;
  /**
   * Sends the records; onAck runs once they are written (committed, for a transaction). `sources`
   * are the consumed records they are the outputs of, one per record in order, where known.
   */
  publish(topicMessages: TopicRecords[], onAck: () => void, sources?: readonly OffsetEntry[]): void;
  /** Resolves once everything published so far is done with. */
  idle(): Promise<void>;
  /** Abandons what is not written yet. */
  stop(): void;
}

interface Send {
  topicMessages: TopicRecords[];
  /** Record bytes of the whole publish. */
  bytes: number;
  /**
   * Only for a publish larger than a request: its records one by one, and how many are already
   * taken into requests.
   */
  records?: { topic: string; message: OutRecord; bytes: number }[];
  next: number;
  onAck: () => void;
}

/**
 * Sends in the order publish() was called, so records of one key keep their order across batches.
 * One produce request is in flight at a time; publishes that queue up behind it go out together
 * in the next request, up to a byte limit. A publish larger than the limit is split across
 * requests, and its onAck runs once all of it was acknowledged. A failed request is retried until
 * it succeeds (a broker restart only delays output); each publish's onAck runs, in publish order,
 * after the broker acknowledged it, and before idle() resolves.
 */
export class OrderedPublisher implements Publisher {
  readonly #producer: BatchProducer;
  readonly #logger: Logger;
  readonly #events: PublisherEvents;
  readonly #maxRequestBytes: number;
  readonly #waiting: Send[] = [];
  #sending: Promise<void> | undefined;
  #inFlight = 0;
  #failing = false;
  #stopped = false;
  readonly #backoff = new Backoff();

  constructor(
    producer: BatchProducer,
    logger: Logger,
    events: PublisherEvents,
    maxRequestBytes = MAX_REQUEST_BYTES,
  ) {
    this.#producer = producer;
    this.#logger = logger;
    this.#events = events;
    this.#maxRequestBytes = maxRequestBytes;
  }

  /** Publishes waiting or in flight. */
  get queued(): number {
    return this.#waiting.length + this.#inFlight;
  }

  publish(topicMessages: TopicRecords[], onAck: () => void): void {
    if (this.#stopped) return;
    let bytes = 0;
    for (const { messages } of topicMessages) for (const message of messages) bytes += recordBytes(message);
    this.#waiting.push({ topicMessages, bytes, next: 0, onAck });
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
    this.#backoff.wake();
  }

  async #sendAll(): Promise<void> {
    try {
      while (this.#waiting.length > 0 && !this.#stopped) {
        const { topicMessages, completed } = this.#takeRequest();
        this.#inFlight = completed.length;
        const sent = await this.#sendWithRetry(topicMessages);
        this.#inFlight = 0;
        if (sent) for (const send of completed) send.onAck();
      }
    } catch (error) {
      this.#stopped = true;
      this.#waiting.length = 0;
      this.#events.fatal(error);
    } finally {
      this.#inFlight = 0;
      this.#sending = undefined;
    }
  }

  /**
   * The records of the next request, in publish order, within the byte limit (at least one record),
   * and the publishes it completes. Whole publishes go together; one larger than the limit is cut.
   */
  #takeRequest(): { topicMessages: TopicRecords[]; completed: Send[] } {
    const head = this.#waiting[0]!;
    if (head.records === undefined && head.bytes > this.#maxRequestBytes) {
      head.records = [];
      for (const { topic, messages } of head.topicMessages) {
        for (const message of messages) head.records.push({ topic, message, bytes: recordBytes(message) });
      }
    }
    if (head.records !== undefined) return this.#takePart(head);
    const completed: Send[] = [this.#waiting.shift()!];
    let bytes = head.bytes;
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0]!;
      if (next.records !== undefined || bytes + next.bytes > this.#maxRequestBytes) break;
      bytes += next.bytes;
      completed.push(this.#waiting.shift()!);
    }
    return { topicMessages: mergeByTopic(completed), completed };
  }

  /** The next part of a publish cut across requests; it completes with its last part. */
  #takePart(send: Send): { topicMessages: TopicRecords[]; completed: Send[] } {
    const records = send.records!;
    const byTopic = new Map<string, OutRecord[]>();
    let bytes = 0;
    let taken = 0;
    while (send.next < records.length) {
      const record = records[send.next]!;
      if (taken > 0 && bytes + record.bytes > this.#maxRequestBytes) break;
      let list = byTopic.get(record.topic);
      if (list === undefined) byTopic.set(record.topic, (list = []));
      list.push(record.message);
      bytes += record.bytes;
      taken += 1;
      send.next += 1;
    }
    const completed: Send[] = [];
    if (send.next === records.length) {
      completed.push(this.#waiting.shift()!);
      // Whole publishes behind its last part go with it while they fit.
      while (this.#waiting.length > 0) {
        const next = this.#waiting[0]!;
        if (next.records !== undefined || bytes + next.bytes > this.#maxRequestBytes) break;
        bytes += next.bytes;
        for (const { topic, messages } of next.topicMessages) {
          let list = byTopic.get(topic);
          if (list === undefined) byTopic.set(topic, (list = []));
          for (const message of messages) list.push(message);
        }
        completed.push(this.#waiting.shift()!);
      }
    }
    return { topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), completed };
  }

  async #sendWithRetry(topicMessages: TopicRecords[]): Promise<boolean> {
    let backoff = 100;
    for (let attempt = 1; ; attempt += 1) {
      try {
        if (topicMessages.length > 0) await this.#producer.sendBatch({ topicMessages, acks: -1 });
        if (this.#failing) {
          this.#failing = false;
          this.#events.recovered();
        }
        return true;
      } catch (error) {
        if (cannotSucceed(error)) throw error;
        if (this.#stopped) return false;
        const refused = kafkaErrorTypes(error).some((type) => REFUSALS.has(type));
        const wait = refused ? REFUSED_BACKOFF_MS : backoff;
        if (!this.#failing) {
          this.#failing = true;
          this.#events.stalled(error, refused);
        }
        const records = topicMessages.reduce((sum, t) => sum + t.messages.length, 0);
        this.#logger.debug(
          { err: error, attempt, records },
          `publish failed, retrying in ${wait} ms: ${describeError(error)}`,
        );
        await this.#backoff.wait(wait);
        if (this.#stopped) return false;
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}

/** One entry per topic, records in publish order: sendBatch keeps a topic's array order per partition. */
function mergeByTopic(sends: readonly Send[]): TopicRecords[] {
  if (sends.length === 1) return sends[0]!.topicMessages;
  const byTopic = new Map<string, TopicRecords>();
  for (const send of sends) {
    for (const { topic, messages } of send.topicMessages) {
      const merged = byTopic.get(topic);
      if (merged === undefined) byTopic.set(topic, { topic, messages: [...messages] });
      else for (const message of messages) merged.messages.push(message);
    }
  }
  return [...byTopic.values()];
}

/** A dead producer thread, or a programming error (a bad record): the same on every try. */
function cannotSucceed(error: unknown): boolean {
  if (kafkaErrorTypes(error).includes(PRODUCER_THREAD_FAILED)) return true;
  const name = error instanceof RemoteProducerError ? error.name : undefined;
  return (
    error instanceof TypeError || error instanceof RangeError || name === 'TypeError' || name === 'RangeError'
  );
}

/** Bytes a record takes on the wire: key, value, headers, and a little framing. */
export function recordBytes(message: OutRecord): number {
  let bytes = RECORD_OVERHEAD_BYTES + byteLength(message.key) + byteLength(message.value);
  if (message.headers === undefined) return bytes;
  for (const [name, value] of Object.entries(message.headers)) {
    for (const each of Array.isArray(value) ? value : [value]) {
      bytes += Buffer.byteLength(name) + byteLength(each) + 8;
    }
  }
  return bytes;
}
