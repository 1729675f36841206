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
import { sleep } from './child.js';

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
  const names = [topics.requests, topics.predictions, topics.dlq];
  await withAdmin(kafka, async (admin) => {
    await admin.createTopics({ topics: names.map((topic) => ({ topic, numPartitions: PARTITIONS })) });
    try {
      await waitForLeaders(admin, names);
    } catch (error) {
      await admin.deleteTopics({ topics: names }).catch(() => undefined);
      throw error;
    }
  });
  return topics;
}

/** How long new topics may take to have a leader for every partition. */
const LEADERS_TIMEOUT_MS = 30_000;
/** Metadata errors that mean "not yet" for a topic just created. */
const NOT_YET = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * Waits until every partition of the topics has a leader. kafkajs's own wait (createTopics'
 * waitForLeaders) retries LEADER_NOT_AVAILABLE only, but a KRaft broker answers metadata for a
 * topic it has not yet applied with UNKNOWN_TOPIC_OR_PARTITION, which happens on a busy machine
 * right after other topics were deleted; kafkajs then fails the case at once.
 */
async function waitForLeaders(admin: Admin, topics: string[]): Promise<void> {
  const deadline = performance.now() + LEADERS_TIMEOUT_MS;
  let last: unknown;
  while (performance.now() < deadline) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics });
      const ready = found.every(
        (topic) =>
          topic.partitions.length === PARTITIONS &&
          topic.partitions.every((partition) => partition.leader >= 0),
      );
      if (ready) return;
    } catch (error) {
      if (!NOT_YET.has(String((error as { type?: unknown }).type))) throw error;
      last = error;
    }
    await sleep(100);
  }
  throw new Error(
    `topics ${topics.join(', ')} had no leader for every partition within ${LEADERS_TIMEOUT_MS} ms` +
      (last instanceof Error ? ` (last: ${last.message})` : ''),
  );
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
