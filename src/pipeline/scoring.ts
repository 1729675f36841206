import type { OutRecord } from '../kafka/records.js';
import type { MicroBatcher } from '../batching/batcher.js';
import type { PendingLimit } from '../batching/capacity.js';
import type { Prediction, RecordEncoder } from '../codec/predictions.js';
import { VersionFailingError, scoreIsolating } from '../inference/isolation.js';
import type { ModelRunner } from '../inference/runner.js';
import { incompleteRows, matrixOf } from '../inference/tensor.js';
import { recordBytes, type Publisher } from '../kafka/publisher.js';
import { keyPosition } from '../models/key-position.js';
import type { LiveModels } from '../models/live.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';
import type { Rejected, DeadLetters } from './dead-letters.js';
import type { Pending, Taken } from './decode-stage.js';
import type { PipelineHealth } from './health.js';
import type { ShadowScorer, ShadowWork } from './shadow.js';
import { Backoff } from '../timers.js';
import { PredictionCache, rowHash, type CacheLimits } from './prediction-cache.js';

const STALL_BACKOFF_MS = { first: 1_000, max: 30_000 };

/** One event's place in a batch: which version scores it, and how it ended. */
interface Slot {
  item: Pending;
  route: 'primary' | 'canary' | 'fallback';
  runner: ModelRunner;
  /** The version that failed on this event before the fallback scored it. */
  from?: ModelRunner;
  outputs?: Readonly<Record<string, number>>;
  /** The outputs came from the prediction cache. */
  cached?: boolean;
  rejected?: Omit<Rejected, 'source' | 'entry'>;
}

/** Set on a prediction whose outputs came from the prediction cache. */
export const CACHE_HEADER = 'streamscore.cache';
/** Set on a prediction the fallback scored: the version that failed on its event. */
export const FALLBACK_HEADER = 'streamscore.fallback-from';

/** Batches in a row a version fails before its circuit opens (it is taken out of routing). */
export const CIRCUIT_BATCHES = 3;

/** How a version has been doing: batches in a row it failed, and whether its circuit is open. */
interface Breaker {
  failedBatches: number;
  open: boolean;
  /** Its last batch needed the fallback: said once when it starts and once when it stops. */
  fallingBack: boolean;
}

/**
 * batch -> route -> infer -> publish: one loop takes batches from the batcher in order, scores each
 * with the routing live at its start (canary keys with the canary, the rest with the primary, one
 * runtime call each), and publishes one prediction per event in the order the events came, so order
 * within a partition holds. Rows that make the model fail, or that lack a feature the version needs
 * even when read again from their bytes, become dead letters; a version that fails as a whole
 * (VersionFailingError) stalls the loop, which tries the batch again with whatever routing is live
 * then. Events of partitions that moved to another replica are dropped before scoring.
 */
export class ScoringStage {
  readonly #batcher: MicroBatcher<Pending>;
  readonly #live: LiveModels;
  readonly #publisher: Publisher;
  readonly #deadLetters: DeadLetters;
  readonly #capacity: PendingLimit;
  readonly #encoder: RecordEncoder<Prediction>;
  readonly #shadows: ShadowScorer;
  readonly #health: PipelineHealth;
  readonly #metrics: ServeMetrics;
  readonly #log: Logger;
  readonly #topic: string;
  readonly #maxPredictionBytes: number;
  readonly #reread: (value: Buffer | null) => Taken | undefined;
  readonly #acknowledged: () => void;
  readonly #onFatal: (error: unknown) => void;
  /** The route every prediction names instead of primary/canary (a backfill's). */
  readonly #routeName: string | undefined;
  /** Prediction caches by loaded version, while the routing that loaded them is live. */
  readonly #caches = new Map<ModelRunner, PredictionCache>();
  /** Failure counts and circuits of the versions in the live routing (reset when it changes). */
  readonly #breakers = new Map<ModelRunner, Breaker>();
  readonly #evictionsSeen = new WeakMap<PredictionCache, number>();
  readonly #cacheLimits: CacheLimits | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  readonly #backoff = new Backoff();

