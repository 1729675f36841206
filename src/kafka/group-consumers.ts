import type { Kafka } from 'kafkajs';
import type { Logger } from '../telemetry/logger.js';
import type { KafkaSettings } from './client.js';
import type { GroupConsumer, GroupConsumerSettings } from './group-consumer.js';
import { KafkajsGroupConsumer } from './kafkajs-consumer.js';
import { PlatformaticGroupConsumer } from './platformatic-consumer.js';
import type { KafkaClientName } from './producer-thread.js';

/**
 * Opens serve's group consumers with the configured Kafka client (STREAMSCORE_KAFKA_CLIENT);
 * `kafka` is the kafkajs client they use when that is the one (see createKafka's `patient`).
 */
export function groupConsumers(
  config: KafkaSettings & { kafkaClient: KafkaClientName },
  kafka: Kafka,
  logger: Logger,
): (settings: GroupConsumerSettings) => GroupConsumer {
  return (settings) =>
    config.kafkaClient === 'platformatic'
      ? new PlatformaticGroupConsumer(config, settings, logger)
      : new KafkajsGroupConsumer(kafka, settings);
}
