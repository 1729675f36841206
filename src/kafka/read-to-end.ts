import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { describeError } from '../errors.js';

/**
 * Reads a topic from its first record to the end it had when the read began, with a throw-away
 * group that commits nothing, handing each record to `onRecord` in partition order.
 */
export async function readToEnd(
  kafka: Kafka,
  topic: string,
  onRecord: (message: KafkaMessage) => Promise<void>,
): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, bigint>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    ends = new Map(
      offsets.filter((p) => BigInt(p.high) > BigInt(p.low)).map((p) => [p.partition, BigInt(p.high)]),
    );
  } finally {
    await admin.disconnect();
  }
  if (ends.size === 0) return 0;
  const consumer = kafka.consumer({ groupId: `streamscore-compare-${randomUUID()}`, maxWaitTimeInMs: 250 });
  let read = 0;
  const remaining = new Set(ends.keys());
  await consumer.connect();
  try {
    await new Promise<void>((resolve, reject) => {
      const reached = (partition: number, lastOffset: string) => {
        if (BigInt(lastOffset) + 1n >= ends.get(partition)!) remaining.delete(partition);
        if (remaining.size === 0) resolve();
      };
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.topic === topic) reached(payload.partition, payload.lastOffset);
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) reject(new Error(`reading ${topic}: ${describeError(payload.error)}`));
      });
      void consumer
        .subscribe({ topic, fromBeginning: true })
        .then(() =>
          consumer.run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              const end = ends.get(batch.partition);
              if (end === undefined) return;
              for (const message of batch.messages) {
                if (BigInt(message.offset) >= end) break;
                await onRecord(message);
                read += 1;
              }
            },
          }),
        )
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return read;
}
