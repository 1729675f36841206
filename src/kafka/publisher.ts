import type { Producer, TopicMessages } from 'kafkajs';
import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';

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
]);

const MAX_BACKOFF_MS = 5_000;

/**
 * Sends in the order publish() was called, one request at a time, so records of one key keep
 * their order across batches. A failed send is retried with backoff until it succeeds (a broker
 * restart only delays output) unless the error is permanent, which goes to onFatal. onAck runs in
 * the chain after the broker acknowledged, so whoever awaits idle() also awaits it.
 */
export class OrderedPublisher {
  readonly #producer: Producer;
  readonly #logger: Logger;
  readonly #onFatal: (error: unknown) => void;
  #tail: Promise<void> = Promise.resolve();
  #stopped = false;
  #queued = 0;

  constructor(producer: Producer, logger: Logger, onFatal: (error: unknown) => void) {
    this.#producer = producer;
    this.#logger = logger;
    this.#onFatal = onFatal;
  }

  /** Sends waiting or in flight. */
  get queued(): number {
    return this.#queued;
  }

  publish(topicMessages: TopicMessages[], onAck: () => void): void {
    this.#queued += 1;
    this.#tail = this.#tail.then(async () => {
      try {
        if (this.#stopped) return;
        const sent = await this.#sendWithRetry(topicMessages);
        if (sent) onAck();
      } catch (error) {
        this.#stopped = true;
        this.#onFatal(error);
      } finally {
        this.#queued -= 1;
      }
    });
  }

  /** Resolves once everything published so far was acknowledged (or abandoned after stop()). */
  idle(): Promise<void> {
    return this.#tail;
  }

  /** Abandons retries; sends not yet acknowledged never call onAck (their offsets stay uncommitted). */
  stop(): void {
    this.#stopped = true;
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

function isPermanent(error: unknown): boolean {
  for (let current: unknown = error; typeof current === 'object' && current !== null;) {
    const type = (current as { type?: unknown }).type;
    if (typeof type === 'string' && PERMANENT_ERRORS.has(type)) return true;
    current =
      (current as { originalError?: unknown }).originalError ?? (current as { cause?: unknown }).cause;
  }
  return error instanceof TypeError || error instanceof RangeError;
}
