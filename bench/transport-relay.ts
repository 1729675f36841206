/**
 * The transport ceiling, run as its own process like serve: consume the requests topic, decode
 * every record and encode a Prediction-shaped record for it with serve's codec classes (schemas
 * fetched once, then no awaiting per record), send the
 * fetched batch in produce calls of SEND_CHUNK records. No model, no validation, no batcher, no ordered
 * publisher, no offset commits: only the Kafka and Avro work serve cannot avoid, done the fastest
 * straightforward way (up to eight partitions' batches at once; sends pipelined, up to
 * MAX_SENDS_IN_FLIGHT awaiting acknowledgement while the next fetches are decoded). Per-key order
 * across sends is not kept, which serve must keep: one more way this ceiling is generous.
 *
 * Configured by the same environment as serve (loadConfig), so the brokers, registry and client
 * settings are serve's; BENCH_RELAY_OUTPUTS names the outputs to write (the model's, so records
 * are the same size as serve's), BENCH_RELAY_FEATURES the features read into a row, as serve reads
 * them for the model. Logs `joined consumer group` like serve, so the bench times both
 * the same way.
 */
import type { EachBatchPayload, Message } from 'kafkajs';
import { RecordEncoder, type Prediction } from '../src/codec/predictions.js';
import type { EventIdentity } from '../src/codec/feature-rows.js';
import { RequestDecoder } from '../src/codec/requests.js';
import { readSchemaFile, registerValueSchema } from '../src/codec/registry.js';
import { RegistrySchemas } from '../src/codec/schemas.js';
import { registryClient } from '../src/commands/connect.js';
import { loadConfig } from '../src/config/load.js';
import { createKafka } from '../src/kafka/client.js';
import { openProducer } from '../src/kafka/producer-thread.js';
import { createLogger } from '../src/telemetry/logger.js';
import { InFlight } from './in-flight.js';

/** Records per produce call: serve's default batchMaxRows is 256; larger only makes the ceiling stronger. */
const SEND_CHUNK = 1_000;
/** Produce calls awaiting their acknowledgement before the relay stops taking fetches. */
const MAX_SENDS_IN_FLIGHT = 16;

async function main(): Promise<number> {
  const config = loadConfig({ env: process.env });
  const outputNames = (process.env.BENCH_RELAY_OUTPUTS ?? 'score').split(',');
  const featureNames = (process.env.BENCH_RELAY_FEATURES ?? '').split(',').filter((name) => name !== '');
  const logger = createLogger(config.logLevel);
  const log = logger.child({ component: 'transport-relay' });
  const kafka = createKafka(config, logger);
  const registry = registryClient(config);
  const schemas = new RegistrySchemas(registry);
  const schemaId = await registerValueSchema(
    registry,
    config.predictionsTopic,
    await readSchemaFile('prediction.avsc'),
  );
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
  const producer = openProducer(kafka, config);
  const decoder = new RequestDecoder(schemas, config, featureNames);
  decoder.setRowLayout(featureNames);
  const encoder = new RecordEncoder<Prediction>(schemas, schemaId);
  await encoder.prepare();
  const sends = new InFlight(MAX_SENDS_IN_FLIGHT, (error) => {
    log.fatal({ err: error }, 'send failed; the relay stops');
    logger.flush();
    process.exit(1);
  });
  const send = (messages: Message[]) =>
    sends.add(
      producer.sendBatch({ topicMessages: [{ topic: config.predictionsTopic, messages }], acks: -1 }),
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
    for (const message of batch.messages) {
      // serve's decode: straight into the row when it can, else the decoded map.
      let event: EventIdentity | undefined = decoder.readRowNow(message.value)?.event;
      if (event === undefined) {
        const decoded = decoder.decodeNow(message.value) ?? (await decoder.decode(message.value));
        if (!decoded.ok) throw new Error(`relay: undecodable record: ${decoded.message}`);
        event = decoded.event;
      }
      const outputs: Record<string, number> = {};
      for (const name of outputNames) outputs[name] = 0.5;
      const prediction: Prediction = {
        request_id: event.request_id,
        entity_key: event.entity_key,
        model_name: 'transport',
        model_version: '0',
        route: 'primary',
        outputs,
        event_time: event.event_time,
        scored_at: Date.now(),
      };
      messages.push({
        key: message.key,
        value: encoder.encodeNow(prediction),
      });
      if (messages.length >= SEND_CHUNK) {
        await send(messages);
        messages = [];
      }
    }
    if (messages.length > 0) await send(messages);
    payload.resolveOffset(batch.lastOffset());
    await payload.heartbeat();
  };

  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [config.requestsTopic], fromBeginning: config.fromBeginning });
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await consumer.run({ autoCommit: false, partitionsConsumedConcurrently: 8, eachBatch: relay });
  await stopped;
  await consumer.disconnect();
  await sends.idle();
  await producer.disconnect();
  log.info('stopped');
  logger.flush();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `transport-relay: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
