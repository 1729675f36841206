import type { Config } from '../config/options.js';
import { StreamscoreError } from '../errors.js';
import { assertProviderAvailable } from '../inference/runner.js';
import { createKafka } from '../kafka/client.js';
import { groupConsumers } from '../kafka/group-consumers.js';
import { openProducer, openTransactionalProducer } from '../kafka/producer-thread.js';
import { LiveModels, ModelUnavailableError, type Routing } from '../models/live.js';
import { ModelRepository } from '../models/repository.js';
import { readRouting } from '../models/routing.js';
import { ModelWatcher } from '../models/watcher.js';
import { ServePipeline } from '../pipeline/serve.js';
import { startTelemetryServer, telemetryAccess } from '../telemetry/http.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { createRegistry, createServeMetrics, type ServeMetrics } from '../telemetry/metrics.js';
import { connect } from './connect.js';
import { TopicRouting } from './serve-routing.js';
import { Shutdown } from './shutdown.js';

/**
 * `streamscore serve`: runs until SIGTERM/SIGINT or a fatal error; resolves to the exit code. A
 * signal at any point, start-up included, stops cleanly with status 0.
 */
export async function serve(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const shutdown = new Shutdown(logger, config.shutdownTimeoutMs);
  const promRegistry = createRegistry();
  const metrics = createServeMetrics(promRegistry);
  const executionProvider = config.executionProvider;
  assertProviderAvailable(executionProvider);

  let pipeline: ServePipeline | undefined;
  const live = new LiveModels({
    repository: ModelRepository.of(config),
    model: config.model,
    runner: {
      executionProvider,
      threads: config.inferenceThreads,
      worker: config.inferenceWorker,
    },
    logger,
    events: modelEvents(config.model, logger, metrics, (routing) => pipeline?.routingChanged(routing)),
  });
  const topicRouting =
    config.routingSource === 'topic' ? new TopicRouting({ config, live, logger, metrics }) : undefined;
  const watcher = new ModelWatcher({
    live,
    readSpec: () => topicRouting?.spec() ?? readRouting(config),
    ...(topicRouting === undefined ? {} : { apply: () => topicRouting.apply() }),
    routingFile: topicRouting === undefined ? config.routingFile : '',
    intervalMs: config.reloadIntervalMs,
    logger,
  });
  let telemetry: Awaited<ReturnType<typeof startTelemetryServer>> | undefined;
  try {
    try {
      if (topicRouting === undefined) await live.apply(await readRouting(config));
      else if ((await shutdown.race(topicRouting.start().then(() => true))) === undefined) return 0;
    } catch (error) {
      if (error instanceof ModelUnavailableError) throw new StreamscoreError('MODEL_INVALID', error.message);
      throw error;
    }
    // Model reloads do not depend on Kafka: they start with the first routing, before the group join.
    await watcher.start();
    telemetry = await startTelemetryServer(
      promRegistry,
      { healthy: () => pipeline?.healthy() ?? true, ready: () => pipeline?.ready() ?? false },
      { port: config.metricsPort, host: config.metricsHost, logger, access: telemetryAccess(config) },
    );
    logger.info(
      { port: telemetry.port, address: telemetry.address },
      `metrics on ${telemetry.url}/metrics (also /healthz, /readyz)`,
    );
    if (shutdown.isRequested) return 0;

    const topics = [
      config.requestsTopic,
      config.predictionsTopic,
      config.deadLetterTopic,
      config.shadowTopic,
    ];
    const connected = await shutdown.race(
      connect(config, logger, topics, {
        [config.predictionsTopic]: 'prediction.avsc',
        [config.shadowTopic]: 'shadow-prediction.avsc',
      }),
    );
    if (connected === undefined) return 0;
    const active = new ServePipeline({
      settings: config,
      // The consumer's own client, which waits out a broker outage instead of giving up.
      openConsumer: groupConsumers(config, createKafka(config, logger, { patient: true }), logger),
      schemas: connected.schemas,
      predictionSchemaId: connected.schemaIds.get(config.predictionsTopic)!,
      shadowSchemaId: connected.schemaIds.get(config.shadowTopic)!,
      recordLimits: connected.recordLimits,
      live,
      logger,
      metrics,
      producer: openProducer(connected.kafka, config),
      transactional: openTransactionalProducer(config),
    });
    pipeline = active;
    shutdown.onRequest(() => void active.stop());
    await active.start();
    const fatal = await active.done;
    return fatal === undefined ? 0 : 1;
  } finally {
    shutdown.dispose();
    await watcher.stop();
    await topicRouting?.stop();
    await telemetry?.close();
    await live.close();
    logger.flush();
  }
}

/** Loads, refusals and switches: one log line and a metric each. */
export function modelEvents(
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
    restarted(version: string) {
      metrics.inferenceRestarts.inc({ model, version });
      logger.warn(
        { model, version },
        `model ${model}/${version}: its inference worker died and was started again`,
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
