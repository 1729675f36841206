/**
 * serve, wired: consume -> decode + validate -> batch -> route + infer -> publish -> commit.
 *
 *   KafkaIntake (kafka/intake.ts)      fetches, holds back at the pending limit, tracks and commits
 *   DecodeStage (decode-stage.ts)      record -> pending event, or a dead letter with its reason
 *   MicroBatcher (batching/)           pending events -> batches by rows and linger
 *   ScoringStage (scoring.ts)          batch -> one runtime call per version -> predictions in order
 *   DeadLetters (dead-letters.ts)      rejected records -> the dead-letter topic, cut to fit
 *   OrderedPublisher (kafka/)          both outputs, in order, one request in flight
 *   ShadowScorer (shadow.ts)           scored batches -> shadow versions, best effort
 *
 * Delivery is at-least-once by default: a record's offset is committed only after its prediction
 * or its dead letter was acknowledged, and never past a record still in flight. Exactly-once
 * (TransactionalPublisher) commits outputs and offsets in one transaction instead. Infrastructure trouble stalls
 * the pipeline (PipelineHealth, /readyz) and never turns good events into dead letters.
 */
import { MicroBatcher } from '../batching/batcher.js';
import { PendingLimit } from '../batching/capacity.js';
import { RecordEncoder, type Prediction, type ShadowPrediction } from '../codec/predictions.js';
import { RequestDecoder } from '../codec/requests.js';
import type { SchemaSource } from '../codec/schemas.js';
import type { Config } from '../config/options.js';
import { describeError } from '../errors.js';
import {
  heartbeatIntervalMs,
  type GroupConsumer,
  type GroupConsumerSettings,
} from '../kafka/group-consumer.js';
import { KafkaIntake, type ReplayBounds } from '../kafka/intake.js';
import type { BatchProducer } from '../kafka/producer-thread.js';
import {
  MAX_REQUEST_BYTES,
  OrderedPublisher,
  type Publisher,
  type PublisherEvents,
} from '../kafka/publisher.js';
import type { TransactionalProducer } from '../kafka/platformatic-producer.js';
import { TransactionalPublisher } from '../kafka/transactional-publisher.js';
import type { LiveModels, Routing } from '../models/live.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';
import { DeadLetters } from './dead-letters.js';
import { DecodeStage, type Pending } from './decode-stage.js';
import { PipelineHealth } from './health.js';
import { ScoringStage } from './scoring.js';
import { ShadowScorer } from './shadow.js';

export type ServeSettings = Pick<
  Config,
  | 'requestsTopic'
  | 'predictionsTopic'
  | 'deadLetterTopic'
  | 'shadowTopic'
  | 'groupId'
  | 'sessionTimeoutMs'
  | 'fromBeginning'
  | 'batchMaxRows'
  | 'batchLingerMs'
  | 'maxPendingEvents'
  | 'maxValueBytes'
  | 'maxFeatures'
  | 'commitIntervalMs'
  | 'shadowMaxPendingBatches'
  | 'cacheEntries'
  | 'cacheTtlMs'
  | 'cacheMaxMb'
>;

export interface ServeDeps {
  settings: ServeSettings;
  /** The consumer of the requests topic, of the configured Kafka client (see groupConsumers). */
  openConsumer: (settings: GroupConsumerSettings) => GroupConsumer;
  schemas: SchemaSource;
  predictionSchemaId: number;
  shadowSchemaId: number;
  /** The largest record each output topic takes (see recordLimits). */
  recordLimits: ReadonlyMap<string, number>;
  live: LiveModels;
  logger: Logger;
  metrics: ServeMetrics;
  /** Where predictions, dead letters and shadow records are sent (see openProducer). */
  producer: BatchProducer;
  /**
   * Exactly-once delivery: predictions and dead letters go through this producer's transactions,
   * with the offsets they complete; `producer` then carries shadow records only (best effort).
   */
  transactional?: TransactionalProducer;
  /**
   * A backfill instead of serving: the requests topic is read over fixed ranges (see ReplayBounds)
   * and every prediction names the route `backfill`.
   */
  replay?: ReplayBounds;
}

