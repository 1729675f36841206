import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import type { Prediction } from '../src/codec/predictions.js';
import { encodeRoutingRecord } from '../src/kafka/routing-topic.js';
import {
  BROKERS,
  REGISTRY_URL,
  ServeProcess,
  collect,
  connectProducer,
  createTopics,
  decodeAll,
  fraudEvents,
  kafka,
  metricValue,
  produceEvents,
  registryClient,
  runCli,
  uniqueName,
  waitFor,
  type TestTopics,
} from './harness.js';

// kafkajs exports the enum from CommonJS in a way ES imports cannot name.
const { ConfigResourceTypes } = kafkajs;

/** The version a replica's latest 'routing live' line names as primary (undefined before one). */
function livePrimary(serve: ServeProcess): string | undefined {
  const lines = serve.lines.filter((line) => line.msg === 'routing live');
  return (lines.at(-1)?.routing as { primary?: string } | undefined)?.primary;
}

describe('routing on a control topic, on a real broker and registry', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let routingTopic: string;
  const replicas: ServeProcess[] = [];
  let env: Record<string, string>;

  before(async () => {
    topics = await createTopics('routing', 4);
    routingTopic = uniqueName('routing-control');
    env = {
      KAFKA_BROKERS: BROKERS!,
      SCHEMA_REGISTRY_URL: REGISTRY_URL!,
      STREAMSCORE_MODELS_DIR: 'models',
      STREAMSCORE_MODEL_VERSION: '1',
      STREAMSCORE_ROUTING_TOPIC: routingTopic,
    };
  });
  after(async () => {
    for (const replica of replicas) await replica.stop('SIGKILL');
    await topics.remove();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [routingTopic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('one route set switches the primary of two replicas under load within seconds; every event scored once', async () => {
    for (let i = 0; i < 2; i += 1) {
      replicas.push(ServeProcess.start(topics, { ...env, STREAMSCORE_ROUTING_SOURCE: 'topic' }));
    }
    await Promise.all(replicas.map((replica) => replica.ready()));
    // No record yet: both run the settings' routing.
    assert.deepEqual(replicas.map(livePrimary), ['1', '1']);

    // Ten seconds of events, so the switch (route set loads and checks the version first) lands mid-stream.
    const events = fraudEvents(30_000, { seed: 31, runId: 'route' });
    const producing = produceEvents(topics.requests, events, { rate: 3_000 });
    await waitFor('4,000 predictions', async () => {
      let total = 0;
      for (const replica of replicas)
        total += metricValue(await replica.metrics(), 'streamscore_predictions_published_total');
      return total >= 4_000;
    });
    const set = await runCli(['route', 'set', '--primary', '2', '--reason', 'v2 is better'], env, 30_000);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /^primary 1 \(settings\) -> primary 2$/m);
    const written = Date.now();
    await waitFor('both replicas on v2', () => replicas.every((r) => livePrimary(r) === '2'), 3_000);
    const applyMs = Date.now() - written;
    await producing;

    const predictions = await decodeAll<Prediction>(
      await collect(topics.predictions, { count: events.length, timeoutMs: 60_000, settleMs: 2_000 }),
    );
    assert.equal(predictions.length, events.length);
    assert.deepEqual(new Set(predictions.map((p) => p.request_id)), new Set(events.map((e) => e.request_id)));
    const byVersion = (v: string) => predictions.filter((p) => p.model_version === v).length;
    assert.ok(byVersion('1') >= 4_000 && byVersion('2') > 0, `v1 ${byVersion('1')}, v2 ${byVersion('2')}`);
    assert.equal(byVersion('1') + byVersion('2'), events.length);
    for (const replica of replicas) {
      const metrics = await replica.metrics();
      assert.match(
        metrics,
        /streamscore_model_info\{model="fraud",version="2",route="primary",sha256="[0-9a-f]+"\} 1/,
      );
      assert.ok(metricValue(metrics, 'streamscore_routing_updated_at_seconds') > 0);
    }
    const shown = await runCli(['route', 'show'], env, 30_000);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^model fraud: primary 2$/m);
    assert.match(shown.stdout, /offset 0, updated .* by .*: v2 is better/);
    process.stdout.write(`# both replicas applied the record ${applyMs} ms after it was written\n`);
  });

  it('refuses a version not on disk with exit 2, and writes nothing', async () => {
    const refused = await runCli(['route', 'set', '--canary', '7', '--share', '0.1'], env, 30_000);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /ROUTING_INVALID .*nothing written/);
    assert.match(refused.stderr, /version 7 is not on disk under .*models\/fraud \(it has: 1, 2\)/);
    const records = await collect(routingTopic, { count: 1, timeoutMs: 10_000, settleMs: 1_000 });
    assert.equal(records.length, 1, 'only the first record is on the topic');
    const admin = kafka.admin();
    await admin.connect();
    try {
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: routingTopic, configNames: ['cleanup.policy'] }],
      });
      assert.equal(resources[0]?.configEntries[0]?.configValue, 'compact', 'created compacted');
    } finally {
      await admin.disconnect();
    }
  });

  it('a replica that cannot load a routed version keeps its last good routing and says so', async () => {
    // Written past `route`'s checks, as a replica with a different disk would see it.
    const value = await encodeRoutingRecord(registryClient, routingTopic, {
      model: 'fraud',
      spec: { primary: '9', shadows: [] },
      rollout: undefined,
      updatedAt: Date.now(),
      updatedBy: 'test',
      reason: 'a version this disk lacks',
    });
    const producer = await connectProducer();
    await producer.send({ topic: routingTopic, messages: [{ key: 'fraud', value }] });
    await producer.disconnect();
    for (const replica of replicas) {
      await waitFor(
        'the refusal',
        async () =>
          metricValue(await replica.metrics(), 'streamscore_routing_rejected_total', {
            model: 'fraud',
            reason: 'not_found',
          }) === 1,
        5_000,
      );
      assert.equal(livePrimary(replica), '2');
      const said = () =>
        replica.lines.filter((line) =>
          /offset 1 .*not applied; the last good routing/.test(String(line.msg)),
        );
      // The counter can be read before the log line has come through the replica's stdout.
      await waitFor('the log line saying so', () => said().length > 0, 5_000).catch((error: Error) => {
        throw new Error(`${error.message}\n${replica.output()}`);
      });
      assert.equal(said().length, 1, replica.output());
    }
  });

  it('a replica started after the records exist runs the latest good one from the start', async () => {
    await runCli(['route', 'set', '--primary', '2', '--fallback', '1'], env, 30_000).then((run) =>
      assert.equal(run.code, 0, run.stderr),
    );
    const late = ServeProcess.start(topics, { ...env, STREAMSCORE_ROUTING_SOURCE: 'topic' });
    replicas.push(late);
    await late.ready();
    const first = late.lines.find((line) => line.msg === 'routing live');
    assert.equal((first?.routing as { primary?: string }).primary, '2', late.output());
    assert.equal(
      late.lines.filter((line) => line.msg === 'routing live').length,
      1,
      'no settings routing first',
    );
  });
});
