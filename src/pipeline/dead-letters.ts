import type { PendingLimit } from '../batching/capacity.js';
import { deadLetterMessage, type DeadLetterSource, type DeadLetterStage } from '../codec/dead-letter.js';
import type { RejectReason } from '../codec/requests.js';
import type { OffsetEntry } from '../kafka/offsets.js';
import { recordBytes, type Publisher } from '../kafka/publisher.js';
import type { ServeMetrics } from '../telemetry/metrics.js';

/** One record that cannot be scored, and why. */
export interface Rejected {
  source: DeadLetterSource;
  /** Its place in the partition's ledger: done once the dead letter is acknowledged. */
  entry: OffsetEntry;
  reason: RejectReason;
  stage: DeadLetterStage;
  message: string;
}

/**
 * Writes dead letters through the ordered publisher. Each record keeps its place in the pending
 * limit until its dead letter is acknowledged, so a flood of bad input waits like good input does;
 * each copy is cut to fit the dead-letter topic (deadLetterMessage), so no record can make the
 * topic refuse a request.
 */
export class DeadLetters {
  readonly #publisher: Publisher;
  readonly #capacity: PendingLimit;
  readonly #topic: string;
  readonly #maxRecordBytes: number;
  readonly #metrics: ServeMetrics;
  readonly #acknowledged: () => void;

  constructor(options: {
    publisher: Publisher;
    capacity: PendingLimit;
    topic: string;
    /** The largest record the dead-letter topic takes (its max.message.bytes, less batch framing). */
    maxRecordBytes: number;
    metrics: ServeMetrics;
    /** Called after each acknowledgement (to schedule a commit). */
    acknowledged: () => void;
  }) {
    this.#publisher = options.publisher;
    this.#capacity = options.capacity;
    this.#topic = options.topic;
    this.#maxRecordBytes = options.maxRecordBytes;
    this.#metrics = options.metrics;
    this.#acknowledged = options.acknowledged;
  }

  send(rejected: readonly Rejected[]): void {
    if (rejected.length === 0) return;
    const limit = { maxBytes: this.#maxRecordBytes, size: recordBytes };
    const now = Date.now();
    let omitted = 0;
    const messages = rejected.map(({ source, reason, stage, message }) => {
      const letter = deadLetterMessage(source, reason, stage, message, limit, now);
      if (letter.omitted) omitted += 1;
      return letter.message;
    });
    this.#publisher.publish(
      [{ topic: this.#topic, messages }],
      () => {
        for (const { entry, reason } of rejected) {
          entry.done = true;
          this.#metrics.deadLetters.inc({ reason });
        }
        if (omitted > 0) this.#metrics.deadLetterValuesOmitted.inc(omitted);
        this.#capacity.release(rejected.length);
        this.#acknowledged();
      },
      rejected.map(({ entry }) => entry),
    );
  }
}
