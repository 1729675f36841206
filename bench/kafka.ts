/**
 * The bench's own Kafka and registry clients, and fresh topics per case. Every case gets random
 * topic and group names and deletes them afterwards, so cases never read each other's records
 * and a shared broker is left as it was found.
 */
import { quietKafkajsTimers } from '../src/kafka/client-log.js';
import { randomBytes } from 'node:crypto';
import { Kafka, Partitioners, logLevel, type Admin, type Producer } from 'kafkajs';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { RegistryClient, readSchemaFile, registerValueSchema } from '../src/codec/registry.js';

export interface Endpoints {
  brokers: string;
  registryUrl: string;
}

export interface BenchClients {
  endpoints: Endpoints;
  kafka: Kafka;
  registry: SchemaRegistry;
}

/** Matches serve's default STREAMSCORE_TOPIC_PARTITIONS, so serve sees the topic layout it would create. */
export const PARTITIONS = 6;

export function createClients(endpoints: Endpoints): BenchClients {
  quietKafkajsTimers();
  const kafka = new Kafka({
    clientId: 'streamscore-bench',
    brokers: endpoints.brokers.split(','),
    // The bench reports its own failures; kafkajs' retry chatter would bury the table.
    logLevel: logLevel.NOTHING,
  });
  return { endpoints, kafka, registry: new SchemaRegistry({ host: endpoints.registryUrl }) };
}

export function uniqueName(prefix: string): string {
  return `bench-${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export interface CaseTopics {
  requests: string;
  predictions: string;
  dlq: string;
  /** The group of the process under test. */
  group: string;
}

export async function withAdmin<T>(kafka: Kafka, work: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect();
  }
}

export async function createCaseTopics(kafka: Kafka, prefix: string): Promise<CaseTopics> {
  const base = uniqueName(prefix);
  const topics: CaseTopics = {
    requests: `${base}.requests`,
    predictions: `${base}.predictions`,
    dlq: `${base}.dlq`,
    group: `${base}-serve`,
  };
  await withAdmin(kafka, (admin) =>
    admin.createTopics({
      waitForLeaders: true,
      topics: [topics.requests, topics.predictions, topics.dlq].map((topic) => ({
        topic,
        numPartitions: PARTITIONS,
      })),
    }),
  );
  return topics;
}

/** Deletes a case's topics and groups; a group that never joined is not an error. */
export async function removeCaseTopics(kafka: Kafka, topics: CaseTopics, groups: string[]): Promise<void> {
  await withAdmin(kafka, async (admin) => {
    await admin.deleteTopics({ topics: [topics.requests, topics.predictions, topics.dlq] });
    await admin.deleteGroups([topics.group, ...groups]).catch(() => undefined);
  });
}

export async function registerFeatureSchema(clients: BenchClients, topic: string): Promise<number> {
  return registerValueSchema(
    new RegistryClient({ url: clients.endpoints.registryUrl }),
    topic,
    await readSchemaFile('feature-event.avsc'),
  );
}

export async function connectProducer(kafka: Kafka): Promise<Producer> {
  // The Java client's partitioner, as serve and `streamscore produce` use.
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  return producer;
}
