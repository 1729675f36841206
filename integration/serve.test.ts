import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Prediction } from '../src/codec/predictions.js';
import { ModelRunner } from '../src/inference/runner.js';
import { buildMatrix } from '../src/inference/tensor.js';
import { ModelRepository } from '../src/models/repository.js';
import { EventGenerator, readFeatureSpecs } from '../src/produce/generator.js';
import {
  ServeProcess,
  collect,
  connectProducer,
  createTopics,
  kafka,
  metricValue,
  registerFeatureSchema,
  registry,
  type TestTopics,
} from './harness.js';

const EVENTS = 10_000;

describe('serve: 10,000 events on a real broker and registry', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let serve: ServeProcess | undefined;

  before(async () => {
    topics = await createTopics('serve', 3);
  });
  after(async () => {
    await serve?.stop('SIGKILL');
    await topics.remove();
  });

  it('publishes exactly one prediction per event, scored as a direct ONNX run scores the same rows', async () => {
    const repository = new ModelRepository('models');
    const model = await repository.load('fraud', '1');
    const generator = new EventGenerator({
      featureNames: model.metadata.inputs[0]!.features,
      specs: readFeatureSpecs('training/fraud_features.json'),
      seed: 11,
      keys: 500,
      runId: topics.requests,
    });
    const schemaId = await registerFeatureSchema(topics.requests);
    const sent = new Map<string, { key: string; features: Record<string, number> }>();
    const producer = await connectProducer();
    try {
      for (let start = 0; start < EVENTS; start += 1_000) {
        const messages = [];
        for (let i = 0; i < 1_000; i += 1) {
          const event = generator.next();
          sent.set(event.request_id, { key: event.entity_key, features: event.features });
          messages.push({ key: event.entity_key, value: await registry.encode(schemaId, event) });
        }
        await producer.send({ topic: topics.requests, messages });
      }
    } finally {
      await producer.disconnect();
    }

    serve = ServeProcess.start(topics, {
      STREAMSCORE_MODEL: 'fraud',
      STREAMSCORE_MODEL_VERSION: '1',
      STREAMSCORE_BATCH_MAX_ROWS: '256',
      STREAMSCORE_BATCH_LINGER_MS: '5',
    });
    await serve.ready();
    const records = await collect(topics.predictions, { count: EVENTS, timeoutMs: 90_000, settleMs: 2_000 });
    assert.equal(records.length, EVENTS, `expected exactly ${EVENTS} predictions, got ${records.length}`);

    const predictions = new Map<string, Prediction>();
    for (const record of records) {
      const prediction = (await registry.decode(record.value!)) as Prediction;
      assert.ok(!predictions.has(prediction.request_id), `request ${prediction.request_id} scored twice`);
      predictions.set(prediction.request_id, prediction);
      assert.equal(record.key, sent.get(prediction.request_id)?.key, 'prediction keyed by the event key');
    }
    assert.deepEqual([...predictions.keys()].sort(), [...sent.keys()].sort());

    // The same rows through ONNX Runtime directly, in one call.
    const runner = await ModelRunner.load(model, { executionProvider: 'cpu', threads: 1 });
    const ids = [...sent.keys()];
    const direct = await runner.score(
      buildMatrix(
        ids.map((id) => sent.get(id)!.features),
        runner.featureNames,
      ),
      ids.length,
    );
    await runner.release();
    const scores = direct.get('score')!;
    const labels = direct.get('label')!;
    ids.forEach((id, i) => {
      const prediction = predictions.get(id)!;
      assert.equal(prediction.model_name, 'fraud');
      assert.equal(prediction.model_version, '1');
      assert.equal(prediction.route, 'primary');
      assert.ok(
        Math.abs(prediction.outputs.score! - scores[i]!) <= 1e-6,
        `${id}: ${prediction.outputs.score} vs ${scores[i]}`,
      );
      assert.equal(prediction.outputs.label, labels[i]);
      assert.ok(Number(prediction.scored_at) >= Number(prediction.event_time));
    });

    const metrics = await serve.metrics();
    assert.equal(metricValue(metrics, 'streamscore_events_consumed_total'), EVENTS);
    assert.equal(metricValue(metrics, 'streamscore_predictions_published_total', { version: '1' }), EVENTS);
    const batches = metricValue(metrics, 'streamscore_batch_rows_count');
    assert.ok(
      batches > 0 && batches <= EVENTS / 20,
      `${batches} runtime calls for ${EVENTS} events: not batching`,
    );
    assert.equal(metricValue(metrics, 'streamscore_end_to_end_seconds_count'), EVENTS);
    assert.match(metrics, /streamscore_consumer_lag_messages\{topic="[^"]+",partition="0"\} 0/);
    const ready = await fetch(`http://127.0.0.1:${serve.metricsPort}/readyz`);
    assert.equal(ready.status, 200);

    // SIGTERM: finish, commit, leave the group, exit 0; every offset is committed.
    const exit = await serve.stop('SIGTERM');
    assert.equal(exit.code, 0, serve.output());
    const admin = kafka.admin();
    await admin.connect();
    try {
      const ends = await admin.fetchTopicOffsets(topics.requests);
      const [committed] = await admin.fetchOffsets({ groupId: topics.group, topics: [topics.requests] });
      for (const end of ends) {
        const partition = committed!.partitions.find((p) => p.partition === end.partition);
        assert.equal(
          partition?.offset,
          end.high,
          `partition ${end.partition} committed ${partition?.offset} of ${end.high}`,
        );
      }
    } finally {
      await admin.disconnect();
    }
  });
});
