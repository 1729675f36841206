import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { GroupMembership } from '../../src/kafka/group-consumer.js';
import { OffsetLedger, type OffsetEntry } from '../../src/kafka/offsets.js';
import type { TransactionBatch, TransactionalProducer } from '../../src/kafka/platformatic-producer.js';
import type { PublisherEvents } from '../../src/kafka/publisher.js';
import { TransactionalPublisher, offsetBelow } from '../../src/kafka/transactional-publisher.js';

const silent = pino({ level: 'silent' });
const TOPIC = 'requests';

/** Records every transaction; each one waits until the test settles it. */
class HeldTransactions implements TransactionalProducer {
  readonly calls: TransactionBatch[] = [];
  readonly committed: TransactionBatch[] = [];
  readonly #pending: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  #arrived: (() => void) | undefined;
  auto = false;

  connect(): Promise<void> {
    return Promise.resolve();
  }
  disconnect(): Promise<void> {
    return Promise.resolve();
  }
  sendBatch(): Promise<unknown> {
    return Promise.reject(new TypeError('transactional'));
  }

  commitTransaction(batch: TransactionBatch): Promise<void> {
    this.calls.push(batch);
    this.#arrived?.();
    if (this.auto) {
      this.committed.push(batch);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) =>
      this.#pending.push({
        resolve: () => {
          this.committed.push(batch);
          resolve();
        },
        reject,
      }),
    );
  }

  async called(count: number): Promise<void> {
    while (this.calls.length < count) await new Promise<void>((resolve) => (this.#arrived = resolve));
  }

  commit(): void {
    this.#pending.shift()!.resolve();
  }

  fail(error: unknown): void {
    this.#pending.shift()!.reject(error);
  }

  get inFlight(): number {
    return this.#pending.length;
  }
}

const noEvents: PublisherEvents = {
  stalled: () => undefined,
  recovered: () => undefined,
  fatal: () => undefined,
};

function setup(options: { member?: () => GroupMembership | undefined; events?: PublisherEvents } = {}) {
  const ledger = new OffsetLedger();
  const producer = new HeldTransactions();
  const group: GroupMembership = { groupId: 'g', generationId: 1, memberId: 'm', coordinatorId: 1 };
  const publisher = new TransactionalPublisher({
    producer,
    logger: silent,
    events: options.events ?? noEvents,
    maxRequestBytes: 1_000_000,
    firstRetryMs: 1,
    source: () => ({
      pending: () => ledger.committable(),
      committed: (commits) => ledger.markCommitted(commits),
      membership: options.member ?? (() => group),
    }),
  });
  /** Takes offsets in on a partition's current lease. */
  const take = (partition: number, ...offsets: number[]): OffsetEntry[] =>
    offsets.map((offset) => ledger.lease(TOPIC, partition).track(String(offset)));
  const output = (entries: readonly OffsetEntry[], acks: string[], name: string) =>
    publisher.publish(
      [
        {
          topic: 'predictions',
          messages: entries.map((e) => ({ value: `${e.lease.partition}:${e.offset}` })),
        },
      ],
      () => acks.push(name),
      entries,
    );
  return { ledger, producer, publisher, take, output, group };
}

const values = (batch: TransactionBatch) =>
  batch.requests.flatMap((request) =>
    request.flatMap(({ messages }) => messages.map((m) => String(m.value))),
  );
const offsets = (batch: TransactionBatch) => batch.offsets.map((o) => `${o.partition}@${o.offset}`);

describe('TransactionalPublisher', () => {
  it('commits outputs with the offsets past them, and holds an output whose earlier record is still in flight', async () => {
    const { producer, publisher, take, output } = setup();
    const acks: string[] = [];
    const [a, b, c] = take(0, 10, 11, 12);
    // 11's output first: 10 is still being scored, so 11 must not be committed yet.
    output([b!], acks, 'b');
    await publisher.idle();
    assert.equal(producer.calls.length, 0, 'nothing is committable yet: no transaction');
    output([a!], acks, 'a');
    await producer.called(1);
    assert.deepEqual(values(producer.calls[0]!), ['0:11', '0:10']);
    assert.deepEqual(offsets(producer.calls[0]!), ['0@12']);
    assert.deepEqual(acks, [], 'nothing acknowledged before the commit');
    producer.commit();
    await publisher.idle();
    assert.deepEqual(acks, ['b', 'a']);
    output([c!], acks, 'c');
    await producer.called(2);
    assert.deepEqual(values(producer.calls[1]!), ['0:12']);
    assert.deepEqual(offsets(producer.calls[1]!), ['0@13']);
    producer.commit();
    await publisher.idle();
    assert.deepEqual(acks, ['b', 'a', 'c']);
  });

  it('retries a failed transaction with the same outputs and offsets, acknowledging only after its commit', async () => {
    const stalls: unknown[] = [];
    let recovered = 0;
    const { producer, publisher, take, output } = setup({
      events: { stalled: (e) => stalls.push(e), recovered: () => (recovered += 1), fatal: () => undefined },
    });
    const acks: string[] = [];
    output(take(1, 0, 1), acks, 'first');
    await producer.called(1);
    producer.fail(new Error('broker went away'));
    await producer.called(2);
    assert.deepEqual(values(producer.calls[1]!), values(producer.calls[0]!));
    assert.deepEqual(offsets(producer.calls[1]!), ['1@2']);
    assert.deepEqual(acks, []);
    assert.equal(stalls.length, 1);
    producer.commit();
    await publisher.idle();
    assert.deepEqual(acks, ['first']);
    assert.equal(recovered, 1);
    assert.equal(producer.committed.length, 1);
  });

  it('drops the outputs of revoked leases (the group moved on) and never commits them', async () => {
    const { producer, publisher, ledger, take, output } = setup();
    const acks: string[] = [];
    output(take(0, 5), acks, 'old');
    await producer.called(1);
    // The group moved on while the transaction was in flight: it is refused, the member rejoins.
    ledger.assign({ [TOPIC]: [0] }, false);
    producer.fail(Object.assign(new Error('refused'), { apiId: 'ILLEGAL_GENERATION' }));
    await publisher.idle();
    assert.equal(producer.calls.length, 1, 'the stale output is not sent again');
    assert.deepEqual(acks, ['old'], 'its publish is finished with (its capacity is released)');
    // The new lease reads the record again; its output goes out normally.
    output(take(0, 5), acks, 'new');
    await producer.called(2);
    assert.deepEqual(values(producer.calls[1]!), ['0:5']);
    assert.deepEqual(offsets(producer.calls[1]!), ['0@6']);
    producer.commit();
    await publisher.idle();
  });

  it('waits without a membership, and commits once there is one', async () => {
    const state: { member?: GroupMembership } = {};
    const { producer, publisher, take, output } = setup({ member: () => state.member });
    const acks: string[] = [];
    output(take(0, 0), acks, 'x');
    await publisher.idle();
    assert.equal(producer.calls.length, 0);
    state.member = { groupId: 'g', generationId: 7, memberId: 'm2', coordinatorId: 1 };
    publisher.flush();
    await producer.called(1);
    assert.equal(producer.calls[0]!.group.generationId, 7);
    producer.commit();
    await publisher.idle();
    assert.deepEqual(acks, ['x']);
  });

  it('commits offsets alone when records finish without output', async () => {
    const { producer, publisher, take } = setup();
    producer.auto = true;
    const [entry] = take(2, 40);
    entry!.done = true;
    publisher.flush();
    await publisher.idle();
    assert.equal(producer.calls.length, 1);
    assert.deepEqual(values(producer.calls[0]!), []);
    assert.deepEqual(offsets(producer.calls[0]!), ['2@41']);
  });

  it('under random completion orders and failures, commits each output once and only with an offset past it', async () => {
    for (let seed = 1; seed <= 30; seed += 1) {
      let state = seed;
      const random = () => (state = (state * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
      const { producer, publisher, take, output, ledger } = setup();
      const acks: string[] = [];
      const entries = [0, 1, 2].flatMap((partition) =>
        take(partition, ...Array.from({ length: 40 }, (_, i) => i)),
      );
      const order = entries.map((entry) => ({ entry, key: random() })).sort((x, y) => x.key - y.key);
      let next = 0;
      let committedOutputs = 0;
      for (let turn = 0; next < order.length || committedOutputs < entries.length; turn += 1) {
        assert.ok(turn < 20_000, `seed ${seed}: no progress`);
        if (next < order.length && random() < 0.6) {
          const size = 1 + Math.floor(random() * 4);
          const group = order.slice(next, next + size).map(({ entry }) => entry);
          next += group.length;
          output(group, acks, String(next));
        }
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (producer.inFlight > 0) {
          if (random() < 0.2) producer.fail(new Error('transient'));
          else {
            producer.commit();
            committedOutputs = producer.committed.reduce((sum, batch) => sum + values(batch).length, 0);
          }
        }
      }
      await publisher.idle();
      // Every committed output lies below the offset its own transaction committed for its partition,
      // and above the one committed before it.
      const committedUpTo = new Map<number, number>();
      const seen = new Set<string>();
      for (const batch of producer.committed) {
        const limits = new Map(batch.offsets.map((o) => [o.partition, Number(o.offset)]));
        for (const value of values(batch)) {
          const [partition, offset] = value.split(':').map(Number) as [number, number];
          assert.ok(!seen.has(value), `seed ${seed}: ${value} committed twice`);
          seen.add(value);
          const limit = limits.get(partition) ?? committedUpTo.get(partition) ?? 0;
          assert.ok(offset < limit, `seed ${seed}: ${value} committed without an offset past it`);
          assert.ok(
            offset >= (committedUpTo.get(partition) ?? 0),
            `seed ${seed}: ${value} below an earlier commit`,
          );
        }
        for (const [partition, offset] of limits) committedUpTo.set(partition, offset);
      }
      assert.equal(seen.size, entries.length, `seed ${seed}: every output committed`);
      for (const partition of [0, 1, 2]) assert.equal(committedUpTo.get(partition), 40);
      assert.equal(ledger.committable().length, 0);
    }
  });

  it('compares offsets as numbers', () => {
    assert.ok(offsetBelow('9', '10'));
    assert.ok(!offsetBelow('10', '9'));
    assert.ok(offsetBelow('123', '124'));
    assert.ok(!offsetBelow('124', '124'));
  });
});
