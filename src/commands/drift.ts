import { join } from 'node:path';
import { CompressionTypes } from 'kafkajs';
import type { Config } from '../config/options.js';
import { RecordEncoder } from '../codec/predictions.js';
import { RecordDecoder } from '../codec/records.js';
import { connect } from './connect.js';
import { createDriftMetrics, recordReport } from '../drift/metrics.js';
import { DriftMonitor } from '../drift/monitor.js';
import { readReference } from '../drift/reference.js';
import { summarize, type DriftReport } from '../drift/report.js';
import { DEFAULT_THRESHOLDS, StatusTracker, checkThresholds } from '../drift/status.js';
import { versionProfile, type VersionProfile } from '../drift/window.js';
import { StreamscoreError, describeError } from '../errors.js';
import { CoPartitionAssigner } from '../kafka/copartition.js';
import { ModelRepository } from '../models/repository.js';
import { startTelemetryServer } from '../telemetry/http.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { createRegistry } from '../telemetry/metrics.js';

/** How often windows are checked for their time limit. */
const TICK_MS = 1_000;

/**
 * `streamscore drift`: reads the requests, predictions and shadow-predictions topics in its own
 * consumer group (co-partitioned, so replicas split the partitions and each sees every record of
 * its entities), and writes one DriftReport per window and model version.
 */
export async function drift(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const promRegistry = createRegistry();
  const metrics = createDriftMetrics(promRegistry);
  let thresholds;
  try {
    thresholds = checkThresholds({
      ...DEFAULT_THRESHOLDS,
      psiWarn: config.driftPsiWarn,
      psiAlert: config.driftPsiAlert,
      pValue: config.driftPValue,
      agreementWarn: config.driftAgreementWarn,
      agreementAlert: config.driftAgreementAlert,
    });
  } catch (error) {
    throw new StreamscoreError('CONFIG_INVALID', describeError(error), { cause: error });
  }
  const monitor = new DriftMonitor({
    profiles: await loadProfiles(config, logger),
    thresholds,
    window: { maxEvents: config.driftWindowEvents, maxDurationMs: config.driftWindowMs },
    join: { ttlMs: config.driftJoinMs, maxEntries: 100_000 },
    onSkip: (reason) => metrics.skipped.inc({ reason }),
    onMissingReference: (model, version) =>
      logger.warn(
        { model, version },
        `model ${model}/${version} has no reference profile (reference.json); its records are skipped`,
      ),
  });
  const tracker = new StatusTracker();

  let joined = false;
  let failed = false;
  const telemetry = await startTelemetryServer(
    promRegistry,
    { healthy: () => !failed, ready: () => joined },
    { port: config.driftMetricsPort, host: config.metricsHost, logger },
  );
  logger.info({ port: telemetry.port }, `drift metrics on http://127.0.0.1:${telemetry.port}/metrics`);

  const topics = [config.requestsTopic, config.predictionsTopic, config.shadowTopic];
  const { kafka, schemas, schemaIds } = await connect(config, logger, [...topics, config.driftTopic], {
    [config.driftTopic]: 'drift-report.avsc',
  });
  const reportEncoder = new RecordEncoder<DriftReport>(schemas, schemaIds.get(config.driftTopic)!);
  const records = new RecordDecoder(schemas, config.maxValueBytes);

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  // Reports go out one send after another, from the consumer and from the window timer alike.
  let publishing: Promise<void> = Promise.resolve();
  const publish = (reports: DriftReport[]): Promise<void> => {
    if (reports.length === 0) return publishing;
    publishing = publishing.then(async () => {
      const messages = [];
      for (const report of reports) {
        messages.push({ key: report.model_name, value: await reportEncoder.encode(report) });
        recordReport(metrics, report);
        logTransition(logger, tracker, report);
      }
      await producer.send({
        topic: config.driftTopic,
        messages,
        acks: -1,
        compression: CompressionTypes.None,
      });
    });
    return publishing;
  };

  const consumer = kafka.consumer({
    groupId: config.driftGroupId,
    partitionAssigners: [CoPartitionAssigner],
    maxWaitTimeInMs: 250,
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    joined = true;
    logger.info(
      { groupId: payload.groupId, assignment: payload.memberAssignment },
      'drift monitor joined its group',
    );
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: config.fromBeginning });
  await consumer.run({
    eachBatch: async (payload) => {
      const { batch } = payload;
      const reports: DriftReport[] = [];
      for (const message of batch.messages) {
        const decoded = await records.decode(message.value);
        if (!decoded.ok) {
          monitor.recordSkip('UNDECODABLE', { message: `${batch.topic}: ${decoded.message}` });
          continue;
        }
        reports.push(...dispatch(monitor, config, batch.topic, decoded.record));
      }
      await publish(reports);
      metrics.recordsRead.inc({ topic: batch.topic }, batch.messages.length);
      await payload.heartbeat();
    },
  });

  const timer = setInterval(() => {
    publish(monitor.tick()).catch((error: unknown) => fail(error));
  }, TICK_MS);

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    await consumer.disconnect().catch((error: unknown) => logger.warn({ err: error }, 'consumer disconnect'));
    await publish(monitor.flush()).catch((error: unknown) =>
      logger.error({ err: error }, 'last reports not written'),
    );
    await producer.disconnect().catch(() => undefined);
    await telemetry.close();
    resolveDone(code);
  };
  const fail = (error: unknown) => {
    failed = true;
    logger.fatal({ err: error }, `drift monitor failed: ${describeError(error)}`);
    void stop(1);
  };
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) fail(payload.error);
  });
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'shutting down: writing the open windows');
    void stop(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  logger.info({ topics, groupId: config.driftGroupId, model: config.model }, 'drift monitor running');
  const code = await done;
  logger.flush();
  return code;
}

