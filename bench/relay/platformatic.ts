/**
 * The transport relay on @platformatic/kafka, the same work as the kafkajs relay (kafkajs.ts):
 * consume the requests topic (the consumer's message stream, read in chunks of up to SEND_CHUNK
 * records), decode and encode every record with serve's codec classes (codec.ts), produce each
 * chunk with acks=all, up to MAX_SENDS_IN_FLIGHT calls awaiting acknowledgement while the next
 * records are read, and commit each partition's offsets once the records before them are
 * acknowledged (commits.ts). Keys are hashed with the library's compatibilityPartitioner (murmur2,
 * sign bit masked, modulo the partition count), which puts a key where Java's default partitioner
 * and kafkajs's DefaultPartitioner put it; the library's own default does not (it keeps all 32 bits).
 *
 * The producer runs on the main thread: the library has no producer thread, so this relay does
 * the fetch, decode, encode and produce request encoding on one JavaScript thread.
 *
 * Logs `joined consumer group` like serve, so the bench times both the same way.
 */
import {
  Consumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  compatibilityPartitioner,
  type Message,
  type MessageToProduce,
  type SASLOptions,
} from '@platformatic/kafka';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { tlsOptions } from '../../src/kafka/client.js';
import type { Config } from '../../src/config/options.js';
import { StopSignal, runRelay, setUpRelay } from './codec.js';
import { CommitAfterAcks, nextOffsets } from './commits.js';
import { InFlight } from './in-flight.js';

/** Records per produce call, as the kafkajs relay. */
const SEND_CHUNK = 1_000;
/** Produce calls awaiting their acknowledgement before the relay stops reading, as the kafkajs relay. */
const MAX_SENDS_IN_FLIGHT = 16;
/**
 * Records the consumer stream buffers before it stops fetching (the library's default is 1,024):
 * room for a few chunks, so fetches go on while a chunk is encoded.
 */
const STREAM_HIGH_WATER_MARK = 8 * SEND_CHUNK;
/** Bytes a fetch may take of one partition: kafkajs's default, as the kafkajs relay keeps. */
const MAX_BYTES_PER_PARTITION = 1_048_576; // 1 MiB

/** serve's Kafka settings as the library takes them: brokers, client id, TLS and SASL. */
function connection(config: Config): {
  clientId: string;
  bootstrapBrokers: string[];
  tls?: TlsOptions;
  sasl?: SASLOptions;
} {
  const tls = tlsOptions(config);
  return {
    clientId: config.kafkaClientId,
    bootstrapBrokers: [...config.kafkaBrokers],
    ...(tls === false ? {} : { tls }),
    ...(config.kafkaSaslMechanism === 'none'
      ? {}
      : {
          sasl: {
            mechanism: config.kafkaSaslMechanism.toUpperCase() as SASLOptions['mechanism'],
            username: config.kafkaSaslUsername,
            password: config.kafkaSaslPassword,
          },
        }),
  };
}

async function main(): Promise<number> {
  const { config, logger, log, codec } = await setUpRelay('transport-relay-platformatic');
  const fail = (what: string) => (error: unknown) => {
    log.fatal({ err: error }, `${what} failed; the relay stops`);
    logger.flush();
    process.exit(1);
  };
  const consumer = new Consumer({
    ...connection(config),
    groupId: config.groupId,
    // The kafkajs relay's group settings (serve's).
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    maxWaitTime: 250,
    maxBytesPerPartition: MAX_BYTES_PER_PARTITION,
    autocommit: false,
  });
  const producer = new Producer({
    ...connection(config),
    acks: ProduceAcks.ALL,
    partitioner: compatibilityPartitioner,
    autocreateTopics: false,
    maxInflights: MAX_SENDS_IN_FLIGHT,
  });
  const sends = new InFlight(MAX_SENDS_IN_FLIGHT, fail('send'));
  const commits = new CommitAfterAcks((offsets) => consumer.commit({ offsets }), fail('commit'));
  consumer.on('consumer:group:join', (payload) =>
    log.info({ groupId: payload.groupId, memberId: payload.memberId }, 'joined consumer group'),
  );

  const stream = await consumer.consume({
    topics: [config.requestsTopic],
    mode: MessagesStreamModes.COMMITTED,
    fallbackMode: config.fromBeginning
      ? MessagesStreamFallbackModes.EARLIEST
      : MessagesStreamFallbackModes.LATEST,
    highWaterMark: STREAM_HIGH_WATER_MARK,
  });
  stream.on('error', fail('consume'));
  const stop = new StopSignal();
  // A 'readable' listener stays attached for the stream's life: when the last one goes, Node sets
  // readableFlowing back to null, and the library's fetch loop then takes the stream for one that
  // nobody reads, returns from _read() without fetching, and read() waits for ever (2.12.1).
  let wake = () => {};
  stream.on('readable', () => wake());

  const topic = config.predictionsTopic;
  const relay = async (): Promise<void> => {
    while (!stop.stopped) {
      const chunk: Message[] = [];
      while (chunk.length < SEND_CHUNK) {
        const message = stream.read() as Message | null;
        if (message === null) break;
        chunk.push(message);
      }
      if (chunk.length === 0) {
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), stop.received]);
        continue;
      }
      const messages: MessageToProduce[] = [];
      for (const message of chunk) {
        messages.push({
          topic,
          key: message.key,
          value: codec.encodeNow(message.value) ?? (await codec.encode(message.value)),
        });
      }
      const acked = commits.sent(nextOffsets(chunk));
      await sends.add(producer.send({ messages }).then(acked));
    }
  };
  await relay();
  await sends.idle();
  await commits.idle();
  await stream.close();
  await consumer.close();
  await producer.close();
  log.info('stopped');
  logger.flush();
  return 0;
}

runRelay('transport-relay-platformatic', main);
