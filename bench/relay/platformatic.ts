/**
 * The transport relay on @platformatic/kafka, the same work as the kafkajs relay (kafkajs.ts):
 * consume the requests topic (the library's consumer stream, read in chunks of up to SEND_CHUNK
 * records), decode and encode every record with serve's codec classes (codec.ts), produce each
 * chunk with acks=all through serve's producer on this client (in a worker thread when serve's
 * is, STREAMSCORE_PRODUCER_THREAD; keys hashed as Java's partitioner does), up to
 * MAX_SENDS_IN_FLIGHT calls awaiting acknowledgement while the next records are read, and commit
 * each partition's offsets once the records before them are acknowledged (commits.ts).
 *
 * The stream, not serve's own fetch loop (src/kafka/platformatic-consumer.ts): the relay needs no
 * per-partition pause or seek, and the stream fetches ahead of what is read (up to
 * STREAM_HIGH_WATER_MARK records) where serve's loop fetches once a batch is handed over.
 *
 * Logs `joined consumer group` like serve, so the bench times both the same way.
 */
import {
  Consumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type Message,
} from '@platformatic/kafka';
import { createKafka } from '../../src/kafka/client.js';
import { platformaticOptions } from '../../src/kafka/platformatic-options.js';
import { openProducer } from '../../src/kafka/producer-thread.js';
import type { OutRecord } from '../../src/kafka/records.js';
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

async function main(): Promise<number> {
  const { config, logger, log, codec } = await setUpRelay('transport-relay-platformatic');
  const fail = (what: string) => (error: unknown) => {
    log.fatal({ err: error }, `${what} failed; the relay stops`);
    logger.flush();
    process.exit(1);
  };
  const consumer = new Consumer({
    ...platformaticOptions(config),
    groupId: config.groupId,
    // The kafkajs relay's group settings (serve's).
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    maxWaitTime: 250,
    maxBytesPerPartition: MAX_BYTES_PER_PARTITION,
    autocommit: false,
  });
  // serve's producer on this client; the kafkajs client passed is only used on kafkajs.
  const producer = openProducer(createKafka(config, logger), { ...config, kafkaClient: 'platformatic' });
  const sends = new InFlight(MAX_SENDS_IN_FLIGHT, fail('send'));
  const commits = new CommitAfterAcks((offsets) => consumer.commit({ offsets }), fail('commit'));
  consumer.on('consumer:group:join', (payload) =>
    log.info({ groupId: payload.groupId, memberId: payload.memberId }, 'joined consumer group'),
  );

  await producer.connect();
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
      const messages: OutRecord[] = [];
      for (const message of chunk) {
        messages.push({
          key: message.key,
          value: codec.encodeNow(message.value) ?? (await codec.encode(message.value)),
        });
      }
      const acked = commits.sent(nextOffsets(chunk));
      await sends.add(producer.sendBatch({ topicMessages: [{ topic, messages }], acks: -1 }).then(acked));
    }
  };
  await relay();
  await sends.idle();
  await commits.idle();
  await stream.close();
  await consumer.close();
  await producer.disconnect();
  log.info('stopped');
  logger.flush();
  return 0;
}

runRelay('transport-relay-platformatic', main);
