import type { Admin } from 'kafkajs';
import { writeFile } from 'node:fs/promises';
import { ReplayComparison, type ComparisonReport } from '../backfill/compare.js';
import {
  JobBounds,
  defaultJobName,
  checkJobName,
  jobGroupId,
  jobState,
  totals,
  type CommittedOffset,
  type JobTotals,
} from '../backfill/job.js';
import { progressView } from '../backfill/progress.js';
import { parseRange, rangeSize, resolveRange, type RangeFlags } from '../backfill/range.js';
import type { Prediction } from '../codec/predictions.js';
import { RecordDecoder } from '../codec/records.js';
import type { Config } from '../config/options.js';
import { StreamscoreError, describeError, isStreamscoreError } from '../errors.js';
import { assertProviderAvailable } from '../inference/runner.js';
import { connectAdmin, createKafka } from '../kafka/client.js';
import { groupConsumers } from '../kafka/group-consumers.js';
import { readToEnd } from '../kafka/read-to-end.js';
import { StableOffsetReader } from '../kafka/stable-offsets.js';
import type { PartitionRange } from '../kafka/offsets.js';
import { openProducer, openTransactionalProducer } from '../kafka/producer-thread.js';
import { LiveModels, ModelUnavailableError } from '../models/live.js';
import { ModelRepository } from '../models/repository.js';
import { ServePipeline } from '../pipeline/serve.js';
import { startTelemetryServer, telemetryAccess } from '../telemetry/http.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { createRegistry, createServeMetrics, type ServeMetrics } from '../telemetry/metrics.js';
import { Backoff } from '../timers.js';
import { connect } from './connect.js';
import { modelEvents } from './serve.js';
import { Shutdown } from './shutdown.js';

export interface BackfillOptions {
  /** Topic of FeatureEvent records to replay. */
  topic: string;
  /** Model version to score with ('latest': the highest on disk when the job starts). */
  version: string;
  /** Topic the Prediction records go to. */
  output: string;
  /** The job's dead-letter topic (default: the output topic's name + `.dlq`). */
  deadLetterTopic: string | undefined;
  job: string | undefined;
  range: RangeFlags;
  /** A predictions topic serve wrote over the same range, to compare with. */
  compareWith: string | undefined;
  /** Where the comparison report is written (default `<job>.compare.json`). */
  report: string | undefined;
  /** Events compared at most; past that, a deterministic sample of request ids. */
  compareMaxEvents: number;
  /** Progress as a bar (a terminal) or as JSON lines. */
  terminal: boolean;
}

/** Between reads of the job's committed positions (progress, and whether the whole job is done), ms. */
const STATE_POLL_MS = 2_000;

/**
 * `streamscore backfill`: replays a fixed range of a topic through one model version, on serve's
 * own stages, into an output topic; resumable and shareable through the job's consumer group.
 * Resolves to the exit code: 0 when every partition this process held reached its end, 1 when it
 * stopped before (a signal, a fatal error); bad arguments throw before anything is written.
 */
