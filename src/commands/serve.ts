import {
  readSchemaFile,
  registerValueSchema,
  createRegistry as createSchemaRegistry,
} from '../codec/registry.js';
import type { Config } from '../config/options.js';
import { ModelRunner } from '../inference/runner.js';
import { connectAdmin, createKafka, ensureTopics } from '../kafka/client.js';
import { ModelRepository } from '../models/repository.js';
import { ServePipeline } from '../pipeline/serve.js';
import { startTelemetryServer } from '../telemetry/http.js';
import { createLogger } from '../telemetry/logger.js';
import { createRegistry, createServeMetrics } from '../telemetry/metrics.js';

/** `streamscore serve`: runs until SIGTERM/SIGINT or a fatal error; resolves to the exit code. */
export async function serve(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const promRegistry = createRegistry();
  const metrics = createServeMetrics(promRegistry);

  const repository = new ModelRepository(config.modelsDir);
  const version = await repository.resolveVersion(config.model, config.modelVersion);
  const runner = await ModelRunner.load(await repository.load(config.model, version), {
    executionProvider: config.executionProvider as 'cpu' | 'cuda',
    threads: config.inferenceThreads,
  });
  logger.info(
    {
      model: config.model,
      version,
      provider: config.executionProvider,
      features: runner.featureNames.length,
    },
    'model loaded',
  );

  let pipeline: ServePipeline | undefined;
  const telemetry = await startTelemetryServer(
    promRegistry,
    { healthy: () => pipeline?.healthy() ?? true, ready: () => pipeline?.ready() ?? false },
    { port: config.metricsPort, host: config.metricsHost, logger },
  );
  logger.info({ port: telemetry.port }, `metrics on http://127.0.0.1:${telemetry.port}/metrics`);

  try {
    const kafka = createKafka(config, logger);
    const admin = await connectAdmin(kafka, config);
    try {
      if (config.createTopics) {
        const created = await ensureTopics(
          admin,
          [config.requestsTopic, config.predictionsTopic, config.deadLetterTopic],
          config.topicPartitions,
        );
        if (created.length > 0) logger.info({ topics: created }, 'created topics');
      }
    } finally {
      await admin.disconnect();
    }
    const registryOptions = {
      url: config.schemaRegistryUrl,
      username: config.schemaRegistryUsername,
      password: config.schemaRegistryPassword,
    };
    const registry = createSchemaRegistry(registryOptions);
    const predictionSchemaId = await registerValueSchema(
      registry,
      registryOptions,
      config.predictionsTopic,
      await readSchemaFile('prediction.avsc'),
    );
    const active = new ServePipeline({
      settings: config,
      kafka,
      registry,
      predictionSchemaId,
      runner,
      logger,
      metrics,
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
    await telemetry.close();
    await runner.release();
    logger.flush();
  }
}
