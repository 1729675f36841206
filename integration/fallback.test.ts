/**
 * A primary that fails on real traffic, with a fallback routed, on the real broker: every event is
 * published (by the primary where it works, by the fallback where it does not), nothing is
 * dead-lettered, serving never stalls, and a primary failing batch after batch has its circuit
 * opened. Each request id is accounted for.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

describe('serve: a failing primary with a fallback', () => {
  let models: string;
  const running: ServeProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  before(() => {
    models = mkdtempSync(join(tmpdir(), 'streamscore-fallback-'));
    cpSync('models/fraud/2', join(models, 'fraud', '2'), { recursive: true });
    // 6: +Inf for every row whose amount is not 0; 9: fails on every batch that is not 2 rows.
    cpSync('test/fixtures/models/fraud/6', join(models, 'fraud', '6'), { recursive: true });
    cpSync('test/fixtures/models/fraud/9', join(models, 'fraud', '9'), { recursive: true });
  });
  after(async () => {
    for (const process of running) await process.stop('SIGKILL');
    for (const cleanup of cleanups) await cleanup();
    rmSync(models, { recursive: true, force: true });
  });

  async function scenario(primary: string, count: number) {
    const topics: TestTopics & { remove(): Promise<void> } = await createTopics(`fallback-${primary}`, 3);
    cleanups.push(() => topics.remove());
    const serve = ServeProcess.start(topics, {
      STREAMSCORE_MODELS_DIR: models,
      STREAMSCORE_MODEL_VERSION: primary,
      STREAMSCORE_FALLBACK_VERSION: '2',
      STREAMSCORE_BATCH_MAX_ROWS: '64',
    });
    running.push(serve);
    await serve.ready();
    // An amount of 0 in four events of five: version 6 scores those itself, and fails on a fifth of
    // each batch (so few that its circuit stays closed).
    const events = fraudEvents(count, { seed: 11, runId: `fallback-${primary}` }).map((event, i) =>
      i % 5 === 0 ? event : { ...event, features: { ...event.features, amount: 0 } },
    );
    await produceEvents(topics.requests, events);
    const records = await collect(topics.predictions, { count, timeoutMs: 60_000, settleMs: 1_000 });
    const predictions = await decodeAll<Prediction>(records);
    const metrics = await serve.metrics();
    await serve.stop();
    const dlq = await collect(topics.dlq, { count: 0, timeoutMs: 1_500, settleMs: 1_000 });
    return { events, predictions, records, metrics, serve, dlq };
  }

  it('publishes every event when the primary fails on real rows, the failing ones by the fallback', async () => {
    const { events, predictions, records, metrics, dlq, serve } = await scenario('6', 3_000);
    assert.equal(dlq.length, 0, 'nothing dead-lettered');
    const byId = new Map(predictions.map((p, i) => [p.request_id, { p, headers: records[i]!.headers }]));
    assert.equal(byId.size, events.length, 'every request id once');
    events.forEach((event, i) => {
      const { p, headers } = byId.get(event.request_id)!;
      if (i % 5 !== 0) {
        assert.equal(`${p.model_version}:${p.route}`, '6:primary', event.request_id);
      } else {
        assert.equal(`${p.model_version}:${p.route}`, '2:fallback', event.request_id);
        assert.equal(headers['streamscore.fallback-from'], '6');
      }
      assert.ok(Object.values(p.outputs).every(Number.isFinite));
    });
    assert.equal(metricValue(metrics, 'streamscore_fallback_events_total', { version: '6' }), 600);
    assert.equal(metricValue(metrics, 'streamscore_circuit_open', { version: '6' }), 0);
    assert.ok(!serve.lines.some((l) => /stall/.test(String(l.msg))), 'serving never stalled');
  });

  it('opens the circuit of a primary that fails every batch, and publishes everything by the fallback', async () => {
    const { events, predictions, metrics, dlq, serve } = await scenario('9', 2_000);
    assert.equal(dlq.length, 0);
    const ids = new Set(predictions.map((p) => p.request_id));
    assert.equal(events.filter((e) => !ids.has(e.request_id)).length, 0, 'every event published');
    assert.ok(predictions.every((p) => p.route === 'fallback' || p.model_version === '9'));
    assert.equal(metricValue(metrics, 'streamscore_circuit_open', { version: '9' }), 1);
    await waitFor('the circuit log line', () =>
      serve.lines.some((l) => /circuit open after \d+ failed batches/.test(String(l.msg))),
    );
    assert.equal(
      serve.lines.filter((l) => /circuit open/.test(String(l.msg))).length,
      1,
      'said once, not once a batch',
    );
  });
});
