import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Prediction } from '../src/codec/predictions.js';
import {
  ServeProcess,
  collect,
  createTopics,
  fraudEvents,
  metricValue,
  produceEvents,
  registry,
  sleep,
  type TestTopics,
} from './harness.js';

describe('serve: kill -9 mid-stream, then restart', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  const replicas: ServeProcess[] = [];

  before(async () => {
    topics = await createTopics('crash', 3);
  });
  after(async () => {
    for (const replica of replicas) await replica.stop('SIGKILL');
    await topics.remove();
  });

  it('loses nothing: every request id gets a prediction (repeats allowed)', async () => {
    const first15k = fraudEvents(15_000, { seed: 5, runId: 'crash' });
    const last5k = fraudEvents(5_000, { seed: 6, runId: 'crash-after' });
    const ids = [...first15k, ...last5k].map((event) => event.request_id);
    // Small batches and a short linger keep many batches in flight when the kill lands.
    const env = {
      STREAMSCORE_BATCH_MAX_ROWS: '50',
      STREAMSCORE_COMMIT_INTERVAL_MS: '100',
      STREAMSCORE_MAX_PENDING_EVENTS: '500',
      // The restarted replica waits for the killed one's session to expire before the group rebalances.
      STREAMSCORE_SESSION_TIMEOUT_MS: '6000',
    };
    await produceEvents(topics.requests, first15k);
    const first = ServeProcess.start(topics, env);
    replicas.push(first);
    await first.ready();
    // Kill once it is well into the stream but not done.
    for (let i = 0; i < 600; i += 1) {
      const published = metricValue(await first.metrics(), 'streamscore_predictions_published_total');
      if (published >= 3_000) break;
      await sleep(20);
    }
    const before = metricValue(await first.metrics(), 'streamscore_predictions_published_total');
    assert.ok(before < 15_000, `serve finished (${before}) before the kill; the test needs it mid-stream`);
    const killed = await first.stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');

    const second = ServeProcess.start(topics, env);
    replicas.push(second);
    await second.ready();
    await produceEvents(topics.requests, last5k);

    const records = await collect(topics.predictions, {
      count: ids.length,
      timeoutMs: 120_000,
      settleMs: 3_000,
    });
    const seen = new Map<string, number>();
    for (const record of records) {
      const { request_id } = (await registry.decode(record.value!)) as Prediction;
      seen.set(request_id, (seen.get(request_id) ?? 0) + 1);
    }
    const missing = ids.filter((id) => !seen.has(id));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${ids.length} events never scored`);
    const repeats = records.length - seen.size;
    // At-least-once: a kill repeats what was consumed but not yet committed (pending events plus
    // about one commit interval of output). A replica that never committed would repeat all 15,000.
    assert.ok(repeats <= 5_000, `${repeats} repeated predictions`);
    process.stdout.write(
      `# crash test: ${ids.length} events, ${records.length} predictions, ${repeats} repeats\n`,
    );
  });
});
