/**
 * Delivery under faults, counted: in each scenario a writer puts fraud events with unique request
 * ids on the requests topic (one in fifty lacks a feature and must be dead-lettered) while
 * something breaks, and every id the broker acknowledged is accounted for: scored, dead-lettered or
 * lost (counting.ts). None may be lost. Repeats are counted and printed; there may be none after a
 * graceful stop, nor in exactly-once mode. Each scenario runs in each delivery mode this run's
 * client supports (STREAMSCORE_TEST_DELIVERY narrows them; see deliveryModes()).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Prediction } from '../src/codec/predictions.js';
import { readSchemaFile, registerValueSchema } from '../src/codec/registry.js';
import {
  DeliveryRun,
  OutputReader,
  PrivateBroker,
  deliveryModes,
  joins,
  orderViolation,
  plannedEvents,
  published,
  runLabel,
  summaryLine,
  type DeliveryMode,
  type Tally,
} from './counting.js';
import { createTopics, kafka, registry, registryClient, uniqueName, waitFor } from './harness.js';

/** Events per second the writer offers while a scenario runs. */
const RATE = 400;
/** The writer stops at the end of a scenario, once at least this many were acknowledged. */
const EVENTS = 3_000;
/** More than any scenario writes at RATE; the writer stops early only if they run out. */
const POOL = 40_000;

function report(mode: DeliveryMode, scenario: string, counted: Tally, notes: string[] = []): void {
  process.stdout.write(summaryLine(`${runLabel(mode)}, ${scenario}`, counted, notes));
}

/** What holds in every scenario: each id accounted for, with the output its event calls for. */
function assertAccounted(counted: Tally, run: DeliveryRun, noRepeats = false): void {
  assert.deepEqual(run.reader!.behind, [], 'the outputs were read to their end');
  assert.equal(
    counted.lost,
    0,
    `${counted.lost} of ${counted.produced} events have no output, e.g. ${counted.lostIds.join(', ')}; ` +
      `${counted.uncommitted} records of the requests topic left uncommitted\n${run.logTails()}`,
  );
  assert.equal(counted.misrouted, 0, 'poison events are dead-lettered and only they are');
  assert.equal(counted.unknown, 0, 'every output is for an event the writer wrote');
  assert.equal(counted.produced, counted.scored + counted.deadLettered);
  if (noRepeats || run.mode === 'exactly-once') {
    assert.equal(
      counted.duplicateIds,
      0,
      `${counted.duplicateIds} events have more than one output (${counted.extraCopies} extra)\n${run.logTails()}`,
    );
  }
}

