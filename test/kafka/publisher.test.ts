import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Producer, ProducerBatch, TopicMessages } from 'kafkajs';
import { pino } from 'pino';
import { OrderedPublisher } from '../../src/kafka/publisher.js';

/** A producer whose sendBatch calls are held until the test settles them, one at a time. */
class HeldProducer {
  readonly requests: TopicMessages[][] = [];
  readonly #pending: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  #arrived: (() => void) | undefined;

  sendBatch(batch: ProducerBatch): Promise<void> {
    this.requests.push(batch.topicMessages ?? []);
    this.#arrived?.();
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }

  /** Waits until `count` requests were made in all. */
  async requested(count: number): Promise<void> {
    while (this.requests.length < count) await new Promise<void>((resolve) => (this.#arrived = resolve));
  }

  ack(): void {
    this.#pending.shift()!.resolve();
  }

  fail(error: unknown): void {
    this.#pending.shift()!.reject(error);
  }

  get inFlight(): number {
    return this.#pending.length;
  }
}

const silent = pino({ level: 'silent' });

function records(topic: string, ...values: string[]): TopicMessages[] {
  return [{ topic, messages: values.map((value) => ({ key: value, value })) }];
}

function valuesOf(request: TopicMessages[]): Record<string, string[]> {
  return Object.fromEntries(
    request.map(({ topic, messages }) => [topic, messages.map((m) => String(m.value))]),
  );
}

function publisher(
  producer: HeldProducer,
  onFatal: (error: unknown) => void = () => undefined,
  maxBytes?: number,
) {
  return new OrderedPublisher(producer as unknown as Producer, silent, onFatal, maxBytes);
}

describe('OrderedPublisher', () => {
  it('keeps one request in flight and sends what queued behind it as one request, in order', async () => {
    const producer = new HeldProducer();
    const acks: string[] = [];
    const out = publisher(producer);
    out.publish(records('p', 'a1', 'a2'), () => acks.push('a'));
    await producer.requested(1);
    out.publish(records('p', 'b1'), () => acks.push('b'));
    out.publish(records('dlq', 'c1'), () => acks.push('c'));
    out.publish(records('p', 'd1', 'd2'), () => acks.push('d'));
    assert.equal(producer.inFlight, 1, 'the next request waits for the first acknowledgement');
    assert.equal(out.queued, 4);
    producer.ack();
    await producer.requested(2);
    assert.deepEqual(acks, ['a']);
    assert.deepEqual(valuesOf(producer.requests[1]!), { p: ['b1', 'd1', 'd2'], dlq: ['c1'] });
    producer.ack();
    await out.idle();
    assert.deepEqual(acks, ['a', 'b', 'c', 'd']);
    assert.equal(out.queued, 0);
    assert.equal(producer.requests.length, 2);
  });

  it('splits a backlog at the byte limit, never splitting one publish', async () => {
    const producer = new HeldProducer();
    const out = publisher(producer, undefined, 8); // key + value of 'xx' = 4 bytes a record
    out.publish(records('p', 'x0'), () => undefined);
    await producer.requested(1);
    out.publish(records('p', 'x1'), () => undefined);
    out.publish(records('p', 'x2'), () => undefined);
    out.publish(records('p', 'x3', 'x4', 'x5'), () => undefined); // 12 bytes: over the limit, alone
    out.publish(records('p', 'x6'), () => undefined);
    for (let request = 1; request <= 4; request += 1) {
      producer.ack();
      if (request < 4) await producer.requested(request + 1);
    }
    await out.idle();
    assert.deepEqual(
      producer.requests.map((request) => valuesOf(request).p),
      [['x0'], ['x1', 'x2'], ['x3', 'x4', 'x5'], ['x6']],
    );
  });

  it('retries a failed request until it is acknowledged, then acknowledges in order', async () => {
    const producer = new HeldProducer();
    const acks: string[] = [];
    const out = publisher(producer);
    out.publish(records('p', 'a'), () => acks.push('a'));
    await producer.requested(1);
    out.publish(records('p', 'b'), () => acks.push('b'));
    producer.fail(Object.assign(new Error('not leader'), { type: 'NOT_LEADER_FOR_PARTITION' }));
    await producer.requested(2);
    assert.deepEqual(valuesOf(producer.requests[1]!), { p: ['a'] }, 'the retry resends the same records');
    assert.deepEqual(acks, []);
    producer.ack();
    await producer.requested(3);
    producer.ack();
    await out.idle();
    assert.deepEqual(acks, ['a', 'b']);
  });

  it('stops on a permanent error: onFatal once, no acknowledgement, nothing more sent', async () => {
    const producer = new HeldProducer();
    const acks: string[] = [];
    const fatal: unknown[] = [];
    const out = publisher(producer, (error) => fatal.push(error));
    out.publish(records('p', 'a'), () => acks.push('a'));
    await producer.requested(1);
    out.publish(records('p', 'b'), () => acks.push('b'));
    const tooLarge = Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' });
    producer.fail(tooLarge);
    await out.idle();
    out.publish(records('p', 'c'), () => acks.push('c'));
    await out.idle();
    assert.deepEqual(fatal, [tooLarge]);
    assert.deepEqual(acks, []);
    assert.equal(producer.requests.length, 1);
  });

  it('after stop(), abandons what waits and a request being retried', async () => {
    const producer = new HeldProducer();
    const acks: string[] = [];
    const out = publisher(producer);
    out.publish(records('p', 'a'), () => acks.push('a'));
    await producer.requested(1);
    out.publish(records('p', 'b'), () => acks.push('b'));
    out.stop();
    producer.fail(new Error('connection closed'));
    await out.idle();
    assert.deepEqual(acks, []);
    assert.equal(producer.requests.length, 1);
  });
});
