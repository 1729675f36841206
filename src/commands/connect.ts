import type { Kafka } from 'kafkajs';
import { RegistryClient, readSchemaFile, registerValueSchema } from '../codec/registry.js';
import { RegistrySchemas } from '../codec/schemas.js';
import type { Config } from '../config/options.js';
import { connectAdmin, createKafka, ensureTopics, recordLimits } from '../kafka/client.js';
import type { Logger } from '../telemetry/logger.js';

export interface Connected {
  kafka: Kafka;
  registry: RegistryClient;
  /** Writer schemas by id, fetched from the registry as records name them. */
  schemas: RegistrySchemas;
  /** Registered schema id per topic, for the topics given with a schema file. */
  schemaIds: Map<string, number>;
  /** The largest record each topic given takes (its max.message.bytes, less batch framing). */
  recordLimits: Map<string, number>;
}

/**
 * What every command does before its work: reach the cluster (a clear error if it cannot), create
 * the topics it uses that are missing (unless createTopics is off), and register the value schema
 * of each topic it writes.
 */
export async function connect(
  config: Config,
  logger: Logger,
  topics: readonly string[],
  schemas: Readonly<Record<string, string>>,
): Promise<Connected> {
  const kafka = createKafka(config, logger);
  const admin = await connectAdmin(kafka, config);
  let limits: Map<string, number>;
  try {
    if (config.createTopics) {
      const created = await ensureTopics(admin, topics, config.topicPartitions);
      if (created.length > 0) logger.info({ topics: created }, 'created topics');
    }
    limits = await recordLimits(admin, topics, logger);
  } finally {
    await admin.disconnect();
  }
  const registry = registryClient(config);
  const schemaIds = new Map<string, number>();
  for (const [topic, file] of Object.entries(schemas)) {
    schemaIds.set(topic, await registerValueSchema(registry, topic, await readSchemaFile(file)));
  }
  return { kafka, registry, schemas: new RegistrySchemas(registry), schemaIds, recordLimits: limits };
}

export function registryClient(config: Config): RegistryClient {
  return new RegistryClient({
    url: config.schemaRegistryUrl,
    username: config.schemaRegistryUsername,
    password: config.schemaRegistryPassword,
    bearerToken: config.schemaRegistryBearerToken,
    caFile: config.schemaRegistrySslCaFile,
    certFile: config.schemaRegistrySslCertFile,
    keyFile: config.schemaRegistrySslKeyFile,
  });
}
