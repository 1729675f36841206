import kafkajs, {
  Kafka,
  Partitioners,
  logLevel,
  type Admin,
  type ITopicConfig,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import type { Config } from '../config/options.js';
import { StreamscoreError, describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { kafkaLogCreator, type ConnectionTrouble } from './client-log.js';

const KAFKA_SETTING_KEYS = [
  'kafkaBrokers',
  'kafkaClientId',
  'kafkaSsl',
  'kafkaSaslMechanism',
  'kafkaSaslUsername',
  'kafkaSaslPassword',
  'kafkaConnectTimeoutMs',
] as const;

export type KafkaSettings = Pick<Config, (typeof KAFKA_SETTING_KEYS)[number]>;

/** Only the Kafka client settings of a config (e.g. to hand them to another thread). */
export function kafkaSettings(config: KafkaSettings): KafkaSettings {
  return Object.fromEntries(KAFKA_SETTING_KEYS.map((key) => [key, config[key]])) as KafkaSettings;
}

const troubles = new WeakMap<Kafka, ConnectionTrouble>();

/**
 * A kafkajs client with streamscore's logging (client-log.ts) and short waits between retries: a
 * consumer that crashed while a broker was away restarts after the last wait it reached, so a 30 s
 * ceiling (kafkajs's default) would keep scoring stopped long after the broker is back.
 */
export function createKafka(
  settings: KafkaSettings,
  logger: Logger,
  options: {
    /**
     * Never give up reconnecting (for a long-lived consumer). kafkajs's consumer gives up after its
     * client's connection retries run out, restarts, and rejoins its group as a new member, which
     * makes the group wait a whole session timeout for the old one before anyone consumes again.
     */
    patient?: boolean;
  } = {},
): Kafka {
  let sasl: SASLOptions | undefined;
  if (settings.kafkaSaslMechanism !== 'none') {
    sasl = {
      mechanism: settings.kafkaSaslMechanism,
      username: settings.kafkaSaslUsername,
      password: settings.kafkaSaslPassword,
    } as SASLOptions;
  }
  const trouble: ConnectionTrouble = { last: undefined };
  const kafka = new Kafka({
    clientId: settings.kafkaClientId,
    brokers: [...settings.kafkaBrokers],
    ssl: settings.kafkaSsl,
    ...(sasl ? { sasl } : {}),
    connectionTimeout: Math.min(settings.kafkaConnectTimeoutMs, 10_000),
    retry: {
      initialRetryTime: 100,
      maxRetryTime: 1_000,
      retries: options.patient === true ? Number.MAX_SAFE_INTEGER : 10,
    },
    logLevel: logLevel.INFO,
    logCreator: kafkaLogCreator(logger, trouble),
  });
  troubles.set(kafka, trouble);
  return kafka;
}

/** The last connection failure kafkajs logged for this client, if any. */
export function lastConnectionTrouble(kafka: Kafka): string | undefined {
  return troubles.get(kafka)?.last;
}

/** The kafkajs producer serve writes with: existing topics only, the Java client's key hashing. */
export function createProducer(kafka: Kafka): Producer {
  return kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 5 },
  });
}

/**
 * Connects an admin client within the configured time, or fails with a message naming the
 * brokers, so a wrong KAFKA_BROKERS is a clear start-up error rather than endless retries.
 */
export async function connectAdmin(kafka: Kafka, settings: KafkaSettings): Promise<Admin> {
  const admin = kafka.admin({ retry: { retries: 2, initialRetryTime: 200 } });
  const deadline = settings.kafkaConnectTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await admin.connect();
        await admin.describeCluster();
      })(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${deadline} ms`)), deadline);
      }),
    ]);
    return admin;
  } catch (error) {
    await admin.disconnect().catch(() => undefined);
    const trouble = lastConnectionTrouble(kafka);
    const why = describeKafkaError(error);
    throw new StreamscoreError(
      'KAFKA_UNAVAILABLE',
      `Cannot reach Kafka at ${settings.kafkaBrokers.join(',')} (KAFKA_BROKERS): ${why}${
        trouble !== undefined && !why.includes(trouble) ? ` (last: ${trouble})` : ''
      }`,
      { cause: error, retriable: true },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** An error's message, with the innermost cause kafkajs wrapped it around and that cause's code. */
export function describeKafkaError(error: unknown): string {
  let inner: unknown = error;
  for (let depth = 0; depth < 5; depth += 1) {
    const next =
      (inner as { cause?: unknown; originalError?: unknown } | null)?.originalError ??
      (inner as { cause?: unknown } | null)?.cause;
    if (next === undefined || next === null) break;
    inner = next;
  }
  const code = (inner as { code?: unknown } | null)?.code;
  const outer = describeError(error);
  const detail = inner === error ? '' : `: ${describeError(inner)}`;
  return `${outer}${detail}${typeof code === 'string' && !`${outer}${detail}`.includes(code) ? ` (${code})` : ''}`;
}

/** Creates the topics that do not exist yet; existing ones are left as they are. */
export async function ensureTopics(
  admin: Admin,
  topics: readonly string[],
  partitions: number,
): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = [...new Set(topics)].filter((topic) => !existing.has(topic));
  if (missing.length === 0) return [];
  const configs: ITopicConfig[] = missing.map((topic) => ({ topic, numPartitions: partitions }));
  // createTopics answers false when a racing replica created them first; both outcomes are fine.
  await admin.createTopics({ topics: configs, waitForLeaders: true });
  return missing;
}

/** Kafka's default max.message.bytes, for topics whose setting cannot be read. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
/** A record batch's own header (v2), which max.message.bytes counts too. */
const BATCH_OVERHEAD_BYTES = 61;

/**
 * The largest record each topic takes, from its max.message.bytes (less the batch header). A
 * topic whose setting cannot be read (no DescribeConfigs permission) gets Kafka's default.
 */
export async function recordLimits(
  admin: Admin,
  topics: readonly string[],
  logger: Logger,
): Promise<Map<string, number>> {
  const limits = new Map<string, number>();
  for (const topic of topics) limits.set(topic, DEFAULT_MAX_MESSAGE_BYTES - BATCH_OVERHEAD_BYTES);
  try {
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [...new Set(topics)].map((name) => ({
        // kafkajs exports the enum from CommonJS in a way ES imports cannot name.
        type: kafkajs.ConfigResourceTypes.TOPIC,
        name,
        configNames: ['max.message.bytes'],
      })),
    });
    for (const resource of resources) {
      const value = Number(
        resource.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue,
      );
      if (resource.errorCode === 0 && Number.isInteger(value) && value > BATCH_OVERHEAD_BYTES) {
        limits.set(resource.resourceName, value - BATCH_OVERHEAD_BYTES);
      }
    }
  } catch (error) {
    logger.warn(
      { err: error, topics },
      `cannot read max.message.bytes of the output topics, assuming Kafka's default: ${describeError(error)}`,
    );
  }
  return limits;
}
