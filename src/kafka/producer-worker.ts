/**
 * The producer thread behind ThreadedProducer (producer-thread.ts): one producer of the configured
 * Kafka client with
 * serve's settings, doing what the main thread asks in the order it asks. Ordering across sends is
 * the caller's: OrderedPublisher waits for each acknowledgement before its next request.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../telemetry/logger.js';
import { createKafka, createProducer } from './client.js';
import { PlatformaticProducer } from './platformatic-producer.js';
import {
  kafkaErrorTypes,
  type ProducerReply,
  type ProducerRequest,
  type ProducerThreadOptions,
  type RemoteError,
} from './producer-thread.js';
import { unpackTopicMessages } from './record-pack.js';

const port = parentPort!;
const options = workerData as ProducerThreadOptions;
const logger = createLogger(options.logLevel).child({ thread: 'producer' });
const producer =
  options.client === 'platformatic'
    ? new PlatformaticProducer(options.kafka)
    : createProducer(createKafka(options.kafka, logger));

function describe(error: unknown): RemoteError {
  const retriable = (error as { retriable?: unknown }).retriable;
  return {
    name: error instanceof Error ? error.name : 'Error',
    message: error instanceof Error ? error.message : String(error),
    types: kafkaErrorTypes(error),
    retriable: typeof retriable === 'boolean' ? retriable : undefined,
  };
}

port.on('message', (request: ProducerRequest) => {
  let work: Promise<unknown>;
  try {
    if (request.kind === 'connect') work = producer.connect();
    else if (request.kind === 'disconnect') work = producer.disconnect();
    else {
      work = producer.sendBatch({ topicMessages: unpackTopicMessages(request.packed), acks: request.acks });
    }
  } catch (error) {
    work = Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
  work.then(
    () => port.postMessage({ id: request.id, ok: true } satisfies ProducerReply),
    (error: unknown) =>
      port.postMessage({ id: request.id, ok: false, error: describe(error) } satisfies ProducerReply),
  );
});
