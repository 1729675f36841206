import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { PRODUCER_THREAD_FAILED, ThreadedProducer } from '../src/kafka/producer-thread.js';
import { OrderedPublisher } from '../src/kafka/publisher.js';
import { BROKERS, collect, createTopics, type TestTopics } from './harness.js';

const settings = {
  kafkaBrokers: BROKERS!.split(','),
  kafkaClientId: 'streamscore-test',
  kafkaSsl: false,
  kafkaSaslMechanism: 'none' as const,
  kafkaSaslUsername: '',
  kafkaSaslPassword: '',
  kafkaSslCaFile: '',
  kafkaSslCertFile: '',
  kafkaSslKeyFile: '',
  kafkaSslKeyPassword: '',
  kafkaSslServername: '',
  kafkaConnectTimeoutMs: 10_000,
};

const failOn = {
  stalled: (error: unknown) => assert.fail(`unexpected stall: ${String(error)}`),
  recovered: () => undefined,
  fatal: (error: unknown) => assert.fail(`unexpected fatal error: ${String(error)}`),
};

describe('producer thread on a real broker', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let producer: ThreadedProducer;
  before(async () => {
    topics = await createTopics('producer-thread', 3);
    producer = new ThreadedProducer({ client: 'kafkajs', kafka: settings, logLevel: 'silent' });
    await producer.connect();
  });
  after(async () => {
    await producer.disconnect();
    await topics.remove();
  });

  it('writes keys, values and headers as given, in order per key, acknowledging in publish order', async () => {
    const publisher = new OrderedPublisher(producer, pino({ level: 'silent' }), failOn);
    const acks: number[] = [];
    const perRequest = 250;
    for (let request = 0; request < 8; request += 1) {
      const messages = Array.from({ length: perRequest }, (_, i) => {
        const n = request * perRequest + i;
        return {
          key: `entity-${n % 17}`,
          value: Buffer.from(`value-${n}`),
          headers: n % 100 === 0 ? { reason: 'UNDECODABLE', raw: Buffer.from([0, 255, n % 256]) } : undefined,
        };
      });
      const dead = request === 3 ? [{ topic: topics.dlq, messages: [{ key: null, value: null }] }] : [];
      publisher.publish([{ topic: topics.predictions, messages }, ...dead], () => acks.push(request));
    }
    await publisher.idle();
    assert.deepEqual(acks, [0, 1, 2, 3, 4, 5, 6, 7]);

    const records = await collect(topics.predictions, { count: 2_000, timeoutMs: 20_000 });
    assert.equal(records.length, 2_000);
    const seen = new Map<string, number>();
    for (const record of records) {
      const n = Number(record.value!.toString().slice('value-'.length));
      assert.equal(record.key, `entity-${n % 17}`);
      const previous = seen.get(record.key) ?? -1;
      assert.ok(n > previous, `key ${record.key}: ${n} after ${previous}`);
      seen.set(record.key, n);
      if (n % 100 === 0)
        assert.deepEqual(record.headers, {
          reason: 'UNDECODABLE',
          raw: Buffer.from([0, 255, n % 256]).toString(),
        });
      else assert.deepEqual(record.headers, {});
    }
    const dead = await collect(topics.dlq, { count: 1, timeoutMs: 10_000, settleMs: 500 });
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.key, null);
    assert.equal(dead[0]!.value, null);
  });

  it('splits a publish larger than a request into several, acknowledging it once, in order', async () => {
    const publisher = new OrderedPublisher(producer, pino({ level: 'silent' }), failOn, 100_000);
    let acks = 0;
    const messages = Array.from({ length: 600 }, (_, n) => ({
      key: `k-${n % 5}`,
      value: Buffer.alloc(1_000, n % 256),
    }));
    publisher.publish([{ topic: topics.dlq, messages }], () => (acks += 1));
    await publisher.idle();
    assert.equal(acks, 1);
    const records = await collect(topics.dlq, { count: 601, timeoutMs: 20_000, settleMs: 500 });
    const ours = records.filter((record) => record.value?.length === 1_000);
    assert.equal(ours.length, 600);
    for (const key of ['k-0', 'k-1', 'k-2', 'k-3', 'k-4']) {
      const values = ours.filter((record) => record.key === key).map((record) => record.value![0]!);
      const expected = messages.filter((message) => message.key === key).map((message) => message.value[0]!);
      assert.deepEqual(values, expected, `order of ${key}`);
    }
  });

  it('stalls on a record the broker refuses, carrying the Kafka error type across, until stopped', async () => {
    const stalls: { error: unknown; refused: boolean }[] = [];
    const publisher = new OrderedPublisher(producer, pino({ level: 'silent' }), {
      stalled: (error, refused) => stalls.push({ error, refused }),
      recovered: () => assert.fail('nothing recovers'),
      fatal: (error) => assert.fail(`not fatal: ${String(error)}`),
    });
    let acked = false;
    // Over the broker's message.max.bytes (1 MiB by default).
    publisher.publish(
      [{ topic: topics.shadow, messages: [{ key: 'k', value: Buffer.alloc(2_000_000, 1) }] }],
      () => {
        acked = true;
      },
    );
    for (let i = 0; i < 100 && stalls.length === 0; i += 1) await new Promise((r) => setTimeout(r, 50));
    assert.equal(stalls.length, 1);
    assert.equal(stalls[0]!.refused, true);
    const error = stalls[0]!.error as { types?: string[]; message?: string };
    assert.ok(error.types?.includes('MESSAGE_TOO_LARGE'), `types ${String(error.types)}: ${error.message}`);
    const started = Date.now();
    publisher.stop();
    await publisher.idle();
    assert.ok(Date.now() - started < 2_000, 'stop() ends the wait between tries');
    assert.equal(acked, false);
  });

  it('stops, rather than retrying, once its thread is gone', async () => {
    const closed = new ThreadedProducer({ client: 'kafkajs', kafka: settings, logLevel: 'silent' });
    await closed.connect();
    await closed.disconnect();
    const failures: unknown[] = [];
    const publisher = new OrderedPublisher(closed, pino({ level: 'silent' }), {
      stalled: () => assert.fail('a dead thread is not a stall'),
      recovered: () => undefined,
      fatal: (error) => failures.push(error),
    });
    publisher.publish([{ topic: topics.shadow, messages: [{ key: 'k', value: 'v' }] }], () => {
      assert.fail('nothing can be acknowledged');
    });
    await publisher.idle();
    assert.equal(failures.length, 1);
    assert.deepEqual((failures[0] as { types?: string[] }).types, [PRODUCER_THREAD_FAILED]);
  });
});