/** Hands one decoded record to the monitor by the topic it came from. */
function dispatch(monitor: DriftMonitor, config: Config, topic: string, record: unknown): DriftReport[] {
  const fields = typeof record === 'object' && record !== null ? (record as Record<string, unknown>) : {};
  if (typeof fields.request_id !== 'string') {
    monitor.recordSkip('UNDECODABLE', { message: `${topic}: not a streamscore record (no request_id)` });
    return [];
  }
  if (topic === config.requestsTopic) {
    if (typeof fields.features !== 'object' || fields.features === null) {
      monitor.recordSkip('UNDECODABLE', { message: `${topic}: no features map` });
      return [];
    }
    return monitor.onRequest(record as Parameters<DriftMonitor['onRequest']>[0]);
  }
  const prediction = typeof fields.model_version === 'string' && typeof fields.outputs === 'object';
  if (topic === config.predictionsTopic && prediction) {
    return monitor.onPrediction(record as Parameters<DriftMonitor['onPrediction']>[0]);
  }
  if (topic === config.shadowTopic && prediction && typeof fields.served_version === 'string') {
    return monitor.onShadow(record as Parameters<DriftMonitor['onShadow']>[0]);
  }
  monitor.recordSkip('UNDECODABLE', { message: `${topic}: not a Prediction or ShadowPrediction record` });
  return [];
}

/** Reference profiles of every version of the model on disk; a version without one is said once. */
async function loadProfiles(config: Config, logger: Logger): Promise<VersionProfile[]> {
  const repository = new ModelRepository(config.modelsDir);
  const profiles: VersionProfile[] = [];
  for (const version of await repository.listVersions(config.model)) {
    try {
      const { metadata } = await repository.load(config.model, version);
      const reference = await readReference(join(repository.root, config.model, version, 'reference.json'), {
        name: config.model,
        version,
      });
      profiles.push(versionProfile(reference, metadata.threshold));
    } catch (error) {
      logger.warn(
        { model: config.model, version },
        `model ${config.model}/${version}: no usable reference profile, its drift is not monitored: ${describeError(error)}`,
      );
    }
  }
  if (profiles.length === 0) {
    throw new StreamscoreError(
      'MODEL_INVALID',
      `No version of model "${config.model}" under ${repository.root} has a reference profile (reference.json)`,
    );
  }
  logger.info(
    { model: config.model, versions: profiles.map((p) => p.reference.version) },
    'reference profiles loaded',
  );
  return profiles;
}

/** One log line when a version's drift status changes, none while it stays the same. */
function logTransition(logger: Logger, tracker: StatusTracker, report: DriftReport): void {
  const transition = tracker.observe(summarize(report));
  if (transition === undefined) return;
  const flagged = transition.flagged.map((f) => `${f.subject} ${f.status}`).join(', ');
  const level = transition.to === 'alert' ? 'error' : transition.to === 'warn' ? 'warn' : 'info';
  logger[level](
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
