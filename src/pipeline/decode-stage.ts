import type { ConsumedRecord } from '../kafka/records.js';
import type { MicroBatcher } from '../batching/batcher.js';
import type { PendingLimit } from '../batching/capacity.js';
import type { DeadLetterSource } from '../codec/dead-letter.js';
import type { EventIdentity } from '../codec/feature-rows.js';
import type { RequestDecoder, Rejection } from '../codec/requests.js';
import { describeError } from '../errors.js';
import { toFeatureRow, type FeatureRow } from '../inference/tensor.js';
import type { TakeContext } from '../kafka/intake.js';
import type { OffsetEntry, PartitionLease } from '../kafka/offsets.js';
import type { DeadLetters } from './dead-letters.js';
import type { PipelineHealth } from './health.js';
import { untilRegistryAnswers, type RegistryOutcome } from './registry-wait.js';

/** An event taken in and waiting to be scored: its identity, its features as a row, its origin. */
export interface Pending {
  event: EventIdentity;
  features: FeatureRow;
  /** The consumed record, kept to dead-letter it with its original bytes, or to read it again. */
  source: DeadLetterSource;
  lease: PartitionLease;
  entry: OffsetEntry;
  /** performance.now() when it was taken in. */
  takenAt: number;
}

/** A value as the batcher takes it, or why it cannot be scored. */
export type Taken = { ok: true; event: EventIdentity; features: FeatureRow } | Rejection;

/**
 * consume -> decode + validate: each record becomes a pending event (into the batcher) or a dead
 * letter, in bounded time whatever its bytes. Nothing thrown while reading one record leaves here:
 * what the decoder did not expect becomes an UNEXPECTED_ERROR dead letter, and the records around
 * it go on. The one thing that is not the record's fault, a registry that cannot be reached to
 * read a new schema id, is waited out (stalled, with heartbeats) instead.
 */
export class DecodeStage {
  readonly #decoder: RequestDecoder;
  readonly #batcher: MicroBatcher<Pending>;
  readonly #capacity: PendingLimit;
  readonly #deadLetters: DeadLetters;
  readonly #health: PipelineHealth;
  readonly #onFatal: (error: unknown) => void;
  /** Feature order of the rows built here: the primary's. */
  #layout: readonly string[] = [];
  /** Keep decoded maps too, because a canary or shadow needs features outside #layout. */
  #keepMaps = false;
  /** Records waiting on the registry (one per partition at most): stalled while any does. */
  #waiting = 0;

  constructor(options: {
    decoder: RequestDecoder;
    batcher: MicroBatcher<Pending>;
    capacity: PendingLimit;
    deadLetters: DeadLetters;
    health: PipelineHealth;
    onFatal: (error: unknown) => void;
  }) {
    this.#decoder = options.decoder;
    this.#batcher = options.batcher;
    this.#capacity = options.capacity;
    this.#deadLetters = options.deadLetters;
    this.#health = options.health;
    this.#onFatal = options.onFatal;
  }

  /**
   * Routing changed: events are checked for the features of `required` (primary and canary) and
   * read into rows of `layout` (the primary's), keeping their maps when `keepMaps`.
   */
  setFeatures(required: readonly string[], layout: readonly string[], keepMaps: boolean): void {
    this.#decoder.setRequiredFeatures(required);
    this.#layout = layout;
    this.#keepMaps = keepMaps;
    this.#decoder.setRowLayout(keepMaps ? undefined : layout);
  }

  /** The intake's take(): see TakeContext. */
  readonly take = (context: TakeContext): boolean | Promise<boolean> => {
    const taken = this.readNow(context.message.value);
    if (taken === undefined) return this.#takeLater(context);
    this.#admit(context, taken);
    return true;
  };

  /**
   * One value as the batcher holds it, or why it is rejected, without awaiting anything; undefined
   * when its schema must be looked up first. Never throws.
   */
  readNow(value: Buffer | null): Taken | undefined {
    try {
      const read = this.#decoder.readRowNow(value);
      if (read !== undefined)
        return { ok: true, event: read.event, features: { row: read.row, layout: read.layout } };
      const result = this.#decoder.decodeNow(value);
      if (result === undefined || !result.ok) return result;
      const { request_id, entity_key, event_time, features } = result.event;
      return {
        ok: true,
        event: { request_id, entity_key, event_time },
        features: toFeatureRow(features, this.#layout, this.#keepMaps),
      };
    } catch (error) {
      return unexpected(error);
    }
  }

  async #takeLater(context: TakeContext): Promise<boolean> {
    let waiting = false;
    let result: RegistryOutcome<Taken | undefined>;
    try {
      result = await untilRegistryAnswers(
        async () => {
          await this.#decoder.decode(context.message.value);
          return this.readNow(context.message.value);
        },
        context,
        (error) => {
          if (!waiting) {
            waiting = true;
            this.#waiting += 1;
          }
          this.#health.stall('registry', error);
        },
      );
    } catch (error) {
      result = { outcome: 'answered', value: unexpected(error) };
    }
    // Stalled while any record waits on the registry; this one is through, one way or the other.
    if (waiting) {
      this.#waiting -= 1;
      if (this.#waiting === 0) {
        if (result.outcome === 'answered') this.#health.recover('registry');
        // Given up (stopping, or the partition moved): whoever reads it next waits instead.
        else this.#health.recover('registry', 'the records waiting for it were given up');
      }
    }
    if (result.outcome === 'refused') {
      this.#onFatal(result.error);
      return false;
    }
    if (result.outcome === 'given up') return false;
    this.#admit(context, result.value ?? unexpected(new Error('the schema was looked up but is not known')));
    return true;
  }

  #admit(context: TakeContext, taken: Taken): void {
    const { lease, entry } = context.track();
    this.#capacity.acquire(1);
    const source = sourceOf(context.topic, context.partition, context.message);
    if (taken.ok) {
      this.#batcher.add({
        event: taken.event,
        features: taken.features,
        source,
        lease,
        entry,
        takenAt: performance.now(),
      });
    } else {
      this.#deadLetters.send([
        { source, entry, reason: taken.reason, stage: taken.stage, message: taken.message },
      ]);
    }
  }
}

function unexpected(error: unknown): Rejection {
  return {
    ok: false,
    reason: 'UNEXPECTED_ERROR',
    stage: 'decode',
    message: `${error instanceof Error ? error.name : 'error'}: ${describeError(error)}`,
  };
}

function sourceOf(topic: string, partition: number, message: ConsumedRecord): DeadLetterSource {
  const { offset, key, value } = message;
  // Headers are read only for a dead letter; a client may convert them only when asked.
  return {
    topic,
    partition,
    offset,
    key,
    value,
    get headers() {
      return message.headers;
    },
  };
}
