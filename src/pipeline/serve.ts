import { type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage, type Message } from 'kafkajs';
import { setImmediate } from 'node:timers/promises';
import { MicroBatcher } from '../batching/batcher.js';
import type { EventIdentity } from '../codec/feature-rows.js';
import { deadLetterMessage } from '../codec/dead-letter.js';
import { RecordEncoder, type Prediction, type ShadowPrediction } from '../codec/predictions.js';
import { RequestDecoder, type DecodeResult, type RejectReason } from '../codec/requests.js';
import type { SchemaRegistry } from '../codec/registry.js';
import type { Config } from '../config/options.js';
import { describeError } from '../errors.js';
import type { ModelRunner } from '../inference/runner.js';
import type { LiveModels, Routing } from '../models/live.js';
import { keyPosition } from '../models/routing.js';
import { incompleteRows, matrixOf, toFeatureRow, type FeatureRow } from '../inference/tensor.js';
import { Committer } from '../kafka/committer.js';
import { OffsetLedger, type OffsetEntry } from '../kafka/offsets.js';
import type { BatchProducer } from '../kafka/producer-thread.js';
import { OrderedPublisher } from '../kafka/publisher.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';
import { ShadowScorer, type ShadowWork } from './shadow.js';

export type ServeSettings = Pick<
  Config,
  | 'requestsTopic'
  | 'predictionsTopic'
  | 'deadLetterTopic'
  | 'groupId'
  | 'sessionTimeoutMs'
  | 'fromBeginning'
  | 'batchMaxRows'
  | 'batchLingerMs'
  | 'maxPendingEvents'
  | 'commitIntervalMs'
  | 'shadowTopic'
  | 'shadowMaxPendingBatches'
>;

export interface ServeDeps {
  settings: ServeSettings;
  kafka: Kafka;
  registry: SchemaRegistry;
  predictionSchemaId: number;
  shadowSchemaId: number;
  live: LiveModels;
  logger: Logger;
  metrics: ServeMetrics;
  /** Where predictions, dead letters and shadow records are sent (see openProducer). */
  producer: BatchProducer;
}

/** A consumed value as the batcher takes it, or why it is rejected. */
type Taken = { ok: true; event: EventIdentity; features: FeatureRow } | Extract<DecodeResult, { ok: false }>;

/** What is kept of a FeatureEvent while it waits: its identity, and its features as a row. */
interface Pending {
  event: EventIdentity;
  features: FeatureRow;
  /** The consumed record, kept so a failed batch can be dead-lettered with its original bytes. */
  message: KafkaMessage;
  topic: string;
  partition: number;
  entry: OffsetEntry;
  /** performance.now() when it was taken in. */
  takenAt: number;
}

/** The longest a fetch handler decodes before letting other events (results, acks) through, ms. */
const DECODE_SLICE_MS = 2;

/** Time between heartbeats while a fetch is held back by backpressure or a registry outage. */
const HEARTBEAT_WAIT_MS = 1_000;

/**
 * consume -> decode+validate -> batch -> infer -> publish -> commit, for one model version.
 *
 * Delivery is at-least-once: a record's offset is committed only after its prediction (or its
 * dead-letter record) was acknowledged by the broker, and a commit never passes a record still in
 * flight (OffsetLedger). Fetch handlers only decode and enqueue; one scoring loop takes batches
 * across all partitions in order; one ordered publisher sends them. Fetching waits while
 * maxPendingEvents are unfinished.
 */
export class ServePipeline {
  readonly #deps: ServeDeps;
  readonly #log: Logger;
  readonly #consumer: Consumer;
  readonly #producer: BatchProducer;
  readonly #decoder: RequestDecoder;
  readonly #encoder: RecordEncoder<Prediction>;
  readonly #shadows: ShadowScorer;
  readonly #batcher: MicroBatcher<Pending>;
  readonly #ledger = new OffsetLedger();
  readonly #publisher: OrderedPublisher;
  readonly #committer: Committer;
  readonly #activeHandlers = new Set<Promise<void>>();
  #scoreLoop: Promise<void> | undefined;
  /** Feature order of the rows built at decode time: the primary's. */
  #layout: readonly string[] = [];
  /** Keep decoded maps too, because a canary or shadow needs features outside #layout. */
  #keepMaps = false;
  #joined = false;
  #stopping = false;
  #fatal: unknown;
  #resolveDone!: (error: unknown) => void;
  /** Settles when the pipeline stopped: with the fatal error that stopped it, or undefined. */
  readonly done: Promise<unknown> = new Promise((resolve) => {
    this.#resolveDone = resolve;
  });

