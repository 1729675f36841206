/**
 * Progressive rollouts on the real broker, under steady load, with serve following the routing
 * topic: a good candidate is promoted step by step; a candidate scoring far from the primary and
 * one that errs are each rolled back within their first step; every request id produced meanwhile
 * is scored, none dead-lettered.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Prediction } from '../src/codec/predictions.js';
import type { RolloutDecision } from '../src/rollout/controller.js';
import {
  ServeProcess,
  collect,
  createTopics,
  decodeAll,
  fraudEvents,
  kafka,
  produceEvents,
  runCli,
  uniqueName,
  type TestTopics,
} from './harness.js';

describe('rollout: progressive canary with automatic promotion and rollback', () => {
  let models: string;
  let topics: TestTopics & { remove(): Promise<void> };
  let env: Record<string, string>;
  let serve: ServeProcess;

  before(async () => {
    models = mkdtempSync(join(tmpdir(), 'streamscore-rollout-'));
    cpSync('models/fraud/2', join(models, 'fraud', '2'), { recursive: true });
    // 3: fraud/2 under another version name, a candidate that scores exactly like the primary.
    cpSync('models/fraud/2', join(models, 'fraud', '3'), { recursive: true });
    const metadata = join(models, 'fraud', '3', 'model.json');
    writeFileSync(
      metadata,
      JSON.stringify({ ...(JSON.parse(readFileSync(metadata, 'utf8')) as object), version: '3' }),
    );
    // 8: valid, but its scores sit around 0.73; 6: +Inf for every row whose amount is not 0.
    cpSync('test/fixtures/models/fraud/8', join(models, 'fraud', '8'), { recursive: true });
    cpSync('test/fixtures/models/fraud/6', join(models, 'fraud', '6'), { recursive: true });
    topics = await createTopics('rollout', 3);
    const base = uniqueName('rollout');
    env = {
      STREAMSCORE_MODELS_DIR: models,
      STREAMSCORE_MODEL_VERSION: '2',
      STREAMSCORE_ROUTING_SOURCE: 'topic',
      STREAMSCORE_ROUTING_TOPIC: `${base}.routing`,
      STREAMSCORE_ROLLOUT_TOPIC: `${base}.rollouts`,
    };
    serve = ServeProcess.start(topics, env);
    await serve.ready();
  });
  after(async () => {
    await serve.stop('SIGKILL');
    await topics.remove();
    const admin = kafka.admin();
    await admin.connect();
    await admin
      .deleteTopics({ topics: [env.STREAMSCORE_ROUTING_TOPIC!, env.STREAMSCORE_ROLLOUT_TOPIC!] })
      .catch(() => undefined);
    await admin.disconnect();
    rmSync(models, { recursive: true, force: true });
  });

  /** `streamscore rollout ARGS` with the test's topics. */
  function rollout(args: string[]) {
    return runCli(
      ['rollout', ...args],
      {
        KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
        SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL!,
        STREAMSCORE_REQUESTS_TOPIC: topics.requests,
        STREAMSCORE_PREDICTIONS_TOPIC: topics.predictions,
        STREAMSCORE_DLQ_TOPIC: topics.dlq,
        STREAMSCORE_SHADOW_TOPIC: topics.shadow,
        ...env,
      },
      90_000,
    );
  }

  const start = (canary: string) =>
    rollout([
      'start',
      '--canary',
      canary,
      '--steps',
      '20%:3s,100%:3s',
      '--min-events',
      '200',
      '--check-every',
      '500ms',
    ]);

  async function decisions(): Promise<RolloutDecision[]> {
    const status = await rollout(['status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    return JSON.parse(status.stdout) as RolloutDecision[];
  }

  it('promotes a good candidate, rolls back a shifted one and a failing one, and loses no event', async () => {
    const events = fraudEvents(60_000, { seed: 21, runId: 'rollout' });
    const load = produceEvents(topics.requests, events, { rate: 2_500 });

    const good = await start('3');
    assert.equal(good.code, 0, `${good.stdout}\n${good.stderr}`);
    assert.deepEqual(
      (await decisions()).map((d) => `${d.step}:${d.decision}`),
      ['0:start', '1:next', '2:next', '2:promote'],
    );

    const shifted = await start('8');
    assert.equal(shifted.code, 1, shifted.stdout);
    const shiftedEnd = (await decisions()).at(-1)!;
    assert.equal(`${shiftedEnd.step}:${shiftedEnd.decision}`, '1:rollback');
    assert.match(shiftedEnd.reason, /scores/);

    const failing = await start('6');
    assert.equal(failing.code, 1, failing.stdout);
    const failingEnd = (await decisions()).at(-1)!;
    assert.equal(`${failingEnd.step}:${failingEnd.decision}`, '1:rollback');
    assert.match(failingEnd.reason, /failures/);

    await load;
    const predictions = await decodeAll<Prediction>(
      await collect(topics.predictions, { count: events.length, timeoutMs: 60_000, settleMs: 1_000 }),
    );
    const scored = new Set(predictions.map((p) => p.request_id));
    assert.equal(events.filter((e) => !scored.has(e.request_id)).length, 0, 'every event scored');
    const dlq = await collect(topics.dlq, { count: 0, timeoutMs: 1_000, settleMs: 500 });
    assert.equal(
      dlq.length,
      0,
      'nothing dead-lettered: what the failing canary could not score, the primary did',
    );
    const versions = new Set(predictions.map((p) => `${p.model_version}:${p.route}`));
    for (const seen of ['2:primary', '3:canary', '3:primary', '8:canary', '3:fallback']) {
      assert.ok(versions.has(seen), `${seen} in ${[...versions].join(', ')}`);
    }
  });
});