export async function backfill(config: Config, options: BackfillOptions): Promise<number> {
  const logger = createLogger(config.logLevel, options.terminal ? 'stderr' : 'stdout');
  const spec = parseRange(options.range);
  if (options.output === options.topic)
    throw new StreamscoreError('USAGE', `--output must not be the topic read (${options.topic})`);
  const deadLetterTopic = options.deadLetterTopic ?? `${options.output}.dlq`;
  const repository = ModelRepository.of(config);
  const version = await versionOnDisk(repository, config.model, options.version);
  const job = checkJobName(
    options.job ??
      defaultJobName({
        topic: options.topic,
        model: config.model,
        version,
        output: options.output,
        range: [options.range.from, options.range.to, options.range.fromOffsets, options.range.toOffsets],
      }),
  );
  const groupId = jobGroupId(job);
  const executionProvider = config.executionProvider;
  assertProviderAvailable(executionProvider);
  const shutdown = new Shutdown(logger, config.shutdownTimeoutMs);
  const promRegistry = createRegistry();
  const metrics = createServeMetrics(promRegistry);
  const live = new LiveModels({
    repository,
    model: config.model,
    runner: { executionProvider, threads: config.inferenceThreads, worker: config.inferenceWorker },
    logger,
    events: modelEvents(config.model, logger, metrics, () => undefined),
  });
  let admin: Admin | undefined;
  let stable: StableOffsetReader | undefined;
  let telemetry: Awaited<ReturnType<typeof metricsServer>> | undefined;
  try {
    const loaded = await live.apply({ primary: version, shadows: [] }).catch((error: unknown) => {
      if (error instanceof ModelUnavailableError) throw new StreamscoreError('MODEL_INVALID', error.message);
      throw error;
    });
    const threshold = loaded.primary.metadata.threshold ?? 0.5;
    admin = await connectAdmin(createKafka(config, logger), config);
    const planned = await planRange(admin, options.topic, spec);
    // Exactly-once: progress is read once no transaction commits it (a run killed mid-commit).
    if (config.delivery === 'exactly-once') stable = new StableOffsetReader(config);
    const readCommitted = committedReader(admin, groupId, options.topic, stable);
    const committedAtStart = await readCommitted();
    const before = totals(jobState(job, planned, committedAtStart));
    logger.info(
      {
        job,
        groupId,
        topic: options.topic,
        output: options.output,
        deadLetterTopic,
        model: config.model,
        version,
        partitions: before.partitions,
        events: Number(before.total),
        alreadyDone: Number(before.done),
      },
      before.complete
        ? 'backfill already complete'
        : before.done > 0n
          ? 'backfill resuming'
          : 'backfill starting',
    );
    if (shutdown.isRequested) return 1;

    const connected = await shutdown.race(
      connect(config, logger, [options.output, deadLetterTopic], { [options.output]: 'prediction.avsc' }),
    );
    if (connected === undefined) return 1;
    const started = performance.now();
    let outcome: 'mine' | 'complete' | 'stopped' = 'complete';
    let failed = false;
    if (!before.complete) {
      const server = await metricsServer(config, logger, promRegistry);
      telemetry = server;
      const bounds = new JobBounds(job, planned, readCommitted, committedAtStart);
      const schemaId = connected.schemaIds.get(options.output)!;
      const pipeline = new ServePipeline({
        settings: {
          ...config,
          requestsTopic: options.topic,
          predictionsTopic: options.output,
          deadLetterTopic,
          shadowTopic: options.output,
          groupId,
          fromBeginning: true,
        },
        openConsumer: groupConsumers(config, createKafka(config, logger, { patient: true }), logger),
        schemas: connected.schemas,
        predictionSchemaId: schemaId,
        shadowSchemaId: schemaId,
        recordLimits: connected.recordLimits,
        live,
        logger,
        metrics,
        producer: openProducer(connected.kafka, config),
        transactional: openTransactionalProducer(config),
        replay: bounds,
      });
      const probes = server.probes;
      probes.healthy = () => pipeline.healthy();
      probes.ready = () => pipeline.ready();
      shutdown.onRequest(() => void pipeline.stop());
      const view = progressView({ job, logger, terminal: options.terminal });
      const watch = watchJob({ job, planned, readCommitted, metrics, bounds, view, logger });
      try {
        await pipeline.start();
        outcome = await Promise.race([
          bounds.settled.then(() => 'mine' as const),
          watch.complete.then(() => 'complete' as const),
          pipeline.done.then(() => 'stopped' as const),
          shutdown.requested.then(() => 'stopped' as const),
        ]);
      } finally {
        await watch.stop();
        view.stop();
      }
      await pipeline.stop();
      const fatal = await pipeline.done;
      if (fatal !== undefined) {
        outcome = 'stopped';
        failed = true;
      }
    }
    const after = totals(jobState(job, planned, await readCommitted()));
    const seconds = (performance.now() - started) / 1_000;
    const counts = await countsOf(metrics, options.topic);
    const summary = {
      job,
      ...counts,
      seconds: Math.round(seconds * 10) / 10,
      eventsPerSecond: Math.round((counts.scored + counts.deadLettered) / Math.max(seconds, 0.001)),
      partitions: after.partitions,
      finishedPartitions: after.finishedPartitions,
      jobComplete: after.complete,
    };
    // A signal that came as the job ended (say, while its last commit was on its way) stopped
    // nothing: what counts is where the job stands.
    if (outcome === 'stopped' && !(after.complete && !failed)) {
      logger.warn(
        summary,
        `backfill stopped before the end of its range; run it again with --job ${job} to continue`,
      );
      return 1;
    }
    logger.info(
      summary,
      after.complete
        ? 'backfill finished'
        : 'backfill finished its partitions; other processes of the job are still running',
    );
    if (options.compareWith !== undefined) {
      if (!after.complete) {
        logger.warn(
          { job },
          `comparison skipped: the job is not complete yet; run the same command again once it is`,
        );
      } else {
        const report = await compare({
          config,
          connected,
          repository,
          options,
          version,
          threshold,
          after,
          logger,
        });
        const path = options.report ?? `${job}.compare.json`;
        await writeFile(
          path,
          `${JSON.stringify({ job, compareWith: options.compareWith, ...report }, null, 2)}\n`,
        );
        logger.info({ job, report: path, ...summarise(report) }, 'replay comparison');
      }
    }
    return 0;
  } finally {
    shutdown.dispose();
    await admin?.disconnect().catch(() => undefined);
    await stable?.close().catch(() => undefined);
    await telemetry?.close();
    await live.close();
    logger.flush();
  }
}

