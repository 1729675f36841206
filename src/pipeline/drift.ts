/**
 * The drift monitor, wired: consume (four topics) -> decode -> DriftMonitor -> reports -> publish.
 *
 *   DriftReader (drift-reader.ts)      record -> monitor input, or a counted skip; waits out the registry
 *   DriftMonitor (drift/monitor.ts)    windows per model version, joined by request id
 *   a window timer                     closes windows of quiet versions on time
 *
 * The consumer reads in its own group, co-partitioned, so replicas split the partitions and each
 * sees every record of its entities. Offsets are committed after the reports of the records before
 * them were written; a record given up while waiting for the registry is read again by whoever owns
 * its partition next.
 */
import { CompressionTypes, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs';
import type { RecordEncoder } from '../codec/predictions.js';
import type { SchemaSource } from '../codec/schemas.js';
import type { Config } from '../config/options.js';
import { recordReport, type DriftMetrics } from '../drift/metrics.js';
import type { DriftMonitor } from '../drift/monitor.js';
import { summarize, type DriftReport } from '../drift/report.js';
import { StatusTracker } from '../drift/status.js';
import { describeError } from '../errors.js';
import { CoPartitionAssigner } from '../kafka/copartition.js';
import type { Logger } from '../telemetry/logger.js';
import { DriftReader } from './drift-reader.js';

/** How often windows are checked for their time limit. */
const TICK_MS = 1_000;

export type DriftSettings = Pick<
  Config,
  | 'requestsTopic'
  | 'predictionsTopic'
  | 'shadowTopic'
  | 'outcomesTopic'
  | 'driftTopic'
  | 'driftGroupId'
  | 'fromBeginning'
  | 'maxValueBytes'
  | 'maxFeatures'
  | 'model'
>;

export interface DriftDeps {
  settings: DriftSettings;
  kafka: Kafka;
  schemas: SchemaSource;
  monitor: DriftMonitor;
  metrics: DriftMetrics;
  logger: Logger;
  /** Encodes reports with the drift topic's registered schema. */
  reportEncoder: RecordEncoder<DriftReport>;
}

export class DriftPipeline {
  readonly #deps: DriftDeps;
  readonly #log: Logger;
  readonly #topics: string[];
  readonly #reader: DriftReader;
  readonly #producer: Producer;
  readonly #consumer: Consumer;
  readonly #tracker = new StatusTracker();
  /** Reports go out one send after another, from the consumer and from the window timer alike. */
  #publishing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #joined = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #fatal: unknown;
  #resolveDone!: (error: unknown) => void;
  /** Settles when the pipeline stopped: with the fatal error that stopped it, or undefined. */
  readonly done: Promise<unknown> = new Promise((resolve) => (this.#resolveDone = resolve));

  constructor(deps: DriftDeps) {
    this.#deps = deps;
    const { settings, kafka } = deps;
    this.#log = deps.logger;
    this.#topics = [
      settings.requestsTopic,
      settings.predictionsTopic,
      settings.shadowTopic,
      settings.outcomesTopic,
    ];
    this.#reader = new DriftReader({
      topics: {
        requests: settings.requestsTopic,
        predictions: settings.predictionsTopic,
        shadow: settings.shadowTopic,
        outcomes: settings.outcomesTopic,
      },
      schemas: deps.schemas,
      limits: { maxValueBytes: settings.maxValueBytes, maxFeatures: settings.maxFeatures },
      monitor: deps.monitor,
      logger: this.#log,
      onFatal: (error) => this.#fail(error),
    });
    this.#producer = kafka.producer({ allowAutoTopicCreation: false });
    this.#consumer = kafka.consumer({
      groupId: settings.driftGroupId,
      partitionAssigners: [CoPartitionAssigner],
      maxWaitTimeInMs: 250,
    });
    const { events } = this.#consumer;
    this.#consumer.on(events.GROUP_JOIN, ({ payload }) => {
      this.#joined = true;
      this.#log.info(
        { groupId: payload.groupId, assignment: payload.memberAssignment },
        'drift monitor joined its group',
      );
    });
    this.#consumer.on(events.CRASH, ({ payload }) => {
      if (!payload.restart) this.#fail(payload.error);
    });
  }

  /** Group joined, the registry answering, not stopping. */
  ready(): boolean {
    return this.#joined && !this.#stopping && !this.#reader.waiting;
  }

  healthy(): boolean {
    return this.#fatal === undefined;
  }

  /** Connects and joins the group; returns early (without error) when stop() was called meanwhile. */
  async start(): Promise<void> {
    const { settings } = this.#deps;
    try {
      await this.#deps.reportEncoder.prepare();
      await this.#producer.connect();
      if (this.#stopping) return;
      await this.#consumer.connect();
      await this.#consumer.subscribe({ topics: this.#topics, fromBeginning: settings.fromBeginning });
      if (this.#stopping) return;
      await this.#consumer.run({
        // Offsets are resolved one record at a time: a record given up must not be committed.
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.#handle(payload),
      });
    } catch (error) {
      if (this.#stopping) return;
      throw error;
    }
    if (this.#stopping) return;
    this.#timer = setInterval(() => {
      this.#publish(this.#deps.monitor.tick()).catch((error: unknown) => this.#fail(error));
    }, TICK_MS);
    this.#log.info(
      { topics: this.#topics, groupId: settings.driftGroupId, model: settings.model },
      'drift monitor running',
    );
  }

  /** Leaves the group, then writes the open windows (however small). Never rejects. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop().catch((error: unknown) =>
      this.#log.error({ err: error }, `stopping failed: ${describeError(error)}`),
    );
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#timer);
    this.#log.info('stopping: writing the open windows');
    try {
      await this.#consumer
        .disconnect()
        .catch((error: unknown) => this.#log.warn({ err: error }, 'consumer disconnect'));
      await this.#publish(this.#deps.monitor.flush()).catch((error: unknown) =>
        this.#log.error({ err: error }, 'last reports not written'),
      );
      await this.#producer.disconnect().catch(() => undefined);
    } finally {
      this.#resolveDone(this.#fatal);
    }
  }

  async #handle(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const live = () => !this.#stopping && payload.isRunning() && !payload.isStale();
    const heartbeat = () => payload.heartbeat();
    const reports: DriftReport[] = [];
    let last: string | undefined;
    let read = 0;
    for (const message of batch.messages) {
      if (!live()) break;
      const closed = await this.#reader.read({ topic: batch.topic, value: message.value, heartbeat, live });
      if (closed === undefined) break;
      reports.push(...closed);
      last = message.offset;
      read += 1;
    }
    await this.#publish(reports);
    if (last !== undefined) payload.resolveOffset(last);
    this.#deps.metrics.recordsRead.inc({ topic: batch.topic }, read);
    if (live()) await payload.heartbeat();
  }

  #publish(reports: DriftReport[]): Promise<void> {
    if (reports.length === 0) return this.#publishing;
    const { settings, reportEncoder, metrics } = this.#deps;
    this.#publishing = this.#publishing.then(async () => {
      const messages = [];
      for (const report of reports) {
        messages.push({ key: report.model_name, value: await reportEncoder.encode(report) });
        recordReport(metrics, report);
        this.#logTransition(report);
      }
      await this.#producer.send({
        topic: settings.driftTopic,
        messages,
        acks: -1,
        compression: CompressionTypes.None,
      });
    });
    return this.#publishing;
  }

  #fail(error: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = error ?? new Error('unknown failure');
    this.#log.fatal({ err: error }, `drift monitor failed: ${describeError(error)}`);
    void this.stop();
  }

  /** One log line when a version's drift status changes, none while it stays the same. */
  #logTransition(report: DriftReport): void {
    const transition = this.#tracker.observe(summarize(report));
    if (transition === undefined) return;
    const flagged = transition.flagged.map((f) => `${f.subject} ${f.status}`).join(', ');
    const level = transition.to === 'alert' ? 'error' : transition.to === 'warn' ? 'warn' : 'info';
    this.#log[level](
      {
        model: transition.model,
        version: transition.version,
        from: transition.from,
        to: transition.to,
        changes: transition.changes,
      },
      `drift status of ${transition.model}/${transition.version}: ${transition.from} -> ${transition.to}${flagged ? ` (${flagged})` : ''}`,
    );
  }
}
