import type { BaseOptions, SASLOptions } from '@platformatic/kafka';
import { tlsOptions, type KafkaSettings } from './client.js';

/** Between retries of a failed request: doubling from 100 ms up to a second, as for kafkajs. */
function retryDelay(_client: unknown, _operation: string, attempt: number): number {
  return Math.min(1_000, 100 * 2 ** Math.max(0, attempt - 1));
}

/**
 * @platformatic/kafka client options from streamscore's Kafka settings: the same brokers, TLS
 * (certificates always verified, the broker's host name checked unless KAFKA_SSL_SERVERNAME names
 * another) and SASL as the kafkajs client (client.ts createKafka).
 */
export function platformaticOptions(
  settings: KafkaSettings,
  options: { patient?: boolean } = {},
): Omit<BaseOptions, 'clientId' | 'bootstrapBrokers'> & { clientId: string; bootstrapBrokers: string[] } {
  const tls = tlsOptions(settings);
  let sasl: SASLOptions | undefined;
  if (settings.kafkaSaslMechanism !== 'none') {
    sasl = {
      mechanism: settings.kafkaSaslMechanism.toUpperCase() as SASLOptions['mechanism'],
      username: settings.kafkaSaslUsername,
      password: settings.kafkaSaslPassword,
    };
  }
  return {
    clientId: settings.kafkaClientId,
    bootstrapBrokers: [...settings.kafkaBrokers],
    connectTimeout: Math.min(settings.kafkaConnectTimeoutMs, 10_000),
    // A long-lived consumer or producer waits out a broker outage for as long as it lasts.
    retries: options.patient === true ? true : 10,
    retryDelay,
    ...(tls === false
      ? {}
      : { tls, tlsServerName: settings.kafkaSslServername !== '' ? settings.kafkaSslServername : true }),
    ...(sasl === undefined ? {} : { sasl }),
  };
}