/** The version asked for, if it is on disk; a clear usage error otherwise (nothing is started). */
async function versionOnDisk(repository: ModelRepository, model: string, asked: string): Promise<string> {
  let versions: string[];
  try {
    versions = await repository.listVersions(model);
  } catch (error) {
    throw new StreamscoreError('USAGE', `--model ${model}: ${describeError(error)}`);
  }
  if (asked === 'latest' && versions.length > 0) return versions[versions.length - 1]!;
  if (!versions.includes(asked)) {
    throw new StreamscoreError(
      'USAGE',
      `--version ${asked}: model ${model} has no such version in ${repository.root}` +
        (versions.length > 0 ? ` (versions: ${versions.join(', ')})` : ' (it has no versions)'),
    );
  }
  return asked;
}

/** The job's ranges, resolved against the topic as it is now. */
async function planRange(
  admin: Admin,
  topic: string,
  spec: ReturnType<typeof parseRange>,
): Promise<Map<number, PartitionRange>> {
  const topics = await admin.listTopics();
  if (!topics.includes(topic)) throw new StreamscoreError('USAGE', `--topic ${topic}: no such topic`);
  const offsets = await admin.fetchTopicOffsets(topic);
  return resolveRange(
    spec,
    offsets.map((p) => ({ partition: p.partition, low: BigInt(p.low), high: BigInt(p.high) })),
    async (ms) =>
      new Map(
        (await admin.fetchTopicOffsetsByTimestamp(topic, ms)).map((p) => [p.partition, BigInt(p.offset)]),
      ),
  );
}

/** Reads the job's committed offsets, trying again through short outages (about 30 s in all). */
function committedReader(
  admin: Admin,
  groupId: string,
  topic: string,
  stable: StableOffsetReader | undefined,
): () => Promise<ReadonlyMap<number, CommittedOffset>> {
  return async () => {
    const backoff = new Backoff();
    for (let attempt = 1; ; attempt += 1) {
      try {
        if (stable !== undefined) return await stable.read(groupId, topic);
        const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
        const result = new Map<number, CommittedOffset>();
        for (const p of entry?.partitions ?? []) {
          const offset = BigInt(p.offset);
          result.set(p.partition, { offset: offset >= 0n ? offset : undefined, metadata: p.metadata });
        }
        return result;
      } catch (error) {
        if (attempt >= 8) {
          throw new StreamscoreError(
            'KAFKA_UNAVAILABLE',
            `Cannot read the committed offsets of ${groupId}: ${describeError(error)}`,
            { cause: error, retriable: true },
          );
        }
        await backoff.wait(Math.min(500 * 2 ** attempt, 8_000));
      }
    }
  };
}

/** The metrics server on the configured port, or on any free one if that one is taken (serve's, say). */
async function metricsServer(
  config: Config,
  logger: Logger,
  registry: ReturnType<typeof createRegistry>,
): Promise<{ close(): Promise<void>; probes: { healthy: () => boolean; ready: () => boolean } }> {
  const probes = { healthy: () => true, ready: () => false };
  const access = telemetryAccess(config);
  const start = (port: number) =>
    startTelemetryServer(
      registry,
      { healthy: () => probes.healthy(), ready: () => probes.ready() },
      { port, host: config.metricsHost, logger, access },
    );
  let server;
  try {
    server = await start(config.metricsPort);
  } catch (error) {
    if (!isStreamscoreError(error) || error.code !== 'METRICS_PORT_UNAVAILABLE' || config.metricsPort === 0)
      throw error;
    logger.warn({ port: config.metricsPort }, `${error.message}; using any free port instead`);
    server = await start(0);
  }
  logger.info({ port: server.port, address: server.address }, `metrics on ${server.url}/metrics`);
  return { close: () => server.close(), probes };
}