  constructor(options: {
    batcher: MicroBatcher<Pending>;
    live: LiveModels;
    publisher: Publisher;
    deadLetters: DeadLetters;
    capacity: PendingLimit;
    encoder: RecordEncoder<Prediction>;
    shadows: ShadowScorer;
    health: PipelineHealth;
    metrics: ServeMetrics;
    logger: Logger;
    topic: string;
    /** The largest record the predictions topic takes. */
    maxPredictionBytes: number;
    /** Reads an event again from its bytes, with the features the live routing needs. */
    reread: (value: Buffer | null) => Taken | undefined;
    acknowledged: () => void;
    onFatal: (error: unknown) => void;
    /** The route every prediction names instead of primary/canary (a backfill's). */
    routeName?: string;
    /** A prediction cache per version with these bounds; none when undefined. */
    cache?: CacheLimits | undefined;
  }) {
    this.#cacheLimits = options.cache;
    this.#routeName = options.routeName;
    this.#batcher = options.batcher;
    this.#live = options.live;
    this.#publisher = options.publisher;
    this.#deadLetters = options.deadLetters;
    this.#capacity = options.capacity;
    this.#encoder = options.encoder;
    this.#shadows = options.shadows;
    this.#health = options.health;
    this.#metrics = options.metrics;
    this.#log = options.logger;
    this.#topic = options.topic;
    this.#maxPredictionBytes = options.maxPredictionBytes;
    this.#reread = options.reread;
    this.#acknowledged = options.acknowledged;
    this.#onFatal = options.onFatal;
  }

