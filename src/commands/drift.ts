import { join } from 'node:path';
import type { Config } from '../config/options.js';
import { RecordEncoder } from '../codec/predictions.js';
import { createDriftMetrics } from '../drift/metrics.js';
import { DriftMonitor } from '../drift/monitor.js';
import { readReference } from '../drift/reference.js';
import type { DriftReport } from '../drift/report.js';
import { DEFAULT_THRESHOLDS, checkThresholds, type DriftThresholds } from '../drift/status.js';
import { versionProfile, type VersionProfile } from '../drift/window.js';
import { StreamscoreError, describeError } from '../errors.js';
import { ModelRepository } from '../models/repository.js';
import { DriftPipeline } from '../pipeline/drift.js';
import { startTelemetryServer, telemetryAccess } from '../telemetry/http.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { createRegistry } from '../telemetry/metrics.js';
import { createKafka } from '../kafka/client.js';
import { connect } from './connect.js';
import { Shutdown } from './shutdown.js';

/**
 * `streamscore drift`: reads the requests, predictions, shadow-predictions and outcomes topics in its own
 * consumer group and writes one DriftReport per window and model version (see DriftPipeline). Runs
 * until SIGTERM/SIGINT or a fatal error; resolves to the exit code. A signal at any point, start-up
 * included, stops cleanly with status 0.
 */
export async function drift(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const shutdown = new Shutdown(logger, config.shutdownTimeoutMs);
  const promRegistry = createRegistry();
  const metrics = createDriftMetrics(promRegistry);
  let pipeline: DriftPipeline | undefined;
  let telemetry: Awaited<ReturnType<typeof startTelemetryServer>> | undefined;
  try {
    const thresholds = driftThresholds(config);
    const monitor = new DriftMonitor({
      profiles: await loadProfiles(config, logger),
      thresholds,
      window: { maxEvents: config.driftWindowEvents, maxDurationMs: config.driftWindowMs },
      join: { ttlMs: config.driftJoinMs, maxEntries: 100_000 },
      outcomes: { ttlMs: config.outcomesJoinMs, maxEntries: config.outcomesJoinEntries },
      onSkip: (reason) => metrics.skipped.inc({ reason }),
      onMissingReference: (model, version) =>
        logger.warn(
          { model, version },
          `model ${model}/${version} has no reference profile (reference.json); its records are skipped`,
        ),
    });
    telemetry = await startTelemetryServer(
      promRegistry,
      { healthy: () => pipeline?.healthy() ?? true, ready: () => pipeline?.ready() ?? false },
      { port: config.driftMetricsPort, host: config.metricsHost, logger, access: telemetryAccess(config) },
    );
    logger.info(
      { port: telemetry.port, address: telemetry.address },
      `drift metrics on ${telemetry.url}/metrics`,
    );
    if (shutdown.isRequested) return 0;

    const topics = [
      config.requestsTopic,
      config.predictionsTopic,
      config.shadowTopic,
      config.outcomesTopic,
      config.driftTopic,
    ];
    const connected = await shutdown.race(
      connect(config, logger, topics, { [config.driftTopic]: 'drift-report.avsc' }),
    );
    if (connected === undefined) return 0;
    const active = new DriftPipeline({
      settings: config,
      // A client that waits out a broker outage, as serve's consumer does, rather than restarting
      // and rejoining its group as a new member.
      kafka: createKafka(config, logger, { patient: true }),
      schemas: connected.schemas,
      monitor,
      metrics,
      logger,
      reportEncoder: new RecordEncoder<DriftReport>(
        connected.schemas,
        connected.schemaIds.get(config.driftTopic)!,
      ),
    });
    pipeline = active;
    shutdown.onRequest(() => void active.stop());
    await active.start();
    const fatal = await active.done;
    return fatal === undefined ? 0 : 1;
  } finally {
    shutdown.dispose();
    await telemetry?.close();
    logger.flush();
  }
}

function driftThresholds(config: Config): DriftThresholds {
  try {
    return checkThresholds({
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
}

/** Reference profiles of every version of the model on disk; a version without one is said once. */
async function loadProfiles(config: Config, logger: Logger): Promise<VersionProfile[]> {
  const repository = ModelRepository.of(config);
  const profiles: VersionProfile[] = [];
  for (const version of await repository.listVersions(config.model)) {
    try {
      const { metadata } = await repository.load(config.model, version);
      const reference = await readReference(join(repository.root, config.model, version, 'reference.json'), {
        name: config.model,
        version,
      });
      const profile = versionProfile(reference, metadata.threshold, metadata.drift?.roles);
      logger.info(
        {
          model: config.model,
          version,
          roles: Object.fromEntries([...profile.roles].map(([name, choice]) => [name, choice.role])),
        },
        `drift roles of ${config.model}/${version}: ${[...profile.roles]
          .map(([name, choice]) => `${name} ${choice.role}`)
          .join(', ')}`,
      );
      profiles.push(profile);
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
