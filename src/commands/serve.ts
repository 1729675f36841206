import type { Config } from '../config/options.js';
import { connect } from './connect.js';
import { StreamscoreError } from '../errors.js';
import type { ExecutionProvider } from '../inference/runner.js';
import { LiveModels, ModelUnavailableError, type Routing } from '../models/live.js';
import { ModelRepository } from '../models/repository.js';
import { readRouting } from '../models/routing.js';
import { ModelWatcher } from '../models/watcher.js';
import { ServePipeline } from '../pipeline/serve.js';
import { openProducer } from '../kafka/producer-thread.js';
import { startTelemetryServer } from '../telemetry/http.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { createRegistry, createServeMetrics, type ServeMetrics } from '../telemetry/metrics.js';

/** `streamscore serve`: runs until SIGTERM/SIGINT or a fatal error; resolves to the exit code. */
export async function serve(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const promRegistry = createRegistry();
  const metrics = createServeMetrics(promRegistry);

  let pipeline: ServePipeline | undefined;
  const live = new LiveModels({
    repository: new ModelRepository(config.modelsDir),
    model: config.model,
    runner: {
      executionProvider: config.executionProvider as ExecutionProvider,
      threads: config.inferenceThreads,
      worker: config.inferenceWorker,
    },
    logger,
    events: modelEvents(config.model, logger, metrics, (routing) => pipeline?.routingChanged(routing)),
  });
  try {
    await live.apply(await readRouting(config));
  } catch (error) {
    if (error instanceof ModelUnavailableError) throw new StreamscoreError('MODEL_INVALID', error.message);
    throw error;
  }
  const watcher = new ModelWatcher({
    live,
    readSpec: () => readRouting(config),
    routingFile: config.routingFile,
    intervalMs: config.reloadIntervalMs,
    logger,
  });
  // Model reloads do not depend on Kafka: they start with the first routing, before the group join.
  await watcher.start();

  const telemetry = await startTelemetryServer(
    promRegistry,
    { healthy: () => pipeline?.healthy() ?? true, ready: () => pipeline?.ready() ?? false },
    { port: config.metricsPort, host: config.metricsHost, logger },
  );
  logger.info({ port: telemetry.port }, `metrics on http://127.0.0.1:${telemetry.port}/metrics`);

  try {
    const { kafka, registry, schemaIds } = await connect(
      config,
      logger,
      [config.requestsTopic, config.predictionsTopic, config.deadLetterTopic, config.shadowTopic],
      { [config.predictionsTopic]: 'prediction.avsc', [config.shadowTopic]: 'shadow-prediction.avsc' },
    );
    const predictionSchemaId = schemaIds.get(config.predictionsTopic)!;
    const shadowSchemaId = schemaIds.get(config.shadowTopic)!;
    const active = new ServePipeline({
      settings: config,
      kafka,
      registry,
      predictionSchemaId,
      shadowSchemaId,
      live,
      logger,
      metrics,
      producer: openProducer(kafka, config),
    });
    pipeline = active;

    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now; uncommitted records will be read again');
        process.exit(1);
      }
      logger.info({ signal }, 'shutting down');
      const timer = setTimeout(() => {
        logger.error(
          { timeoutMs: config.shutdownTimeoutMs },
          'shutdown took too long; exiting without a final commit',
        );
        process.exit(1);
      }, config.shutdownTimeoutMs);
      timer.unref();
      void active.stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);

    await active.start();
    const fatal = await active.done;
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    return fatal === undefined ? 0 : 1;
  } finally {
    await watcher.stop();
    await telemetry.close();
    await live.close();
    logger.flush();
  }
}

/** Loads, refusals and switches: one log line and a metric each. */
function modelEvents(
  model: string,
  logger: Logger,
  metrics: ServeMetrics,
  onSwitch: (routing: Routing) => void,
) {
  return {
    loaded(version: string, seconds: number) {
      metrics.modelLoads.inc({ model, version, result: 'ok', reason: 'none' });
      metrics.modelLoadSeconds.observe({ model }, seconds);
      logger.info(
        { model, version, seconds: Number(seconds.toFixed(3)) },
        `model ${model}/${version} loaded and validated`,
      );
    },
    refused(version: string, reason: string, message: string) {
      metrics.modelLoads.inc({ model, version, result: 'refused', reason });
      logger.error({ model, version, reason }, `model ${model}/${version} refused (${reason}): ${message}`);
    },
    switched(routing: Routing, previous: Routing | undefined) {
      metrics.modelInfo.reset();
      const describe = (r: Routing) => ({
        primary: r.primary.metadata.version,
        canary:
          r.canary === undefined
            ? null
            : { version: r.canary.runner.metadata.version, share: r.canary.share },
        shadows: r.shadows.map((s) => s.metadata.version),
      });
      const set = (runner: Routing['primary'], route: string) =>
        metrics.modelInfo.set(
          { model, version: runner.metadata.version, route, sha256: runner.metadata.sha256 },
          1,
        );
      set(routing.primary, 'primary');
      if (routing.canary !== undefined) set(routing.canary.runner, 'canary');
      for (const shadow of routing.shadows) set(shadow, 'shadow');
      logger.info(
        { model, routing: describe(routing), previous: previous === undefined ? null : describe(previous) },
        'routing live',
      );
      onSwitch(routing);
    },
  };
}
