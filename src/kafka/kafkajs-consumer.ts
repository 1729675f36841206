import type { Consumer, Kafka } from 'kafkajs';
import { lastConnectionTrouble } from './client.js';
import {
  heartbeatIntervalMs,
  type CommitOffset,
  type GroupConsumer,
  type GroupConsumerHandlers,
  type GroupConsumerSettings,
} from './group-consumer.js';

/** serve's group consumer on kafkajs: `eachBatch` with offsets resolved by intake. */
export class KafkajsGroupConsumer implements GroupConsumer {
  readonly #settings: GroupConsumerSettings;
  readonly #consumer: Consumer;
  readonly #kafka: Kafka;

  constructor(kafka: Kafka, settings: GroupConsumerSettings) {
    this.#settings = settings;
    this.#kafka = kafka;
    this.#consumer = kafka.consumer({
      groupId: settings.groupId,
      sessionTimeout: settings.sessionTimeoutMs,
      heartbeatInterval: heartbeatIntervalMs(settings.sessionTimeoutMs),
      maxWaitTimeInMs: 250, // how long the broker may hold an empty fetch
      // kafkajs turns a whole fetch response into message objects at once, and waiting events keep
      // their response buffers; 256 KiB a partition (kafkajs: 1 MiB) keeps that small while still
      // holding ~1,000 fraud events a partition per fetch.
      maxBytesPerPartition: 262_144,
      maxBytes: 4_194_304,
      // A broker outage is waited out by retrying, at most a second apart, for as long as it lasts:
      // a consumer that crashed and restarted would rejoin as a new member, and the group would
      // then wait a whole session timeout for the old one before anyone consumes again.
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
  }

  async start(handlers: GroupConsumerHandlers): Promise<void> {
    const consumer = this.#consumer;
    const { events } = consumer;
    consumer.on(events.GROUP_JOIN, ({ payload }) =>
      handlers.joined(payload.memberId, payload.memberAssignment),
    );
    consumer.on(events.END_BATCH_PROCESS, ({ payload }) => {
      // A fetch of only transaction markers or aborted records never reaches eachBatch.
      if (payload.batchSize === 0) {
        handlers.skipped(payload.topic, payload.partition, BigInt(payload.lastOffset));
      }
    });
    consumer.on(events.FETCH, () => handlers.contact());
    consumer.on(events.HEARTBEAT, () => handlers.contact());
    consumer.on(events.CRASH, ({ payload }) => handlers.crashed(payload.error, payload.restart));
    await consumer.connect();
    await consumer.subscribe({ topics: [this.#settings.topic], fromBeginning: this.#settings.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 8,
      eachBatch: async (payload) => {
        const { batch } = payload;
        if (batch.isEmpty()) return;
        await handlers.batch({
          topic: batch.topic,
          partition: batch.partition,
          records: batch.messages,
          lag: Number(batch.offsetLag()),
          heartbeat: () => payload.heartbeat(),
          current: () => payload.isRunning() && !payload.isStale(),
          resolve: (offset) => payload.resolveOffset(offset),
        });
      },
    });
  }

  pause(partitions?: readonly number[]): void {
    const topic = this.#settings.topic;
    this.#consumer.pause([partitions === undefined ? { topic } : { topic, partitions: [...partitions] }]);
  }

  resume(partitions: readonly number[]): void {
    this.#consumer.resume([{ topic: this.#settings.topic, partitions: [...partitions] }]);
  }

  seek(partition: number, offset: bigint): void {
    this.#consumer.seek({ topic: this.#settings.topic, partition, offset: offset.toString() });
  }

  async commit(offsets: readonly CommitOffset[]): Promise<void> {
    await this.#consumer.commitOffsets([...offsets]);
  }

  trouble(): string | undefined {
    return lastConnectionTrouble(this.#kafka);
  }

  async disconnect(): Promise<void> {
    await this.#consumer.disconnect();
  }
}
