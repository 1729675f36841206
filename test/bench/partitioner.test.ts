import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compatibilityPartitioner } from '@platformatic/kafka';
import { Partitioners } from 'kafkajs';

/**
 * The @platformatic/kafka relay and serve on that client must put a key in the partition Java's
 * default partitioner (and kafkajs's DefaultPartitioner, which serve uses) puts it: the requests,
 * predictions and shadow topics are co-partitioned by entity key (src/kafka/copartition.ts).
 */
describe('@platformatic/kafka partitioners against the Java client', () => {
  const java = Partitioners.DefaultPartitioner();
  const partitions = 6;
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
    offlineReplicas: [],
    partitionErrorCode: 0,
  }));
  const keys = Array.from({ length: 2_000 }, (_, i) => Buffer.from(`entity-${i}`));
  const javaPartition = (key: Buffer) =>
    java({ topic: 't', partitionMetadata, message: { key, value: null } });

  it('compatibilityPartitioner puts every key where Java does', () => {
    for (const key of keys) {
      assert.equal(
        compatibilityPartitioner({ topic: 't' }, key) % partitions,
        javaPartition(key),
        String(key),
      );
    }
  });
});
