import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Partitioners } from 'kafkajs';
import { javaKeyHash } from '../../src/kafka/platformatic-producer.js';

describe('PlatformaticProducer partitioning', () => {
  it("puts every key in the partition kafkajs's Java-compatible partitioner picks", () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    for (const partitionCount of [1, 3, 6, 12, 100]) {
      const partitionMetadata = Array.from({ length: partitionCount }, (_, partitionId) => ({
        partitionId,
        leader: 1,
        partitionErrorCode: 0,
        replicas: [1],
        isr: [1],
      }));
      let differing = 0;
      for (let i = 0; i < 5_000; i += 1) {
        const key = Buffer.from(i % 7 === 0 ? `acct-${i}-${'x'.repeat(i % 40)}` : `entity-${i * 7919}`);
        const expected = kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } });
        if (javaKeyHash(key) % partitionCount !== expected) differing += 1;
      }
      assert.equal(differing, 0, `${differing} of 5,000 keys differ at ${partitionCount} partitions`);
    }
  });
});
