import kafkajs, {
  Kafka,
  Partitioners,
  logLevel,
  type Admin,
  type ITopicConfig,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Config } from '../config/options.js';
import { StreamscoreError, TLS_HOSTNAME_CODE, TLS_UNTRUSTED_REASONS, describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { kafkaLogCreator, type ConnectionTrouble } from './client-log.js';

const KAFKA_SETTING_KEYS = [
  'kafkaBrokers',
  'kafkaClientId',
  'kafkaSsl',
  'kafkaSslCaFile',
  'kafkaSslCertFile',
  'kafkaSslKeyFile',
  'kafkaSslKeyPassword',
  'kafkaSslServername',
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
 * Certificate checks that failed on a client's sockets. kafkajs counts every socket error as a
 * connection error worth retrying, which for a certificate only delays the same refusal; start-up
 * waits race this instead, and give up at the first one.
 */
interface TlsRefusals {
  first: Error | undefined;
  listeners: Set<(error: Error) => void>;
}
const refusals = new WeakMap<Kafka, TlsRefusals>();

function isCertificateFailure(code: unknown): boolean {
  return typeof code === 'string' && (code === TLS_HOSTNAME_CODE || code in TLS_UNTRUSTED_REASONS);
}

/**
 * `work`, or the first certificate failure seen on the client's sockets while it runs, whichever
 * comes first (the failure as kafkajs would report it, with the socket error's code).
 */
export async function unlessRefused<T>(kafka: Kafka, work: Promise<T>): Promise<T> {
  const seen = refusals.get(kafka);
  if (seen === undefined) return work;
  let listener: ((error: Error) => void) | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        listener = reject;
        if (seen.first !== undefined) reject(seen.first);
        seen.listeners.add(reject);
      }),
    ]);
  } finally {
    if (listener !== undefined) seen.listeners.delete(listener);
  }
}

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
    };
  }
  const trouble: ConnectionTrouble = { last: undefined };
  const refused: TlsRefusals = { first: undefined, listeners: new Set() };
  const kafka = new Kafka({
    // kafkajs's own socket factory, plus a note of certificate failures (see unlessRefused).
    socketFactory: ({ host, port, ssl, onConnect }) => {
      const tls = ssl as ConnectionOptions | false | undefined;
      const socket = tls
        ? tlsConnect({ host, port, ...(isIP(host) === 0 ? { servername: host } : {}), ...tls }, onConnect)
        : netConnect({ host, port }, onConnect);
      socket.setKeepAlive(true, 60_000); // one minute, as kafkajs does
      if (tls) {
        socket.on('error', (error: NodeJS.ErrnoException) => {
          if (!isCertificateFailure(error.code)) return;
          const failure = Object.assign(new Error(`Connection error: ${error.message}`), {
            code: error.code,
            cause: error,
          });
          refused.first ??= failure;
          for (const listener of refused.listeners) listener(failure);
        });
      }
      return socket;
    },
    clientId: settings.kafkaClientId,
    brokers: [...settings.kafkaBrokers],
    ssl: tlsOptions(settings),
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
  refusals.set(kafka, refused);
  return kafka;
}

/** Node TLS options from the settings; false for plaintext. Certificates are always verified. */
export function tlsOptions(settings: KafkaSettings): ConnectionOptions | false {
  if (!settings.kafkaSsl) return false;
  const read = (path: string, env: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new StreamscoreError('CONFIG_INVALID', `${env}: cannot read ${path}: ${describeError(error)}`, {
        cause: error,
        context: { path },
      });
    }
  };
  const options: ConnectionOptions = { rejectUnauthorized: true };
  if (settings.kafkaSslCaFile !== '') options.ca = read(settings.kafkaSslCaFile, 'KAFKA_SSL_CA_FILE');
  if (settings.kafkaSslCertFile !== '') {
    options.cert = read(settings.kafkaSslCertFile, 'KAFKA_SSL_CERT_FILE');
    options.key = read(settings.kafkaSslKeyFile, 'KAFKA_SSL_KEY_FILE');
    if (settings.kafkaSslKeyPassword !== '') options.passphrase = settings.kafkaSslKeyPassword;
  }
  if (settings.kafkaSslServername !== '') options.servername = settings.kafkaSslServername;
  return options;
}

/**
 * A failure of credentials or trust, told apart from a cluster that is away: the SASL mechanism
 * refused, or the check of the brokers' certificate that failed. Undefined for anything else.
 */
export function securityFailure(error: unknown, settings: KafkaSettings): StreamscoreError | undefined {
  const where = `Kafka at ${settings.kafkaBrokers.join(',')}`;
  for (
    let inner: unknown = error, depth = 0;
    inner !== undefined && inner !== null && depth < 6;
    depth += 1
  ) {
    const { name, code } = inner as { name?: unknown; code?: unknown };
    if (name === 'KafkaJSSASLAuthenticationError') {
      return new StreamscoreError(
        'KAFKA_AUTH_FAILED',
        `${where} refused SASL ${settings.kafkaSaslMechanism.toUpperCase()} authentication for user ${JSON.stringify(settings.kafkaSaslUsername)}: ${describeError(inner)} (check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM)`,
        { cause: error, context: { mechanism: settings.kafkaSaslMechanism } },
      );
    }
    if (code === TLS_HOSTNAME_CODE) {
      return new StreamscoreError(
        'TLS_HOSTNAME_MISMATCH',
        `${where}: the broker's certificate does not name the host connected to: ${describeError(inner)} (${code}); connect by a name on the certificate, or set KAFKA_SSL_SERVERNAME to one`,
        { cause: error, context: { check: code } },
      );
    }
    const untrusted = typeof code === 'string' ? TLS_UNTRUSTED_REASONS[code] : undefined;
    if (untrusted !== undefined && typeof code === 'string') {
      return new StreamscoreError(
        'TLS_UNTRUSTED',
        `${where}: the broker's certificate is not trusted: ${untrusted} (${code}); set KAFKA_SSL_CA_FILE to the CA that signed it`,
        { cause: error, context: { check: code } },
      );
    }
    const next = inner as { originalError?: unknown; cause?: unknown };
    inner = next.originalError ?? next.cause;
  }
  return undefined;
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
      unlessRefused(
        kafka,
        (async () => {
          await admin.connect();
          await admin.describeCluster();
        })(),
      ),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${deadline} ms`)), deadline);
      }),
    ]);
    return admin;
  } catch (error) {
    await admin.disconnect().catch(() => undefined);
    const refused = securityFailure(error, settings);
    if (refused !== undefined) throw refused;
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