describe('delivery: the count', () => {
  it('reads committed output only, to the end past transaction markers', async () => {
    const topics = await createTopics('counting', 1);
    const producer = kafka.producer({
      transactionalId: uniqueName('counting'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    let reader: OutputReader | undefined;
    try {
      const schemaId = await registerValueSchema(
        registryClient,
        topics.predictions,
        await readSchemaFile('prediction.avsc'),
      );
      const prediction = (id: string): Prediction => ({
        request_id: id,
        entity_key: 'acct-1',
        model_name: 'fraud',
        model_version: '2',
        route: 'primary',
        outputs: { score: 0.5 },
        event_time: Date.now(),
        scored_at: Date.now(),
      });
      const transaction = async (ids: string[], end: 'commit' | 'abort' | 'open') => {
        const messages = [];
        for (const id of ids) {
          messages.push({ key: 'acct-1', value: await registry.encode(schemaId, prediction(id)) });
        }
        const open = await producer.transaction();
        await open.send({ topic: topics.predictions, messages });
        if (end === 'commit') await open.commit();
        if (end === 'abort') await open.abort();
      };
      await transaction(['a-0', 'a-1'], 'commit');
      await transaction(['b-0'], 'abort');
      await transaction(['a-0', 'c-0'], 'commit');
      // The last records of the partition are a commit marker: the reader must pass it.
      reader = await OutputReader.start(kafka, topics);
      await reader.finish(10_000);
      assert.deepEqual(reader.behind, []);
      assert.deepEqual(Object.fromEntries(reader.predictions), { 'a-0': 2, 'a-1': 1, 'c-0': 1 });
      // An open transaction holds the last stable offset, the end for a committed reader: its
      // records are not output (yet), and the reader ends before them.
      await transaction(['d-0'], 'open');
      reader = await OutputReader.start(kafka, topics);
      await reader.finish(10_000);
      assert.deepEqual(reader.behind, []);
      assert.deepEqual(Object.fromEntries(reader.predictions), { 'a-0': 2, 'a-1': 1, 'c-0': 1 });
    } finally {
      await reader?.close();
      await producer.disconnect();
      await topics.remove();
    }
  });
});

let privateBroker: Promise<PrivateBroker> | undefined;
after(async () => {
  const broker = await privateBroker?.catch(() => undefined);
  await broker?.down();
});

for (const mode of deliveryModes()) {
  describe(`delivery: ${mode}`, () => {
    it('kill -9 of a replica mid-stream, then a restart: nothing lost', async () => {
      const run = await DeliveryRun.open('crash', mode, { partitions: 3 });
      try {
        const plan = plannedEvents(POOL, { seed: 5, runId: `crash-${mode}` });
        await run.startReader();
        const first = run.replica();
        await first.ready();
        const writer = await run.startWriter(plan.events, { rate: RATE });
        await waitFor('500 predictions before the kill', async () => (await published(first)) >= 500);
        const before = await published(first);
        assert.ok(!writer.done, 'events are still being written when the replica is killed');
        const killed = await first.stop('SIGKILL');
        assert.equal(killed.signal, 'SIGKILL');
        // It joins once the killed replica's session (6 s) expired.
        const second = run.replica();
        await second.ready();
        await writer.finish(EVENTS);
        const counted = await run.settle(plan.poison);
        report(mode, 'kill -9 of a replica', counted, [`${before} published before the kill`]);
        assertAccounted(counted, run);
        // A replica that never committed would repeat all it published before the kill.
        assert.ok(counted.extraCopies < before, `${counted.extraCopies} repeats of ${before} published`);
      } finally {
        await run.close();
      }
    });

    it('SIGTERM of a replica mid-stream, then a restart: nothing lost, nothing repeated', async () => {
      const run = await DeliveryRun.open('sigterm', mode, { partitions: 3 });
      try {
        const plan = plannedEvents(POOL, { seed: 7, runId: `sigterm-${mode}` });
        await run.startReader();
        const first = run.replica();
        await first.ready();
        const writer = await run.startWriter(plan.events, { rate: RATE });
        await waitFor('500 predictions before the stop', async () => (await published(first)) >= 500);
        assert.ok(!writer.done, 'events are still being written when the replica stops');
        const stopped = await first.stop('SIGTERM');
        assert.deepEqual(stopped, { code: 0, signal: null }, first.output());
        const second = run.replica();
        await second.ready();
        await writer.finish(EVENTS);
        const counted = await run.settle(plan.poison);
        report(mode, 'SIGTERM of a replica', counted);
        // serve scores, publishes and commits all it took in before it exits.
        assertAccounted(counted, run, true);
      } finally {
        await run.close();
      }
    });

    it('kill -9 of the broker, restarted on its data: serve stalls, resumes within seconds, loses nothing', async () => {
      privateBroker ??= PrivateBroker.up();
      const broker = await privateBroker;
      const run = await DeliveryRun.open('outage', mode, {
        partitions: 3,
        client: broker.client,
        brokers: broker.brokers,
      });
      try {
        const plan = plannedEvents(POOL, { seed: 41, runId: `outage-${mode}` });
        const serve = run.replica();
        await serve.ready();
        const readiness = async () => (await fetch(`http://127.0.0.1:${serve.metricsPort}/readyz`)).status;
        // The writer goes on through the outage; what the broker did not acknowledge is not counted.
        const writer = await run.startWriter(plan.events, { rate: RATE, tolerant: true });
        await waitFor('500 predictions before the kill', async () => (await published(serve)) >= 500);
        await broker.kill();
        const killedAt = Date.now();
        await waitFor('/readyz to answer 503', async () => (await readiness()) === 503, 30_000);
        await broker.restart();
        const back = Date.now();
        const before = await published(serve);
        let resumedAt = 0;
        await waitFor(
          'scoring to resume',
          async () => {
            if (writer.firstAckAfter(back) === undefined || (await published(serve)) <= before) return false;
            resumedAt = Date.now();
            return true;
          },
          30_000,
        ).catch((error: Error) => {
          throw new Error(`${error.message}\n${serve.output()}`);
        });
        const resumedAfter = resumedAt - Math.max(back, writer.firstAckAfter(back)!);
        await waitFor('serve to be ready again', async () => (await readiness()) === 200, 30_000);
        await writer.finish(writer.acknowledged.length + 500);
        const counted = await run.settle(plan.poison);
        report(mode, 'kill -9 of the broker', counted, [
          `the broker answered again after ${back - killedAt} ms`,
          `scoring resumed ${resumedAfter} ms after it took new events`,
        ]);
        assertAccounted(counted, run);
        assert.ok(resumedAfter < 5_000, `scoring resumed ${resumedAfter} ms after the broker answered`);
        assert.ok(
          serve.lines.some((line) => line.stall === 'broker' && /stalled/.test(String(line.msg))),
          'the stall is logged',
        );
      } finally {
        await run.close();
      }
    });

    it('1 -> 3 -> 1 replicas under load: nothing lost, per-key order kept', async () => {
      const run = await DeliveryRun.open('scale', mode, { partitions: 6 });
      try {
        const keys = 300;
        const plan = plannedEvents(POOL, {
          seed: 31,
          runId: `scale-${mode}`,
          keyOf: (i) => `acct-${i % keys}`,
        });
        await run.startReader();
        const first = run.replica();
        await first.ready();
        const writer = await run.startWriter(plan.events, { rate: RATE });
        await waitFor('500 predictions from the first replica', async () => (await published(first)) >= 500);
        const second = run.replica();
        const third = run.replica();
        await Promise.all([second.ready(), third.ready()]);
        // The joins moved partitions: the first replica was assigned again, with fewer of them.
        await waitFor('the three replicas to share the partitions', () =>
          [first, second, third].every(
            (replica) => (joins(replica, run.topics.requests).at(-1) ?? []).length === 2,
          ),
        );
        await waitFor('the new replicas to score', async () => {
          for (const replica of [second, third]) if ((await published(replica)) < 100) return false;
          return true;
        }).catch((error: Error) => {
          throw new Error(
            `${error.message}\n${[first, second, third].map((r, i) => `replica ${i + 1}:\n${r.output()}`).join('\n')}`,
          );
        });
        assert.ok(!writer.done, 'events are still being written when two replicas leave');
        const left = await Promise.all([first.stop('SIGTERM'), second.stop('SIGTERM')]);
        assert.deepEqual(
          left,
          [
            { code: 0, signal: null },
            { code: 0, signal: null },
          ],
          `${first.output()}\n${second.output()}`,
        );
        await waitFor(
          'the last replica to take every partition',
          () => (joins(third, run.topics.requests).at(-1) ?? []).length === 6,
        );
        await writer.finish(EVENTS);
        const counted = await run.settle(plan.poison);
        report(mode, '1 -> 3 -> 1 replicas', counted);
        assertAccounted(counted, run);
        assert.equal(orderViolation(run.reader!.scored), undefined);
        // Commits every 100 ms bound the repeats; a replica that left without committing would
        // repeat all it scored.
        assert.ok(counted.extraCopies < counted.produced / 6, `${counted.extraCopies} repeats`);
      } finally {
        await run.close();
      }
    });

    it('a replica paused past its session timeout (zombie), then resumed: nothing lost', async () => {
      const partitions = 4;
      const run = await DeliveryRun.open('zombie', mode, { partitions });
      try {
        const plan = plannedEvents(POOL, { seed: 13, runId: `zombie-${mode}` });
        await run.startReader();
        const zombie = run.replica();
        await zombie.ready();
        const writer = await run.startWriter(plan.events, { rate: RATE });
        const other = run.replica();
        await other.ready();
        const shareOf = (replica: typeof other) => joins(replica, run.topics.requests).at(-1) ?? [];
        await waitFor(
          'the two replicas to share the partitions',
          () => shareOf(zombie).length === partitions / 2 && shareOf(other).length === partitions / 2,
        );
        await waitFor('both replicas to score', async () => {
          for (const replica of [zombie, other]) if ((await published(replica)) < 100) return false;
          return true;
        });
        zombie.child.kill('SIGSTOP');
        const pausedAt = Date.now();
        // The group expires the paused member's session and gives all to the other replica.
        await waitFor(
          'the other replica to take every partition',
          () => shareOf(other).length === partitions,
        );
        const takeover = Date.now() - pausedAt;
        const taken = await published(other);
        await waitFor('the other replica to score on', async () => (await published(other)) >= taken + 200);
        assert.ok(!writer.done, 'events are still being written when the zombie resumes');
        const zombieJoins = joins(zombie, run.topics.requests).length;
        zombie.child.kill('SIGCONT');
        await waitFor(
          'the resumed replica to join its group again',
          () => joins(zombie, run.topics.requests).length > zombieJoins,
        ).catch((error: Error) => {
          throw new Error(`${error.message}\n${zombie.output()}`);
        });
        await writer.finish(EVENTS);
        const counted = await run.settle(plan.poison);
        report(mode, 'zombie replica', counted, [
          `the other replica took over ${takeover} ms after the pause`,
        ]);
        assertAccounted(counted, run);
        const stopped = await zombie.exited;
        assert.deepEqual(stopped, { code: 0, signal: null }, zombie.output());
      } finally {
        await run.close();
      }
    });
  });
}
