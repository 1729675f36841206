import {
  Partitioners,
  type Consumer,
  type EachBatchPayload,
  type Kafka,
  type KafkaMessage,
  type Message,
  type Producer,
} from 'kafkajs';
import { MicroBatcher } from '../batching/batcher.js';
import { deadLetterMessage } from '../codec/dead-letter.js';
import { PredictionEncoder, type Prediction } from '../codec/predictions.js';
import { RequestDecoder, type FeatureEvent, type RejectReason } from '../codec/requests.js';
import type { SchemaRegistry } from '../codec/registry.js';
import type { Config } from '../config/options.js';
import { describeError } from '../errors.js';
import type { ModelRunner } from '../inference/runner.js';
import { buildMatrix } from '../inference/tensor.js';
import { Committer } from '../kafka/committer.js';
import { OffsetLedger, type OffsetEntry } from '../kafka/offsets.js';
import { OrderedPublisher } from '../kafka/publisher.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';

export type ServeSettings = Pick<
  Config,
  | 'requestsTopic'
  | 'predictionsTopic'
  | 'deadLetterTopic'
  | 'groupId'
  | 'fromBeginning'
  | 'batchMaxRows'
  | 'batchLingerMs'
  | 'maxPendingEvents'
  | 'commitIntervalMs'
>;

export interface ServeDeps {
  settings: ServeSettings;
  kafka: Kafka;
  registry: SchemaRegistry;
  predictionSchemaId: number;
  runner: ModelRunner;
  logger: Logger;
  metrics: ServeMetrics;
}

interface Pending {
  event: FeatureEvent;
  /** The consumed record, kept so a failed batch can be dead-lettered with its original bytes. */
  message: KafkaMessage;
  topic: string;
  partition: number;
  entry: OffsetEntry;
}

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
  readonly #producer: Producer;
  readonly #decoder: RequestDecoder;
  readonly #encoder: PredictionEncoder;
  readonly #batcher: MicroBatcher<Pending>;
  readonly #ledger = new OffsetLedger();
  readonly #publisher: OrderedPublisher;
  readonly #committer: Committer;
  readonly #activeHandlers = new Set<Promise<void>>();
  #scoreLoop: Promise<void> | undefined;
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
      sessionTimeout: 30_000, // thirty seconds without a heartbeat and the group moves our partitions
      heartbeatInterval: 3_000,
      maxWaitTimeInMs: 250, // how long the broker may hold an empty fetch
      retry: { retries: 10 },
    });
    this.#producer = kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 5 },
    });
    this.#decoder = new RequestDecoder(deps.registry, deps.runner.featureNames);
    this.#encoder = new PredictionEncoder(deps.registry, deps.predictionSchemaId);
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
    const { settings, metrics, runner } = this.#deps;
    const { name, version, sha256 } = runner.metadata;
    metrics.modelInfo.set({ model: name, version, sha256 }, 1);
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
      { topic: settings.requestsTopic, groupId: settings.groupId, model: name, version },
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
    const deadLetters: Message[] = [];
    const deadEntries: OffsetEntry[] = [];
    const reasons: RejectReason[] = [];
    let taken = 0;
    for (const message of batch.messages) {
      if (this.#stopping || !isRunning() || payload.isStale()) break;
      const result = await this.#decode(message, heartbeat, isRunning);
      if (result === undefined) break;
      const entry = this.#ledger.track(topic, partition, message.offset);
      if (result.ok) {
        this.#batcher.add({ event: result.event, message, topic, partition, entry });
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

  async #scoreBatch(items: Pending[]): Promise<void> {
    const { runner, metrics, settings } = this.#deps;
    const { name: model, version } = runner.metadata;
    const rows = items.length;
    const started = performance.now();
    let outputs;
    try {
      outputs = await runner.score(
        buildMatrix(
          items.map((item) => item.event.features),
          runner.featureNames,
        ),
        rows,
      );
    } catch (error) {
      this.#log.error(
        { err: error, rows, model, version },
        'inference failed; the batch goes to the dead-letter topic',
      );
      const message = describeError(error);
      const dead = items.map((item) =>
        deadLetterMessage(
          sourceOf(item.topic, item.partition, item.message),
          'INFERENCE_FAILED',
          'infer',
          message,
        ),
      );
      this.#publishDeadLetters(
        dead,
        items.map((item) => item.entry),
        items.map(() => 'INFERENCE_FAILED'),
      );
      this.#batcher.release(rows);
      return;
    }
    metrics.inferenceSeconds.observe({ model, version }, (performance.now() - started) / 1_000);
    metrics.batchRows.observe({ model, version }, rows);
    const scoredAt = Date.now();
    const names = [...outputs.keys()];
    const columns = [...outputs.values()];
    const messages = await Promise.all(
      items.map(async (item, row): Promise<Message> => {
        const values: Record<string, number> = {};
        for (let c = 0; c < names.length; c += 1) values[names[c]!] = columns[c]![row]!;
        const prediction: Prediction = {
          request_id: item.event.request_id,
          entity_key: item.event.entity_key,
          model_name: model,
          model_version: version,
          route: 'primary',
          outputs: values,
          event_time: item.event.event_time,
          scored_at: scoredAt,
        };
        return { key: item.message.key, value: await this.#encoder.encode(prediction) };
      }),
    );
    this.#publisher.publish([{ topic: settings.predictionsTopic, messages }], () => {
      const now = Date.now();
      for (const item of items) {
        item.entry.done = true;
        metrics.endToEndSeconds.observe((now - item.event.event_time) / 1_000);
      }
      metrics.predictionsPublished.inc({ model, version, route: 'primary' }, rows);
      this.#batcher.release(rows);
      metrics.pendingEvents.set(this.#batcher.pending);
      this.#committer.schedule();
    });
  }
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
