import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RecordEncoder } from '../src/codec/predictions.js';
import { readSchemaFile, registerValueSchema } from '../src/codec/registry.js';
import { RequestDecoder } from '../src/codec/requests.js';
import { REGISTRY_URL, createTopics, registry, type TestTopics } from './harness.js';

describe('codec through the real schema registry', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  before(async () => {
    topics = await createTopics('codec', 1);
  });
  after(async () => topics.remove());

  it('round-trips a FeatureEvent and a Prediction with the Confluent framing', async () => {
    const schema = await readSchemaFile('feature-event.avsc');
    const id = await registerValueSchema(registry, { url: REGISTRY_URL! }, topics.requests, schema);
    assert.equal(
      await registerValueSchema(registry, { url: REGISTRY_URL! }, topics.requests, schema),
      id,
      'registering again is idempotent',
    );
    const event = {
      request_id: 'r-1',
      entity_key: 'e-1',
      event_time: 1_700_000_000_123,
      features: { amount: 3.5, merchant_risk: 0.25 },
    };
    const bytes = await registry.encode(id, event);
    assert.equal(bytes[0], 0);
    assert.equal(bytes.readInt32BE(1), id);
    const result = await new RequestDecoder(registry, ['amount', 'merchant_risk']).decode(bytes);
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual({ ...result.event, features: { ...result.event.features } }, event);

    const predictionId = await registerValueSchema(
      registry,
      { url: REGISTRY_URL! },
      topics.predictions,
      await readSchemaFile('prediction.avsc'),
    );
    const prediction = {
      request_id: 'r-1',
      entity_key: 'e-1',
      model_name: 'fraud',
      model_version: '2',
      route: 'primary',
      outputs: { score: 0.125, label: 0 },
      event_time: 1,
      scored_at: 2,
    };
    const encoded = await new RecordEncoder(registry, predictionId).encode(prediction);
    const decoded = (await registry.decode(encoded)) as typeof prediction;
    assert.deepEqual({ ...decoded, outputs: { ...decoded.outputs } }, prediction);
  });

  it('keeps serving when producers add an optional field (a new schema version)', async () => {
    const schema = await readSchemaFile('feature-event.avsc');
    await registerValueSchema(registry, { url: REGISTRY_URL! }, topics.requests, schema);
    const evolved = {
      ...schema,
      fields: [...(schema.fields as object[]), { name: 'channel', type: ['null', 'string'], default: null }],
    };
    const newId = await registerValueSchema(registry, { url: REGISTRY_URL! }, topics.requests, evolved);
    const bytes = await registry.encode(newId, {
      request_id: 'r-2',
      entity_key: 'e-2',
      event_time: 5,
      features: { amount: 1 },
      channel: 'web',
    });
    const result = await new RequestDecoder(registry, ['amount']).decode(bytes);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.event.request_id, 'r-2');
  });
});