/** Progress every second; every STATE_POLL_MS, the job's committed state, which also tells when the whole job is done. */
function watchJob(options: {
  job: string;
  planned: ReadonlyMap<number, PartitionRange>;
  readCommitted: () => Promise<ReadonlyMap<number, CommittedOffset>>;
  metrics: ServeMetrics;
  bounds: JobBounds;
  view: ReturnType<typeof progressView>;
  logger: Logger;
}): { complete: Promise<void>; stop(): Promise<void> } {
  let state: JobTotals | undefined;
  let lastPoll = 0;
  let polling = false;
  let doneHere = 0;
  let markComplete!: () => void;
  const complete = new Promise<void>((resolve) => (markComplete = resolve));
  const total = Number(rangeSize(options.planned.values()));
  const tick = async (force = false) => {
    const counts = await countsOf(options.metrics);
    doneHere = counts.scored + counts.deadLettered;
    if (!polling && (force || performance.now() - lastPoll >= STATE_POLL_MS)) {
      polling = true;
      lastPoll = performance.now();
      try {
        state = totals(jobState(options.job, options.planned, await options.readCommitted()));
        if (state.complete) markComplete();
      } catch (error) {
        options.logger.warn({ err: error }, `backfill progress: ${describeError(error)}`);
      } finally {
        polling = false;
      }
    }
    const mine = options.bounds.progress;
    options.view.update({
      done: Math.max(Number(state?.done ?? 0n), doneHere),
      total: state === undefined ? total : Number(state.total),
      scored: counts.scored,
      deadLettered: counts.deadLettered,
      partitions: state?.partitions ?? options.planned.size,
      finishedPartitions: Math.max(state?.finishedPartitions ?? 0, mine.finished),
    });
  };
  const timer = setInterval(() => void tick(), 1_000);
  void tick();
  return {
    complete,
    /** Stops watching, after one last look at the job (so the bar ends where the job stands). */
    stop: async () => {
      clearInterval(timer);
      await tick(true);
    },
  };
}

async function sum(metric: { get(): Promise<{ values: { value: number; labels: object }[] }> }) {
  return (await metric.get()).values.reduce((total, { value }) => total + value, 0);
}

async function countsOf(
  metrics: ServeMetrics,
  topic?: string,
): Promise<{ read: number; scored: number; deadLettered: number }> {
  const consumed = (await metrics.eventsConsumed.get()).values
    .filter((v) => topic === undefined || v.labels.topic === topic)
    .reduce((total, { value }) => total + value, 0);
  return {
    read: consumed,
    scored: await sum(metrics.predictionsPublished),
    deadLettered: await sum(metrics.deadLetters),
  };
}

/** Reads what the job wrote, then what serve wrote, and compares them. */
async function compare(input: {
  config: Config;
  connected: NonNullable<Awaited<ReturnType<typeof connect>>>;
  repository: ModelRepository;
  options: BackfillOptions;
  version: string;
  threshold: number;
  after: JobTotals;
  logger: Logger;
}): Promise<ComparisonReport> {
  const { config, connected, repository, options, logger } = input;
  const thresholds = new Map<string, number>();
  for (const version of await repository.listVersions(config.model)) {
    const loaded = await repository.load(config.model, version).catch(() => undefined);
    const threshold = loaded?.metadata.threshold;
    if (threshold !== undefined) thresholds.set(version, threshold);
  }
  const events = Math.max(1, Number(input.after.total));
  const comparison = new ReplayComparison({
    model: config.model,
    version: input.version,
    threshold: input.threshold,
    sampleRate: Math.min(1, options.compareMaxEvents / events),
    thresholdOf: (version) => thresholds.get(version),
  });
  const decoder = new RecordDecoder(connected.schemas, config.maxValueBytes);
  let unreadable = 0;
  const reader = (add: (prediction: Prediction) => void) => async (message: { value: Buffer | null }) => {
    const decoded = await decoder.decode(message.value);
    if (!decoded.ok) {
      unreadable += 1;
      return;
    }
    const record = decoded.record as Partial<Prediction>;
    if (typeof record.request_id !== 'string' || typeof record.outputs !== 'object') {
      unreadable += 1;
      return;
    }
    add(record as Prediction);
  };
  logger.info({ topic: options.output }, 'comparison: reading the backfilled predictions');
  await readToEnd(
    connected.kafka,
    options.output,
    reader((p) => comparison.addBackfilled(p)),
  );
  logger.info({ topic: options.compareWith }, 'comparison: reading the served predictions');
  await readToEnd(
    connected.kafka,
    options.compareWith!,
    reader((p) => comparison.addServed(p)),
  );
  if (unreadable > 0)
    logger.warn({ unreadable }, 'comparison: records that are not predictions were skipped');
  return comparison.report();
}

/** The figures of a report worth a log line. */
function summarise(report: ComparisonReport): Record<string, unknown> {
  const served: Record<string, unknown> = {};
  for (const [version, s] of Object.entries(report.served)) {
    served[version] = {
      compared: s.compared,
      agreement: s.agreement,
      meanAbsDiff: s.meanAbsDiff,
      correlation: s.correlation,
      servedOnly: s.servedOnly,
    };
  }
  return {
    sampleRate: report.sampleRate,
    backfilled: report.backfilled,
    backfillOnly: report.backfillOnly,
    served,
  };
}
