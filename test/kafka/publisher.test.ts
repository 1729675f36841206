import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Producer, ProducerBatch, TopicMessages } from 'kafkajs';
import { pino } from 'pino';
import { mock } from 'node:test';
import { OrderedPublisher, RECORD_OVERHEAD_BYTES, type PublisherEvents } from '../../src/kafka/publisher.js';

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

interface Seen {
  stalls: { error: unknown; refused: boolean }[];
  recoveries: number;
  fatal: unknown[];
}

function publisher(producer: HeldProducer, seen?: Seen, maxBytes?: number) {
  const events: PublisherEvents = {
    stalled: (error, refused) => seen?.stalls.push({ error, refused }),
    recovered: () => {
      if (seen !== undefined) seen.recoveries += 1;
    },
    fatal: (error) => seen?.fatal.push(error),
  };
  return new OrderedPublisher(producer as unknown as Producer, silent, events, maxBytes);
}

function watch(): Seen {
  return { stalls: [], recoveries: 0, fatal: [] };
}

/** Bytes of a record with a two-character key and value, as the publisher counts them. */
const RECORD = RECORD_OVERHEAD_BYTES + 4;

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

  it('splits a backlog at the byte limit, and a large publish across requests, acknowledging it once', async () => {
    const producer = new HeldProducer();
    const acks: string[] = [];
    const out = publisher(producer, undefined, 2 * RECORD);
    out.publish(records('p', 'x0'), () => acks.push('0'));
    await producer.requested(1);
    out.publish(records('p', 'x1'), () => acks.push('1'));
    out.publish(records('p', 'x2'), () => acks.push('2'));
    out.publish(records('p', 'x3', 'x4', 'x5'), () => acks.push('3-5'));
    out.publish(records('p', 'x6'), () => acks.push('6'));
    const acksAfter: string[][] = [];
    for (let request = 1; request <= 4; request += 1) {
      producer.ack();
      if (request < 4) await producer.requested(request + 1);
      acksAfter.push([...acks]);
    }
    await out.idle();
    assert.deepEqual(
      producer.requests.map((request) => valuesOf(request).p),
      [['x0'], ['x1', 'x2'], ['x3', 'x4'], ['x5', 'x6']],
    );
    assert.deepEqual(acksAfter[2], ['0', '1', '2'], 'x3-x5 is acknowledged only when all of it is');
    assert.deepEqual(acks, ['0', '1', '2', '3-5', '6']);
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

  it('stalls on a request the broker refuses, retries it slowly, and says when it recovers', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const producer = new HeldProducer();
      const acks: string[] = [];
      const seen = watch();
      const out = publisher(producer, seen);
      out.publish(records('p', 'a'), () => acks.push('a'));
      await producer.requested(1);
      out.publish(records('p', 'b'), () => acks.push('b'));
      const tooLarge = Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' });
      producer.fail(tooLarge);
      for (let i = 0; i < 10 && seen.stalls.length === 0; i += 1) await Promise.resolve();
      assert.deepEqual(seen.stalls, [{ error: tooLarge, refused: true }]);
      mock.timers.tick(29_000);
      await Promise.resolve();
      assert.equal(producer.requests.length, 1, 'a refused request waits 30 s before the next try');
      mock.timers.tick(1_000);
      await producer.requested(2);
      producer.ack();
      await producer.requested(3);
      producer.ack();
      await out.idle();
      assert.deepEqual(acks, ['a', 'b']);
      assert.equal(seen.recoveries, 1);
      assert.deepEqual(seen.fatal, []);
    } finally {
      mock.timers.reset();
    }
  });

  it('stops on what cannot succeed (a dead producer thread, a programming error): fatal once, nothing acknowledged', async () => {
    for (const error of [
      Object.assign(new Error('thread gone'), { type: 'PRODUCER_THREAD_FAILED' }),
      new TypeError('bad record'),
    ]) {
      const producer = new HeldProducer();
      const acks: string[] = [];
      const seen = watch();
      const out = publisher(producer, seen);
      out.publish(records('p', 'a'), () => acks.push('a'));
      await producer.requested(1);
      out.publish(records('p', 'b'), () => acks.push('b'));
      producer.fail(error);
      await out.idle();
      out.publish(records('p', 'c'), () => acks.push('c'));
      await out.idle();
      assert.deepEqual(seen.fatal, [error]);
      assert.deepEqual(seen.stalls, []);
      assert.deepEqual(acks, []);
      assert.equal(producer.requests.length, 1);
    }
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
