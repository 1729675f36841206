import type { OutRecord } from '../kafka/records.js';
import type { BatchProducer } from '../kafka/producer-thread.js';
import type { RecordEncoder, ShadowPrediction } from '../codec/predictions.js';
import { describeError } from '../errors.js';
import type { ModelRunner } from '../inference/runner.js';
import { incompleteRows, matrixOf, type FeatureRow } from '../inference/tensor.js';
import type { EventIdentity } from '../codec/feature-rows.js';
import type { Hold } from '../models/live.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';

/** Shadow sends queued behind each other before scoring waits for them. */
const MAX_SENDS_IN_FLIGHT = 4;

/** One scored batch, handed to the shadows with what was published for each event. */
export interface ShadowWork {
  hold: Hold;
  events: EventIdentity[];
  features: FeatureRow[];
  keys: (Buffer | null)[];
  served: { version: string; route: string; outputs: Record<string, number> }[];
}

/**
 * Scores batches with the shadow versions and writes ShadowPrediction records. It is best effort
 * by design: it never holds up the predictions path and never holds back offset commits. Work
 * beyond maxPendingBatches, a shadow that fails, or a send that fails is dropped and counted in
 * streamscore_shadow_dropped_total; nothing is retried.
 */
export class ShadowScorer {
  readonly #producer: BatchProducer;
  readonly #encoder: RecordEncoder<ShadowPrediction>;
  readonly #topic: string;
  readonly #maxPending: number;
  readonly #log: Logger;
  readonly #metrics: ServeMetrics;
  readonly #queue: ShadowWork[] = [];
  #loop: Promise<void> = Promise.resolve();
  #draining = false;
  /** Sends run one after another on their own chain, so scoring the next batch does not wait for acks. */
  #sends: Promise<void> = Promise.resolve();
  #sendsPending = 0;
  /** Last failure logged per version, so a failing shadow is one log line a minute, not one per batch. */
  readonly #lastLogged = new Map<string, number>();

  constructor(options: {
    producer: BatchProducer;
    encoder: RecordEncoder<ShadowPrediction>;
    topic: string;
    maxPendingBatches: number;
    logger: Logger;
    metrics: ServeMetrics;
  }) {
    this.#producer = options.producer;
    this.#encoder = options.encoder;
    this.#topic = options.topic;
    this.#maxPending = options.maxPendingBatches;
    this.#log = options.logger;
    this.#metrics = options.metrics;
  }

  /** Takes the work, or drops it (counted) when the shadows are behind. Takes over work.hold. */
  offer(work: ShadowWork): void {
    if (this.#queue.length >= this.#maxPending) {
      for (const runner of work.hold.routing.shadows) this.#drop(runner, 'queue_full', work.events.length);
      work.hold.release();
      return;
    }
    this.#queue.push(work);
    if (!this.#draining) {
      this.#draining = true;
      this.#loop = this.#drain();
    }
  }

  /** Waits for queued work and its sends to finish (for shutdown). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#loop;
    await this.#sends;
  }

  /**
   * Scores queued work until the queue is empty. It stops draining in the same synchronous step
   * that finds the queue empty, so work offered at any later moment starts a new drain.
   */
  async #drain(): Promise<void> {
    for (;;) {
      const work = this.#queue.shift();
      if (work === undefined) {
        this.#draining = false;
        return;
      }
      try {
        const messages: OutRecord[] = [];
        const counts: [ModelRunner, number][] = [];
        for (const runner of work.hold.routing.shadows) {
          const produced = await this.#score(runner, work);
          messages.push(...produced);
          if (produced.length > 0) counts.push([runner, produced.length]);
        }
        if (messages.length > 0) await this.#enqueueSend(messages, counts);
      } catch (error) {
        // Best effort: what fails here is dropped (counted), and the next work goes on.
        for (const runner of work.hold.routing.shadows)
          this.#drop(runner, 'failed', work.events.length, error);
      } finally {
        work.hold.release();
      }
    }
  }

  async #score(runner: ModelRunner, work: ShadowWork): Promise<OutRecord[]> {
    const { name: model, version } = runner.metadata;
    const matrix = matrixOf(work.features, runner.featureNames);
    if (incompleteRows(matrix, runner.featureNames.length).length > 0) {
      this.#drop(runner, 'missing_feature', work.events.length);
      return [];
    }
    const rows = work.events.length;
    let outputs;
    const started = performance.now();
    try {
      outputs = await runner.score(matrix, rows);
    } catch (error) {
      this.#drop(runner, 'inference_failed', work.events.length, error);
      return [];
    }
    this.#metrics.inferenceSeconds.observe(
      { model, version, route: 'shadow' },
      (performance.now() - started) / 1_000,
    );
    this.#metrics.batchRows.observe({ model, version, route: 'shadow' }, rows);
    const scoredAt = Date.now();
    const messages: OutRecord[] = [];
    let nonFinite = 0;
    work.events.forEach((event, row) => {
      const values: Record<string, number> = {};
      for (const [name, column] of outputs) values[name] = column[row]!;
      if (!Object.values(values).every(Number.isFinite)) {
        nonFinite += 1;
        return;
      }
      const served = work.served[row]!;
      const record: ShadowPrediction = {
        request_id: event.request_id,
        entity_key: event.entity_key,
        model_name: model,
        model_version: version,
        route: 'shadow',
        outputs: values,
        served_version: served.version,
        served_route: served.route,
        served_outputs: served.outputs,
        event_time: event.event_time,
        scored_at: scoredAt,
      };
      messages.push({ key: work.keys[row] ?? null, value: this.#encoder.encodeNow(record) });
    });
    // Outputs that are not finite are never published, shadow or not.
    if (nonFinite > 0) this.#drop(runner, 'non_finite_output', nonFinite);
    return messages;
  }

  /** Chains the send; waits only when too many are already in flight (bounded memory). */
  async #enqueueSend(messages: OutRecord[], counts: [ModelRunner, number][]): Promise<void> {
    this.#sendsPending += 1;
    const sent = this.#sends
      .then(() => this.#send(messages, counts))
      .finally(() => (this.#sendsPending -= 1));
    this.#sends = sent;
    if (this.#sendsPending > MAX_SENDS_IN_FLIGHT) await sent;
  }

  async #send(messages: OutRecord[], counts: [ModelRunner, number][]): Promise<void> {
    try {
      await this.#producer.sendBatch({ topicMessages: [{ topic: this.#topic, messages }], acks: -1 });
      for (const [runner, count] of counts) {
        this.#metrics.shadowPublished.inc(
          { model: runner.metadata.name, version: runner.metadata.version },
          count,
        );
      }
    } catch (error) {
      for (const [runner, count] of counts) this.#drop(runner, 'publish_failed', count, error);
    }
  }

  #drop(runner: ModelRunner, reason: string, count: number, error?: unknown): void {
    const { name: model, version } = runner.metadata;
    this.#metrics.shadowDropped.inc({ model, version, reason }, count);
    const now = Date.now();
    const key = `${version}:${reason}`;
    if (now - (this.#lastLogged.get(key) ?? 0) < 60_000) return;
    this.#lastLogged.set(key, now);
    this.#log.warn(
      { model, version, reason, records: count, ...(error === undefined ? {} : { err: error }) },
      `shadow records dropped (${reason})${error === undefined ? '' : `: ${describeError(error)}`}; predictions are not affected`,
    );
  }
}