  constructor(deps: ServeDeps) {
    this.#deps = deps;
    const { settings, kafka, logger, metrics } = deps;
    this.#log = logger.child({ component: 'serve' });
    this.#consumer = kafka.consumer({
      groupId: settings.groupId,
      sessionTimeout: settings.sessionTimeoutMs,
      // Kafka's rule of thumb: heartbeats at most a third of the session timeout apart.
      heartbeatInterval: Math.min(3_000, Math.floor(settings.sessionTimeoutMs / 3)),
      maxWaitTimeInMs: 250, // how long the broker may hold an empty fetch
      // kafkajs turns a whole fetch response into message objects at once, and waiting events keep
      // their response buffers; 256 KiB a partition (kafkajs: 1 MiB) keeps that small while still
      // holding ~1,000 fraud events a partition per fetch.
      maxBytesPerPartition: 262_144,
      maxBytes: 4_194_304,
      retry: { retries: 10 },
    });
    this.#producer = deps.producer;
    this.#decoder = new RequestDecoder(deps.registry, requiredFeatures(deps.live.current));
    if (deps.live.current !== undefined) this.#setLayout(deps.live.current);
    this.#encoder = new RecordEncoder<Prediction>(deps.registry, deps.predictionSchemaId);
    this.#shadows = new ShadowScorer({
      producer: this.#producer,
      encoder: new RecordEncoder<ShadowPrediction>(deps.registry, deps.shadowSchemaId),
      topic: settings.shadowTopic,
      maxPendingBatches: settings.shadowMaxPendingBatches,
      logger: this.#log,
      metrics,
    });
    this.#batcher = new MicroBatcher<Pending>({
      maxRows: settings.batchMaxRows,
      lingerMs: settings.batchLingerMs,
      maxPending: settings.maxPendingEvents,
    });
    this.#publisher = new OrderedPublisher(this.#producer, this.#log, (error) => this.#failed(error));
    this.#committer = new Committer({
      ledger: this.#ledger,
      commit: (offsets) => this.#consumer.commitOffsets(offsets),
      intervalMs: settings.commitIntervalMs,
      logger: this.#log,
      onResult: (ok) => metrics.commits.inc({ result: ok ? 'ok' : 'failed' }),
    });
  }

  /** Group joined and model loaded: the replica takes traffic. */
  ready(): boolean {
    return this.#joined && !this.#stopping;
  }

  healthy(): boolean {
    return this.#fatal === undefined;
  }

  async start(): Promise<void> {
    const { settings, live } = this.#deps;
    const events = this.#consumer.events;
    this.#consumer.on(events.GROUP_JOIN, ({ payload }) => {
      // The group re-reads from committed offsets after a rebalance; old in-flight records may
      // still be published (a repeat, never a loss) but can no longer move a commit.
      this.#ledger.reset();
      this.#joined = true;
      this.#log.info(
        { groupId: payload.groupId, memberId: payload.memberId, assignment: payload.memberAssignment },
        'joined consumer group',
      );
    });
    this.#consumer.on(events.CRASH, ({ payload }) => {
      if (!payload.restart) this.#failed(payload.error);
      else this.#log.warn({ err: payload.error }, 'consumer crashed; kafkajs restarts it');
    });
    await this.#producer.connect();
    await this.#consumer.connect();
    await this.#consumer.subscribe({
      topics: [settings.requestsTopic],
      fromBeginning: settings.fromBeginning,
    });
    this.#scoreLoop = this.#runScoreLoop();
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 8,
      eachBatch: (payload) => this.#track(this.#handleBatch(payload)),
    });
    this.#log.info(
      { topic: settings.requestsTopic, groupId: settings.groupId, model: live.model },
      'serving: consuming requests',
    );
  }

  /**
   * Stops fetching, scores and publishes what was already consumed, commits, leaves the group.
   * Records fetched but not yet taken in are left uncommitted for the next owner.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const { settings } = this.#deps;
    this.#log.info({ pending: this.#batcher.pending }, 'stopping: finishing in-flight work');
    this.#consumer.pause([{ topic: settings.requestsTopic }]);
    await Promise.all(this.#activeHandlers);
    this.#batcher.close();
    await this.#scoreLoop;
    await this.#publisher.idle();
    await this.#shadows.idle();
    if (this.#fatal === undefined) await this.#committer.close();
    await this.#consumer
      .disconnect()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'consumer disconnect'));
    await this.#producer
      .disconnect()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'producer disconnect'));
    this.#log.info('stopped');
    this.#resolveDone(this.#fatal);
  }

  #failed(error: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = error ?? new Error('unknown failure');
    this.#log.fatal(
      { err: error },
      `fatal: ${describeError(error)}; stopping without committing unfinished work`,
    );
    this.#publisher.stop();
    void this.stop();
  }

  #track(work: Promise<void>): Promise<void> {
    this.#activeHandlers.add(work);
    return work.finally(() => this.#activeHandlers.delete(work));
  }

  async #handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const heartbeat = () => payload.heartbeat();
    const isRunning = () => payload.isRunning();
    if (this.#stopping || batch.isEmpty()) return;
    const { metrics } = this.#deps;
    const { topic, partition } = batch;
    metrics.consumerLag.set({ topic, partition: String(partition) }, Number(batch.offsetLag()));
    const oldest = Number(batch.messages[0]?.timestamp);
    if (oldest > 0)
      metrics.stageSeconds.observe({ stage: 'fetch' }, Math.max(0, Date.now() - oldest) / 1_000);
    const deadLetters: Message[] = [];
    const deadEntries: OffsetEntry[] = [];
    const reasons: RejectReason[] = [];
    let taken = 0;
    let slice = performance.now();
    for (const message of batch.messages) {
      if (this.#stopping || !isRunning() || payload.isStale()) break;
      // A fetch can hold thousands of records; decoding them all in one go would hold back
      // inference results and produce acknowledgements (both arrive as events) until it ends.
      if ((taken & 15) === 15 && performance.now() - slice > DECODE_SLICE_MS) {
        await setImmediate();
        slice = performance.now();
      }
      const result =
        this.#readNow(message.value) ?? this.#taken(await this.#decode(message, heartbeat, isRunning));
      if (result === undefined) break;
      const entry = this.#ledger.track(topic, partition, message.offset);
      if (result.ok) {
        const { event, features } = result;
        this.#batcher.add({ event, features, message, topic, partition, entry, takenAt: performance.now() });
      } else {
        deadLetters.push(
          deadLetterMessage(sourceOf(topic, partition, message), result.reason, result.stage, result.message),
        );
        deadEntries.push(entry);
        reasons.push(result.reason);
      }
      payload.resolveOffset(message.offset);
      taken += 1;
    }
    metrics.eventsConsumed.inc({ topic }, taken);
    if (deadLetters.length > 0) this.#publishDeadLetters(deadLetters, deadEntries, reasons);
    await this.#waitForCapacity(heartbeat, isRunning);
  }

  /**
   * One value as the batcher holds it, or why it is rejected, without awaiting anything; undefined
   * when its schema is not fetched yet. Well-formed events go straight into a row; the rest (and all
   * events while a canary or shadow needs features outside the layout) through the decoded map.
   */
  #readNow(value: Buffer | null): Taken | undefined {
    const read = this.#decoder.readRowNow(value);
    if (read !== undefined)
      return { ok: true, event: read.event, features: { row: read.row, layout: read.layout } };
    return this.#taken(this.#decoder.decodeNow(value));
  }

  #taken(result: DecodeResult | undefined): Taken | undefined {
    if (result === undefined || !result.ok) return result;
    const { request_id, entity_key, event_time, features } = result.event;
    return {
      ok: true,
      event: { request_id, entity_key, event_time },
      features: toFeatureRow(features, this.#layout, this.#keepMaps),
    };
  }

  /** Decodes one record; waits out registry outages (undefined if the pipeline stops meanwhile). */
  async #decode(message: KafkaMessage, heartbeat: () => Promise<void>, isRunning: () => boolean) {
    let backoff = 200;
    for (;;) {
      try {
        return await this.#decoder.decode(message.value);
      } catch (error) {
        this.#log.warn(
          { err: error },
          `schema registry unavailable, retrying in ${backoff} ms: ${describeError(error)}`,
        );
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5_000);
        await heartbeat();
        if (this.#stopping || !isRunning()) return undefined;
      }
    }
  }

  async #waitForCapacity(heartbeat: () => Promise<void>, isRunning: () => boolean): Promise<void> {
    if (this.#batcher.hasCapacity()) return;
    const started = performance.now();
    this.#deps.metrics.pendingEvents.set(this.#batcher.pending);
    while (!this.#batcher.hasCapacity() && !this.#stopping && isRunning()) {
      await waitAtMost(this.#batcher.waitForCapacity(), HEARTBEAT_WAIT_MS);
      await heartbeat();
    }
    this.#deps.metrics.backpressureSeconds.inc((performance.now() - started) / 1_000);
  }

  #publishDeadLetters(messages: Message[], entries: OffsetEntry[], reasons: RejectReason[]): void {
    const { metrics, settings } = this.#deps;
    this.#publisher.publish([{ topic: settings.deadLetterTopic, messages }], () => {
      for (const entry of entries) entry.done = true;
      for (const reason of reasons) metrics.deadLetters.inc({ reason });
      this.#committer.schedule();
    });
  }

  async #runScoreLoop(): Promise<void> {
    for (;;) {
      const batch = await this.#batcher.next();
      if (batch === undefined) return;
      try {
        await this.#scoreBatch(batch);
      } catch (error) {
        this.#failed(error);
        this.#batcher.release(batch.length);
      }
    }
  }

  /** Routing changed: the decoder checks the features the new primary and canary need. */
  routingChanged(routing: Routing): void {
    this.#decoder.setRequiredFeatures(requiredFeatures(routing));
    this.#setLayout(routing);
  }

  #setLayout(routing: Routing): void {
    this.#layout = routing.primary.featureNames;
    const layout = new Set(this.#layout);
    const others = [...routing.shadows, ...(routing.canary === undefined ? [] : [routing.canary.runner])];
    this.#keepMaps = others.some((runner) => runner.featureNames.some((name) => !layout.has(name)));
    this.#decoder.setRowLayout(this.#keepMaps ? undefined : this.#layout);
  }

  /**
   * Scores one batch with the routing live at its start: canary keys with the canary, the rest
   * with the primary (one runtime call each), publishes all predictions in one ordered send, then
   * offers the batch to the shadows.
   */
  async #scoreBatch(items: Pending[]): Promise<void> {
    const { settings, metrics } = this.#deps;
    const hold = this.#deps.live.hold();
    const started = performance.now();
    metrics.stageSeconds.observe({ stage: 'queue' }, (started - items[0]!.takenAt) / 1_000);
    try {
      const { routing } = hold;
      const groups: { runner: ModelRunner; route: 'primary' | 'canary'; items: Pending[] }[] = [
        { runner: routing.primary, route: 'primary', items: [] },
      ];
      if (routing.canary !== undefined)
        groups.push({ runner: routing.canary.runner, route: 'canary', items: [] });
      const share = routing.canary?.share ?? 0;
      for (const item of items) {
        const canary = share > 0 && keyPosition(item.event.entity_key) < share;
        groups[canary ? 1 : 0]!.items.push(item);
      }
      const scored: Pending[] = [];
      const served: ShadowWork['served'] = [];
      const messages: Message[] = [];
      const published: { model: string; version: string; route: string; rows: number }[] = [];
      for (const group of groups) {
        if (group.items.length === 0) continue;
        const outputs = await this.#score(group.runner, group.route, group.items);
        if (outputs === undefined) continue;
        const { name: model, version } = group.runner.metadata;
        const scoredAt = Date.now();
        published.push({ model, version, route: group.route, rows: group.items.length });
        for (let row = 0; row < group.items.length; row += 1) {
          const item = group.items[row]!;
          const values: Record<string, number> = {};
          for (const [name, column] of outputs) values[name] = column[row]!;
          const prediction: Prediction = {
            request_id: item.event.request_id,
            entity_key: item.event.entity_key,
            model_name: model,
            model_version: version,
            route: group.route,
            outputs: values,
            event_time: item.event.event_time,
            scored_at: scoredAt,
          };
          const value = this.#encoder.encodeNow(prediction) ?? (await this.#encoder.encode(prediction));
          messages.push({ key: item.message.key, value });
          scored.push(item);
          served.push({ version, route: group.route, outputs: values });
        }
      }
      if (scored.length === 0) return;
      const handedOver = performance.now();
      metrics.stageSeconds.observe({ stage: 'score' }, (handedOver - started) / 1_000);
      this.#publisher.publish([{ topic: settings.predictionsTopic, messages }], () => {
        metrics.stageSeconds.observe({ stage: 'publish' }, (performance.now() - handedOver) / 1_000);
        const now = Date.now();
        for (const item of scored) {
          item.entry.done = true;
          metrics.endToEndSeconds.observe((now - item.event.event_time) / 1_000);
        }
        for (const p of published)
          metrics.predictionsPublished.inc({ model: p.model, version: p.version, route: p.route }, p.rows);
        this.#batcher.release(scored.length);
        metrics.pendingEvents.set(this.#batcher.pending);
        this.#committer.schedule();
      });
      if (routing.shadows.length > 0) {
        this.#shadows.offer({
          hold: hold.retain(),
          events: scored.map((item) => item.event),
          features: scored.map((item) => item.features),
          keys: scored.map((item) => item.message.key),
          served,
        });
      }
    } finally {
      hold.release();
    }
  }

  /**
   * One runtime call. Events lacking a feature this version needs, or the whole group when the
   * runtime fails, are dead-lettered and released; scored items stay in `items` (in place).
   */
  async #score(runner: ModelRunner, route: string, items: Pending[]) {
    const { metrics } = this.#deps;
    const { name: model, version } = runner.metadata;
    const started = performance.now();
    let matrix = matrixOf(
      items.map((item) => item.features),
      runner.featureNames,
    );
    const incomplete = incompleteRows(matrix, runner.featureNames.length);
    if (incomplete.length > 0) {
      const missing = new Set(incomplete);
      this.#rejectItems(
        items.filter((_, row) => missing.has(row)),
        'MISSING_FEATURE',
        'infer',
        `version ${version} needs a feature this event lacks (${runner.featureNames.join(', ')})`,
      );
      const kept = items.filter((_, row) => !missing.has(row));
      items.splice(0, items.length, ...kept);
      if (items.length === 0) return undefined;
      matrix = matrixOf(
        items.map((item) => item.features),
        runner.featureNames,
      );
    }
    try {
      const outputs = await runner.score(matrix, items.length);
      metrics.inferenceSeconds.observe({ model, version, route }, (performance.now() - started) / 1_000);
      metrics.batchRows.observe({ model, version, route }, items.length);
      return outputs;
    } catch (error) {
      this.#log.error(
        { err: error, rows: items.length, model, version, route },
        'inference failed; the batch goes to the dead-letter topic',
      );
      this.#rejectItems(items, 'INFERENCE_FAILED', 'infer', describeError(error));
      return undefined;
    }
  }

  #rejectItems(items: Pending[], reason: RejectReason, stage: string, message: string): void {
    this.#publishDeadLetters(
      items.map((item) =>
        deadLetterMessage(sourceOf(item.topic, item.partition, item.message), reason, stage, message),
      ),
      items.map((item) => item.entry),
      items.map(() => reason),
    );
    this.#batcher.release(items.length);
  }
}

/** Features every event must carry: those of the primary and the canary (shadows are best effort). */
function requiredFeatures(routing: Routing | undefined): string[] {
  if (routing === undefined) return [];
  const names = new Set(routing.primary.featureNames);
  for (const name of routing.canary?.runner.featureNames ?? []) names.add(name);
  return [...names];
}

function sourceOf(topic: string, partition: number, message: KafkaMessage) {
  const { offset, key, value, headers } = message;
  return { topic, partition, offset, key, value, headers };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitAtMost(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