  /**
   * The routing changed (an operator's change, or a version loaded again because its files
   * changed): circuits close, so an opened version is tried again, caches are dropped, and a
   * stalled batch does not wait out its backoff.
   */
  routingChanged(): void {
    for (const [runner, breaker] of this.#breakers) {
      if (breaker.open) {
        const { name: model, version } = runner.metadata;
        this.#metrics.circuitOpen.set({ model, version }, 0);
        this.#log.info(
          { model, version },
          `${model}/${version}: circuit closed by a routing change; it is tried again`,
        );
      }
    }
    this.#breakers.clear();
    this.dropCaches();
    // A batch stalled on a failing version is tried again now, with the new routing.
    this.#backoff.wake();
  }

  /** Drops every prediction cache: the routing changed, or a version was loaded again. */
  dropCaches(): void {
    for (const [runner, cache] of this.#caches) {
      cache.clear();
      this.#metrics.cacheEntries.set({ model: runner.metadata.name, version: runner.metadata.version }, 0);
    }
    this.#caches.clear();
  }

  #cacheFor(runner: ModelRunner): PredictionCache | undefined {
    if (this.#cacheLimits === undefined) return undefined;
    let cache = this.#caches.get(runner);
    if (cache === undefined) {
      cache = new PredictionCache(this.#cacheLimits);
      this.#caches.set(runner, cache);
      this.#evictionsSeen.set(cache, 0);
    }
    return cache;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops after the batches already queued (the batcher must be closed); a stalled batch is left. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#backoff.wake();
    await this.#loop;
  }

  async #run(): Promise<void> {
    for (;;) {
      const batch = await this.#batcher.next();
      if (batch === undefined) return;
      await this.#scoreOrStall(batch);
    }
  }

  /** The events whose partition is still ours; the others are dropped (their new owner scores them). */
  #owned(items: Pending[]): Pending[] {
    const owned = items.filter((item) => !item.lease.revoked);
    const dropped = items.length - owned.length;
    if (dropped > 0) {
      this.#metrics.revokedEvents.inc(dropped);
      this.#capacity.release(dropped);
    }
    return owned;
  }

  async #scoreOrStall(batch: Pending[]): Promise<void> {
    const started = performance.now();
    this.#metrics.stageSeconds.observe({ stage: 'queue' }, (started - batch[0]!.takenAt) / 1_000);
    let items = batch;
    let backoff = STALL_BACKOFF_MS.first;
    for (;;) {
      items = this.#owned(items);
      if (items.length === 0) {
        // A stalled batch whose partitions all moved: nothing here waits on the version any more.
        this.#health.recover('inference', 'the batch waiting for it moved to another replica');
        return;
      }
      try {
        await this.#score(items, started);
        this.#health.recover('inference');
        return;
      } catch (error) {
        if (!(error instanceof VersionFailingError) || this.#stopping) {
          // Unfinished events are neither published nor committed: the next owner reads them again.
          this.#capacity.release(items.length);
          if (!(error instanceof VersionFailingError)) this.#onFatal(error);
          return;
        }
        this.#health.stall('inference', error);
        const { model, version } = error.context;
        this.#metrics.inferenceRetries.inc({ model: String(model), version: String(version), why: 'stall' });
        await this.#backoff.wait(backoff);
        backoff = Math.min(backoff * 2, STALL_BACKOFF_MS.max);
      }
    }
  }

  async #score(items: Pending[], started: number): Promise<void> {
    const hold = this.#live.hold();
    try {
      const { routing } = hold;
      const { primary, fallback } = routing;
      // A version whose circuit is open is out of routing: the canary's keys go to the primary,
      // the primary's to the fallback.
      const canary =
        routing.canary !== undefined && !this.#isOpen(routing.canary.runner) ? routing.canary : undefined;
      const primaryOut = fallback !== undefined && this.#isOpen(primary);
      const share = canary?.share ?? 0;
      const slots: Slot[] = items.map((item) => {
        if (share > 0 && keyPosition(item.event.entity_key) < share)
          return { item, route: 'canary', runner: canary!.runner };
        if (primaryOut) return { item, route: 'fallback', runner: fallback, from: primary };
        return { item, route: 'primary', runner: primary };
      });
      for (const runner of new Set(slots.map((slot) => slot.runner))) {
        // What the canary fails on goes to the fallback, or to the primary when there is none.
        const instead =
          runner === primary ? fallback : runner === fallback ? undefined : (fallback ?? primary);
        await this.#scoreOrFallBack(
          runner,
          slots.filter((slot) => slot.runner === runner),
          instead,
        );
      }
      this.#publish(slots, started, routing.shadows.length > 0 ? hold.retain() : undefined);
    } finally {
      hold.release();
    }
  }

  #isOpen(runner: ModelRunner): boolean {
    return this.#breakers.get(runner)?.open === true;
  }

  /**
   * Scores the slots with their version; what it fails on (the whole batch, or rows it fails on or
   * scores as non-finite) is scored by `instead`, and dead-lettered only if that fails too. Without
   * `instead`, a version failing as a whole stalls the stage, as before. Each batch counts for the
   * version's circuit: CIRCUIT_BATCHES failed batches in a row open it.
   */
  async #scoreOrFallBack(
    runner: ModelRunner,
    slots: Slot[],
    instead: ModelRunner | undefined,
  ): Promise<void> {
    let whole = false;
    try {
      await this.#scoreWith(runner, slots, instead !== undefined);
    } catch (error) {
      if (!(error instanceof VersionFailingError) || instead === undefined) throw error;
      whole = true;
    }
    const failing = slots.filter((slot) =>
      whole
        ? slot.outputs === undefined &&
          (slot.rejected === undefined || slot.rejected.reason === 'INFERENCE_FAILED')
        : slot.rejected?.reason === 'INFERENCE_FAILED',
    );
    if (instead === undefined) return;
    this.#count(runner, whole || failing.length * 2 > slots.length, failing.length, instead);
    if (failing.length === 0) return;
    const why = new Map<Slot, string>();
    for (const slot of failing) {
      why.set(slot, slot.rejected?.message ?? 'the version fails on every batch');
      slot.rejected = undefined;
      slot.outputs = undefined;
      slot.from = runner;
      slot.runner = instead;
      slot.route = 'fallback';
    }
    await this.#scoreWith(instead, failing);
    const { name: model, version } = runner.metadata;
    let rescued = 0;
    for (const slot of failing) {
      if (slot.outputs !== undefined) rescued += 1;
      else if (slot.rejected?.reason === 'INFERENCE_FAILED') {
        slot.rejected.message = `${why.get(slot)}; fallback ${instead.metadata.version}: ${slot.rejected.message}`;
      }
    }
    if (rescued > 0) {
      this.#metrics.fallbackEvents.inc(
        { model, version, fallback_version: instead.metadata.version },
        rescued,
      );
    }
  }

  /** Counts a batch for a version's circuit, and says when it starts or stops falling back. */
  #count(runner: ModelRunner, failedBatch: boolean, failedRows: number, instead: ModelRunner): void {
    const breaker = this.#breakers.get(runner) ?? { failedBatches: 0, open: false, fallingBack: false };
    this.#breakers.set(runner, breaker);
    const { name: model, version } = runner.metadata;
    const other = instead.metadata.version;
    breaker.failedBatches = failedBatch ? breaker.failedBatches + 1 : 0;
    if (failedRows > 0 && !breaker.fallingBack) {
      breaker.fallingBack = true;
      this.#log.warn(
        { model, version, fallback: other, rows: failedRows },
        `${model}/${version} fails: its events go to ${model}/${other}`,
      );
    } else if (failedRows === 0 && breaker.fallingBack) {
      breaker.fallingBack = false;
      this.#log.info({ model, version }, `${model}/${version} scores again without falling back`);
    }
    if (!breaker.open && breaker.failedBatches >= CIRCUIT_BATCHES) {
      breaker.open = true;
      this.#metrics.circuitOpen.set({ model, version }, 1);
      this.#log.error(
        { model, version, fallback: other, batches: breaker.failedBatches },
        `${model}/${version}: circuit open after ${breaker.failedBatches} failed batches in a row; it takes no traffic until its files or the routing change`,
      );
    }
  }

  /** One runtime call for the slots of one version (more where rows must be isolated). */
  async #scoreWith(runner: ModelRunner, slots: Slot[], rescuable = false): Promise<void> {
    const names = runner.featureNames;
    const { name: model, version } = runner.metadata;
    // Events read before a routing switch may lack a feature this version needs in their row;
    // their bytes still have it, or they are rejected for the routing that is live now.
    let matrix: Float32Array | undefined = matrixOf(
      slots.map((slot) => slot.item.features),
      names,
    );
    const incomplete = incompleteRows(matrix, names.length);
    for (const row of incomplete) {
      const slot = slots[row]!;
      const again = this.#reread(slot.item.source.value);
      if (again?.ok === true) slot.item.features = again.features;
      if (
        again?.ok !== true ||
        incompleteRows(matrixOf([slot.item.features], names), names.length).length > 0
      ) {
        slot.rejected =
          again?.ok === false
            ? { reason: again.reason, stage: again.stage, message: again.message }
            : {
                reason: 'MISSING_FEATURE',
                stage: 'infer',
                message: `version ${version} needs ${names.join(', ')}`,
              };
      }
    }
    if (incomplete.length > 0) matrix = undefined;
    const complete = slots.filter((slot) => slot.rejected === undefined);
    if (complete.length === 0) return;
    // Rows seen before (exactly) take their outputs from the cache; the rest go to the runtime.
    let scored = complete;
    let keys: { hash: number; row: Float32Array }[] | undefined;
    const cache = this.#cacheFor(runner);
    if (cache !== undefined) {
      const keyed =
        matrix ??
        matrixOf(
          complete.map((slot) => slot.item.features),
          names,
        );
      scored = [];
      keys = [];
      for (let row = 0; row < complete.length; row += 1) {
        const hash = rowHash(keyed, row, names.length);
        const hit = cache.get(hash, keyed, row, names.length);
        if (hit === undefined) {
          scored.push(complete[row]!);
          // A copy: the matrix itself may move to the runtime's thread.
          keys.push({ hash, row: keyed.slice(row * names.length, (row + 1) * names.length) });
        } else {
          complete[row]!.outputs = hit;
          complete[row]!.cached = true;
        }
      }
      const hits = complete.length - scored.length;
      if (hits > 0) this.#metrics.cacheHits.inc({ model, version }, hits);
      if (scored.length > 0) this.#metrics.cacheMisses.inc({ model, version }, scored.length);
      if (hits === 0) matrix = keyed;
      else {
        // The rows left for the runtime, copied from the matrix already built.
        matrix = new Float32Array(scored.length * names.length);
        keys.forEach((key, i) => matrix!.set(key.row, i * names.length));
      }
      if (scored.length === 0) return;
    }
    const started = performance.now();
    const labels = { model, version, route: scored[0]!.route };
    const { outputs, failed } = await scoreIsolating(
      runner,
      scored.length,
      (rows) => {
        // The matrix built above serves the first call (it moves to the runtime with it).
        if (matrix !== undefined && rows.length === scored.length) {
          const built = matrix;
          matrix = undefined;
          return built;
        }
        return matrixOf(
          rows.map((row) => scored[row]!.item.features),
          names,
        );
      },
      (why) => this.#metrics.inferenceRetries.inc({ model, version, why }),
    );
    this.#metrics.inferenceSeconds.observe(labels, (performance.now() - started) / 1_000);
    this.#metrics.batchRows.observe(labels, scored.length);
    for (let row = 0; row < scored.length; row += 1) {
      const why = failed.get(row);
      if (why !== undefined) {
        scored[row]!.rejected = {
          reason: 'INFERENCE_FAILED',
          stage: 'infer',
          message: `${model}/${version}: ${why}`,
        };
        continue;
      }
      const values: Record<string, number> = {};
      for (const [name, column] of outputs) values[name] = column[row]!;
      scored[row]!.outputs = values;
      if (keys !== undefined) cache!.set(keys[row]!.hash, keys[row]!.row, values);
    }
    if (cache !== undefined) {
      const evicted = cache.counts.evictions - this.#evictionsSeen.get(cache)!;
      if (evicted > 0) this.#metrics.cacheEvictions.inc({ model, version }, evicted);
      this.#evictionsSeen.set(cache, cache.counts.evictions);
      this.#metrics.cacheEntries.set({ model, version }, cache.size);
    }
    // With somewhere else to go, the fallback's own log lines say what happened, once.
    if (failed.size > 0 && !rescuable) {
      this.#log.warn(
        { model, version, rows: scored.length, failed: failed.size },
        'rows the model fails on go to the dead-letter topic',
      );
    }
  }

  /** Predictions in event order, one publish; rejected events to the dead-letter topic. */
  #publish(slots: Slot[], started: number, shadowHold: ReturnType<LiveModels['hold']> | undefined): void {
    const messages: OutRecord[] = [];
    const published: Slot[] = [];
    const rejected: Rejected[] = [];
    const scoredAt = Date.now();
    for (const slot of slots) {
      const { item } = slot;
      if (slot.outputs !== undefined) {
        const { name: model, version } = slot.runner.metadata;
        const prediction: Prediction = {
          request_id: item.event.request_id,
          entity_key: item.event.entity_key,
          model_name: model,
          model_version: version,
          route: this.#routeName ?? slot.route,
          outputs: slot.outputs,
          event_time: item.event.event_time,
          scored_at: scoredAt,
        };
        const message: OutRecord = { key: item.source.key, value: this.#encoder.encodeNow(prediction) };
        if (slot.cached === true) message.headers = { [CACHE_HEADER]: 'hit' };
        if (slot.from !== undefined)
          message.headers = { ...message.headers, [FALLBACK_HEADER]: slot.from.metadata.version };
        if (recordBytes(message) <= this.#maxPredictionBytes) {
          messages.push(message);
          published.push(slot);
          continue;
        }
        slot.rejected = {
          reason: 'PREDICTION_TOO_LARGE',
          stage: 'publish',
          message: `the prediction would take ${recordBytes(message)} bytes; ${this.#topic} takes ${this.#maxPredictionBytes}`,
        };
      }
      rejected.push({ source: item.source, entry: item.entry, ...slot.rejected! });
    }
    this.#deadLetters.send(rejected);
    if (published.length === 0) {
      shadowHold?.release();
      return;
    }
    const handedOver = performance.now();
    this.#metrics.stageSeconds.observe({ stage: 'score' }, (handedOver - started) / 1_000);
    const sources = published.map(({ item }) => item.entry);
    this.#publisher.publish(
      [{ topic: this.#topic, messages }],
      () => {
        this.#metrics.stageSeconds.observe({ stage: 'publish' }, (performance.now() - handedOver) / 1_000);
        const now = Date.now();
        const counts = new Map<ModelRunner, Map<string, number>>();
        for (const { item, runner, route } of published) {
          item.entry.done = true;
          this.#metrics.endToEndSeconds.observe((now - item.event.event_time) / 1_000);
          const byRoute = counts.get(runner) ?? new Map<string, number>();
          const name = this.#routeName ?? route;
          byRoute.set(name, (byRoute.get(name) ?? 0) + 1);
          counts.set(runner, byRoute);
        }
        for (const [runner, byRoute] of counts) {
          for (const [route, rows] of byRoute) {
            this.#metrics.predictionsPublished.inc(
              { model: runner.metadata.name, version: runner.metadata.version, route },
              rows,
            );
          }
        }
        this.#capacity.release(published.length);
        this.#metrics.pendingEvents.set(this.#capacity.pending);
        this.#acknowledged();
      },
      sources,
    );
    if (shadowHold !== undefined) {
      const work: ShadowWork = {
        hold: shadowHold,
        events: published.map((slot) => slot.item.event),
        features: published.map((slot) => slot.item.features),
        keys: published.map((slot) => slot.item.source.key),
        served: published.map((slot) => ({
          version: slot.runner.metadata.version,
          route: slot.route,
          outputs: slot.outputs!,
        })),
      };
      this.#shadows.offer(work);
    }
  }
}
