import type { KafkaMessage } from 'kafkajs';
import type { MicroBatcher } from '../batching/batcher.js';
import type { PendingLimit } from '../batching/capacity.js';
import type { DeadLetterSource } from '../codec/dead-letter.js';
import type { EventIdentity } from '../codec/feature-rows.js';
import type { RequestDecoder, Rejection } from '../codec/requests.js';
import { describeError, isStreamscoreError } from '../errors.js';
import { toFeatureRow, type FeatureRow } from '../inference/tensor.js';
import type { TakeContext } from '../kafka/intake.js';
import type { OffsetEntry, PartitionLease } from '../kafka/offsets.js';
import type { DeadLetters } from './dead-letters.js';
import type { PipelineHealth } from './health.js';

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

const REGISTRY_BACKOFF_MS = { first: 200, max: 5_000 };
const HEARTBEAT_MS = 1_000;

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
    let backoff = REGISTRY_BACKOFF_MS.first;
    let waiting = false;
    const done = (why: string | undefined) => {
      if (!waiting) return;
      this.#waiting -= 1;
      if (this.#waiting > 0) return;
      if (why === undefined) this.#health.recover('registry');
      // Given up (stopping, or the partition moved): whoever reads it next waits instead.
      else this.#health.clear('registry', why);
    };
    for (;;) {
      let taken: Taken | undefined;
      try {
        await this.#decoder.decode(context.message.value);
        taken = this.readNow(context.message.value);
      } catch (error) {
        if (isStreamscoreError(error) && error.code === 'REGISTRY_UNAVAILABLE') {
          if (!error.retriable) {
            done('the registry refused');
            this.#onFatal(error);
            return false;
          }
          if (!waiting) {
            waiting = true;
            this.#waiting += 1;
          }
          this.#health.stall('registry', error);
          if (!(await this.#wait(context, backoff))) {
            done('the records waiting for it were given up');
            return false;
          }
          backoff = Math.min(backoff * 2, REGISTRY_BACKOFF_MS.max);
          continue;
        }
        taken = unexpected(error);
      }
      done(undefined);
      this.#admit(context, taken ?? unexpected(new Error('the schema was looked up but is not known')));
      return true;
    }
  }

  /** Waits `ms` with heartbeats; false when the record should be given up meanwhile. */
  async #wait(context: TakeContext, ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await sleep(Math.min(HEARTBEAT_MS, until - Date.now()));
      if (!context.live()) return false;
      await context.heartbeat().catch(() => undefined);
    }
    return context.live();
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

function sourceOf(topic: string, partition: number, message: KafkaMessage): DeadLetterSource {
  const { offset, key, value, headers } = message;
  return { topic, partition, offset, key, value, headers };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
