/**
 * The transport relay on kafkajs, run as its own process like serve: consume the requests topic,
 * decode every record and encode a Prediction-shaped record for it with serve's codec classes
 * (codec.ts), send the fetched batch in produce calls of SEND_CHUNK records (acks=all), and commit
 * each partition's offsets once the records before them are acknowledged (commits.ts). No model,
 * no validation, no batcher, no ordered publisher: only the Kafka and Avro work serve cannot
 * avoid, done the fastest straightforward way (up to eight partitions' batches at once; sends
 * pipelined, up to MAX_SENDS_IN_FLIGHT awaiting acknowledgement while the next fetches are
 * decoded). Per-key order across sends is not kept, which serve must keep: one more way this
 * ceiling is generous.
 *
 * Logs `joined consumer group` like serve, so the bench times both the same way.
 */
import type { EachBatchPayload, Message } from 'kafkajs';
import { createKafka } from '../../src/kafka/client.js';
import { openProducer } from '../../src/kafka/producer-thread.js';
import { StopSignal, runRelay, setUpRelay } from './codec.js';
import { CommitAfterAcks } from './commits.js';
import { InFlight } from './in-flight.js';

/** Records per produce call: serve's default batchMaxRows is 256; larger only makes the ceiling stronger. */
const SEND_CHUNK = 1_000;
/** Produce calls awaiting their acknowledgement before the relay stops taking fetches. */
const MAX_SENDS_IN_FLIGHT = 16;

async function main(): Promise<number> {
  const { config, logger, log, codec } = await setUpRelay('transport-relay-kafkajs');
  const fail = (what: string) => (error: unknown) => {
    log.fatal({ err: error }, `${what} failed; the relay stops`);
    logger.flush();
    process.exit(1);
  };
  const kafka = createKafka(config, logger);
  // ServePipeline's client settings (src/pipeline/serve.ts), except that fetches keep kafkajs's
  // default size (1 MiB a partition, serve takes 256 KiB to bound its memory): larger fetches are
  // never slower, so the ceiling can only gain. The producer is in a worker thread when serve's
  // is (STREAMSCORE_PRODUCER_THREAD).
  const consumer = kafka.consumer({
    groupId: config.groupId,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    maxWaitTimeInMs: 250,
    retry: { retries: 10 },
  });
  const producer = openProducer(kafka, { ...config, kafkaClient: 'kafkajs' });
  const sends = new InFlight(MAX_SENDS_IN_FLIGHT, fail('send'));
  const commits = new CommitAfterAcks(
    (offsets) =>
      consumer.commitOffsets(
        offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset: offset.toString() })),
      ),
    fail('commit'),
  );
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) =>
    log.info({ groupId: payload.groupId, memberId: payload.memberId }, 'joined consumer group'),
  );

  const relay = async (payload: EachBatchPayload): Promise<void> => {
    const { batch } = payload;
    if (batch.isEmpty()) return;
    // A fetched batch can hold thousands of records: send them in chunks as they are encoded, and
    // do not wait for the acknowledgements before taking the next fetch, so decoding, encoding and
    // the broker's writes overlap. `sends` bounds what is in flight.
    let messages: Message[] = [];
    let last = '';
    const send = async () => {
      const acked = commits.sent([
        { topic: batch.topic, partition: batch.partition, offset: BigInt(last) + 1n, leaderEpoch: -1 },
      ]);
      const call = producer.sendBatch({
        topicMessages: [{ topic: config.predictionsTopic, messages }],
        acks: -1,
      });
      messages = [];
      await sends.add(call.then(acked));
    };
    for (const message of batch.messages) {
      messages.push({
        key: message.key,
        value: codec.encodeNow(message.value) ?? (await codec.encode(message.value)),
      });
      last = message.offset;
      if (messages.length >= SEND_CHUNK) await send();
    }
    if (messages.length > 0) await send();
    payload.resolveOffset(batch.lastOffset());
    await payload.heartbeat();
  };

  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [config.requestsTopic], fromBeginning: config.fromBeginning });
  const stop = new StopSignal();
  await consumer.run({ autoCommit: false, partitionsConsumedConcurrently: 8, eachBatch: relay });
  await stop.received;
  await consumer.stop();
  await sends.idle();
  await commits.idle();
  await consumer.disconnect();
  await producer.disconnect();
  log.info('stopped');
  logger.flush();
  return 0;
}

runRelay('transport-relay-kafkajs', main);
