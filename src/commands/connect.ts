import type { Kafka } from 'kafkajs';
import {
  createRegistry,
  readSchemaFile,
  registerValueSchema,
  type SchemaRegistry,
} from '../codec/registry.js';
import type { Config } from '../config/options.js';
import { connectAdmin, createKafka, ensureTopics } from '../kafka/client.js';
import type { Logger } from '../telemetry/logger.js';

export interface Connected {
  kafka: Kafka;
  registry: SchemaRegistry;
  /** Registered schema id per topic, for the topics given with a schema file. */
  schemaIds: Map<string, number>;
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
  try {
    if (config.createTopics) {
      const created = await ensureTopics(admin, topics, config.topicPartitions);
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
  const registry = createRegistry(registryOptions);
  const schemaIds = new Map<string, number>();
  for (const [topic, file] of Object.entries(schemas)) {
    schemaIds.set(
      topic,
      await registerValueSchema(registry, registryOptions, topic, await readSchemaFile(file)),
    );
  }
  return { kafka, registry, schemaIds };
}
