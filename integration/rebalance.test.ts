/**
 * Scaling under load: a second replica joins the group while events flow, then the first leaves.
 * Every request id is accounted for (scored; repeats counted), and per key the order of first
 * predictions is the order the events were written in.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Prediction } from '../src/codec/predictions.js';
import {
  ServeProcess,
  collect,
  createTopics,
  decodeAll,
  fraudEvents,
  metricValue,
  produceEvents,
  waitFor,
  type TestTopics,
} from './harness.js';

describe('serve: replicas join and leave under load', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  const replicas: ServeProcess[] = [];

  before(async () => {
    topics = await createTopics('rebalance', 6);
  });
  after(async () => {
    for (const replica of replicas) await replica.stop('SIGKILL');
    await topics.remove();
  });

  it('loses nothing and keeps per-key order while one replica joins and another leaves', async () => {
    const keys = 300;
    const events = fraudEvents(24_000, { seed: 31, runId: 'scale', keyOf: (i) => `acct-${i % keys}` });
    const env = {
      STREAMSCORE_BATCH_MAX_ROWS: '100',
      STREAMSCORE_COMMIT_INTERVAL_MS: '100',
      STREAMSCORE_SESSION_TIMEOUT_MS: '6000',
    };
    const first = ServeProcess.start(topics, env);
    replicas.push(first);
    await first.ready();
    const producing = produceEvents(topics.requests, events, { rate: 4_000 });
    await waitFor(
      '4,000 predictions from the first replica',
      async () => metricValue(await first.metrics(), 'streamscore_predictions_published_total') >= 4_000,
    );
    const second = ServeProcess.start(topics, env);
    replicas.push(second);
    await second.ready();
    // The join moved partitions: the first replica was assigned again, with fewer of them.
    await waitFor(
      'the first replica to rejoin',
      () => first.lines.filter((line) => line.msg === 'joined consumer group').length >= 2,
    );
    await waitFor(
      'the second replica to score',
      async () => metricValue(await second.metrics(), 'streamscore_predictions_published_total') >= 2_000,
    ).catch((error: Error) => {
      throw new Error(
        `${error.message}\nfirst replica:\n${first.output()}\nsecond replica:\n${second.output()}`,
      );
    });
    const left = await first.stop('SIGTERM');
    assert.deepEqual(left, { code: 0, signal: null }, first.output());
    await producing;

    const predictions = await decodeAll<Prediction>(
      await collect(topics.predictions, { count: events.length, timeoutMs: 90_000, settleMs: 3_000 }),
    );
    const indexOf = (id: string) => Number(id.split('-').pop());
    const seen = new Set(predictions.map((p) => p.request_id));
    const missing = events.filter((event) => !seen.has(event.request_id)).length;
    assert.equal(missing, 0, `${missing} of ${events.length} events never scored`);
    // Per key, in offset order, each first prediction of an event comes after those of the events
    // written before it; a repeat (at-least-once) may come later, but never reorders first ones.
    const byKey = new Map<string, typeof predictions>();
    for (const p of predictions) byKey.set(p.entity_key, [...(byKey.get(p.entity_key) ?? []), p]);
    for (const [key, list] of byKey) {
      const firsts: number[] = [];
      const counted = new Set<string>();
      for (const p of list.sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)))) {
        if (counted.has(p.request_id)) continue;
        counted.add(p.request_id);
        firsts.push(indexOf(p.request_id));
      }
      const wrong = firsts.findIndex((index, i) => i > 0 && index < firsts[i - 1]!);
      assert.equal(wrong, -1, `${key}: event ${firsts[wrong]} first scored after ${firsts[wrong - 1]}`);
    }
    const repeats = predictions.length - seen.size;
    const revoked = metricValue(await second.metrics(), 'streamscore_revoked_events_total');
    process.stdout.write(
      `# rebalance test: ${events.length} events, ${predictions.length} predictions, ${repeats} repeats\n`,
    );
    assert.ok(repeats < 4_000, `${repeats} repeats`);
    assert.equal(revoked, 0, 'the second replica lost no partition');
  });
});