export class ServePipeline {
  readonly health: PipelineHealth;
  readonly #deps: ServeDeps;
  readonly #log: Logger;
  readonly #capacity: PendingLimit;
  readonly #batcher: MicroBatcher<Pending>;
  readonly #publisher: Publisher;
  readonly #intake: KafkaIntake;
  readonly #consumer: GroupConsumer;
  readonly #decode: DecodeStage;
  readonly #encoders: [RecordEncoder<Prediction>, RecordEncoder<ShadowPrediction>];
  readonly #shadows: ShadowScorer;
  readonly #scoring: ScoringStage;
  readonly #silenceMs: number;
  #lastContact = Date.now();
  #monitor: NodeJS.Timeout | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #resolveDone!: (error: unknown) => void;
  /** Settles when the pipeline stopped: with the fatal error that stopped it, or undefined. */
  readonly done: Promise<unknown> = new Promise((resolve) => (this.#resolveDone = resolve));

  constructor(deps: ServeDeps) {
    this.#deps = deps;
    const { settings, metrics, recordLimits } = deps;
    const log = (this.#log = deps.logger.child({ component: 'serve' }));
    const limitOf = (topic: string) => recordLimits.get(topic) ?? MAX_REQUEST_BYTES;
    this.health = new PipelineHealth(log, metrics);
    this.#capacity = new PendingLimit(settings.maxPendingEvents);
    this.#batcher = new MicroBatcher<Pending>({
      maxRows: settings.batchMaxRows,
      lingerMs: settings.batchLingerMs,
    });
    // A request never carries more than the smallest output topic takes in one record batch.
    const requestBytes = Math.min(
      MAX_REQUEST_BYTES,
      limitOf(settings.predictionsTopic),
      limitOf(settings.deadLetterTopic),
    );
    const publishEvents: PublisherEvents = {
      stalled: (error, refused) => this.health.stall('publish', error, refused ? 'error' : 'warn'),
      recovered: () => this.health.recover('publish'),
      fatal: (error) => this.#fail(error),
    };
    const transactional = deps.transactional;
    const transactions =
      transactional === undefined
        ? undefined
        : new TransactionalPublisher({
            producer: transactional,
            source: () => this.#intake.transactionSource(),
            logger: log,
            events: publishEvents,
            maxRequestBytes: requestBytes,
          });
    this.#publisher = transactions ?? new OrderedPublisher(deps.producer, log, publishEvents, requestBytes);
    const deadLetters = new DeadLetters({
      publisher: this.#publisher,
      capacity: this.#capacity,
      topic: settings.deadLetterTopic,
      maxRecordBytes: limitOf(settings.deadLetterTopic),
      metrics,
      acknowledged: () => this.#intake.commitSoon(),
    });
    this.#decode = new DecodeStage({
      decoder: new RequestDecoder(deps.schemas, settings, []),
      batcher: this.#batcher,
      capacity: this.#capacity,
      deadLetters,
      health: this.health,
      onFatal: (error) => this.#fail(error),
    });
    this.#silenceMs = Math.max(6_000, 2 * heartbeatIntervalMs(settings.sessionTimeoutMs));
    this.#consumer = deps.openConsumer({
      topic: settings.requestsTopic,
      groupId: settings.groupId,
      sessionTimeoutMs: settings.sessionTimeoutMs,
      fromBeginning: settings.fromBeginning,
      exactlyOnce: transactional !== undefined,
    });
    this.#intake = new KafkaIntake({
      consumer: this.#consumer,
      ...(transactions === undefined
        ? {}
        : {
            transactions: {
              schedule: () => transactions.flush(),
              abandon: () => transactions.stop(),
              close: async () => {
                transactions.flush();
                await transactions.idle();
              },
            },
          }),
      settings: { ...settings, topic: settings.requestsTopic },
      capacity: this.#capacity,
      take: this.#decode.take,
      logger: log,
      metrics,
      ...(deps.replay === undefined ? {} : { bounds: deps.replay }),
      events: {
        joined: (assignment, revoked) =>
          log.info(
            { groupId: settings.groupId, assignment, revoked: revoked.length },
            'joined consumer group',
          ),
        contact: () => {
          this.#lastContact = Date.now();
          this.health.recover('broker');
        },
        crashed: (error, restart) => {
          if (restart) this.health.stall('broker', error);
          else this.#fail(error);
        },
      },
    });
    this.#encoders = [
      new RecordEncoder<Prediction>(deps.schemas, deps.predictionSchemaId),
      new RecordEncoder<ShadowPrediction>(deps.schemas, deps.shadowSchemaId),
    ];
    this.#shadows = new ShadowScorer({
      producer: deps.producer,
      encoder: this.#encoders[1],
      topic: settings.shadowTopic,
      maxPendingBatches: settings.shadowMaxPendingBatches,
      logger: log,
      metrics,
    });
    this.#scoring = new ScoringStage({
      batcher: this.#batcher,
      live: deps.live,
      publisher: this.#publisher,
      deadLetters,
      capacity: this.#capacity,
      encoder: this.#encoders[0],
      shadows: this.#shadows,
      health: this.health,
      metrics,
      logger: log,
      topic: settings.predictionsTopic,
      maxPredictionBytes: limitOf(settings.predictionsTopic),
      reread: (value) => this.#decode.readNow(value),
      acknowledged: () => this.#intake.commitSoon(),
      onFatal: (error) => this.#fail(error),
      ...(deps.replay === undefined ? {} : { routeName: 'backfill' }),
      cache:
        settings.cacheEntries > 0
          ? {
              maxEntries: settings.cacheEntries,
              maxBytes: settings.cacheMaxMb * 1_048_576,
              ttlMs: settings.cacheTtlMs,
            }
          : undefined,
    });
    if (deps.live.current !== undefined) this.routingChanged(deps.live.current);
  }

  /** Group joined, nothing stalled, not stopping: the replica is taking traffic. */
  ready(): boolean {
    return this.#intake.joined && !this.#stopping && this.health.stalls.length === 0;
  }

  healthy(): boolean {
    return this.health.healthy();
  }

  /** Connects and joins the group; returns early (without error) when stop() was called meanwhile. */
  async start(): Promise<void> {
    const { settings, live } = this.#deps;
    try {
      await this.#deps.producer.connect();
      await this.#deps.transactional?.connect();
      for (const encoder of this.#encoders) await encoder.prepare();
      this.#scoring.start();
      this.#monitor = setInterval(() => this.#checkContact(), 1_000);
      this.#monitor.unref();
      if (this.#stopping) return;
      await this.#intake.start();
    } catch (error) {
      if (this.#stopping) return;
      throw error;
    }
    this.#log.info(
      { topic: settings.requestsTopic, groupId: settings.groupId, model: live.model },
      this.#deps.replay === undefined ? 'serving: consuming requests' : 'backfill: consuming its range',
    );
  }

  /**
   * Stops fetching, scores and publishes what was already taken in, commits, leaves the group.
   * Records fetched but not yet taken in are left uncommitted for the next owner. Never rejects.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop().catch((error: unknown) =>
      this.#log.error({ err: error }, `stopping failed: ${describeError(error)}`),
    );
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#monitor);
    this.#log.info({ pending: this.#capacity.pending }, 'stopping: finishing in-flight work');
    try {
      await this.#intake.pause();
      this.#batcher.close();
      await this.#scoring.stop();
      // A broker refusing or not taking writes will not take these either: they stay uncommitted
      // and are read again, rather than holding shutdown until its timeout.
      if (this.health.isStalled('publish')) this.#publisher.stop();
      await this.#publisher.idle();
      await this.#shadows.idle();
      await this.#intake.close(this.health.healthy());
      for (const producer of [this.#deps.producer, this.#deps.transactional]) {
        await producer
          ?.disconnect()
          .catch((error: unknown) => this.#log.warn({ err: error }, 'producer disconnect'));
      }
      this.#log.info('stopped');
    } finally {
      this.#resolveDone(this.health.fatal);
    }
  }

  /** Routing changed: events are checked for the features of the primary and the canary. */
  routingChanged(routing: Routing): void {
    // Cached outputs belong to the routing that computed them (a reloaded version is a new one).
    this.#scoring.routingChanged();
    const layout = routing.primary.featureNames;
    const required = new Set(layout);
    for (const name of routing.canary?.runner.featureNames ?? []) required.add(name);
    const inLayout = new Set(layout);
    const others = [...routing.shadows, ...(routing.canary === undefined ? [] : [routing.canary.runner])];
    const keepMaps = others.some((runner) => runner.featureNames.some((name) => !inLayout.has(name)));
    this.#decode.setFeatures([...required], layout, keepMaps);
  }

  #fail(error: unknown): void {
    if (!this.health.fail(error)) return;
    this.#log.fatal(
      { err: error },
      `fatal: ${describeError(error)}; stopping without committing unfinished work`,
    );
    this.#publisher.stop();
    void this.stop();
  }

  #checkContact(): void {
    if (this.#intake.joined && Date.now() - this.#lastContact > this.#silenceMs) {
      const trouble = this.#consumer.trouble();
      const detail = trouble === undefined ? '' : ` (last: ${trouble})`;
      this.health.stall(
        'broker',
        new Error(`no fetch or heartbeat answered for ${this.#silenceMs} ms${detail}`),
      );
    }
  }
}
