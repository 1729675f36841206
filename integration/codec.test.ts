import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RecordEncoder } from '../src/codec/predictions.js';
import { RegistryClient, readSchemaFile, registerValueSchema } from '../src/codec/registry.js';
import { RequestDecoder } from '../src/codec/requests.js';
import { RegistrySchemas } from '../src/codec/schemas.js';
import { StreamscoreError } from '../src/errors.js';
import { createTopics, registry, registryClient, type TestTopics } from './harness.js';

const LIMITS = { maxValueBytes: 1_048_576, maxFeatures: 10_000 };

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('codec through the real schema registry', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  before(async () => {
    topics = await createTopics('codec', 1);
  });
  after(async () => topics.remove());

  it('round-trips a FeatureEvent and a Prediction with the Confluent framing', async () => {
    const schema = await readSchemaFile('feature-event.avsc');
    const id = await registerValueSchema(registryClient, topics.requests, schema);
    assert.equal(
      await registerValueSchema(registryClient, topics.requests, schema),
      id,
      'registering again is idempotent',
    );
    const event = {
      request_id: 'r-1',
      entity_key: 'e-1',
      event_time: 1_700_000_000_123,
      features: { amount: 3.5, merchant_risk: 0.25 },
    };
    // Encoded by a third-party client, decoded by ours, and the other way round.
    const bytes = await registry.encode(id, event);
    assert.equal(bytes[0], 0);
    assert.equal(bytes.readInt32BE(1), id);
    const schemas = new RegistrySchemas(registryClient);
    const result = await new RequestDecoder(schemas, LIMITS, ['amount', 'merchant_risk']).decode(bytes);
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual({ ...result.event, features: { ...result.event.features } }, event);

    const predictionId = await registerValueSchema(
      registryClient,
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
    const encoded = await new RecordEncoder(schemas, predictionId).encode(prediction);
    const decoded = (await registry.decode(encoded)) as typeof prediction;
    assert.deepEqual({ ...decoded, outputs: { ...decoded.outputs } }, prediction);
  });

  it('keeps serving when producers add an optional field (a new schema version)', async () => {
    const schema = await readSchemaFile('feature-event.avsc');
    await registerValueSchema(registryClient, topics.requests, schema);
    const evolved = {
      ...schema,
      fields: [...(schema.fields as object[]), { name: 'channel', type: ['null', 'string'], default: null }],
    };
    const newId = await registerValueSchema(registryClient, topics.requests, evolved);
    const bytes = await registry.encode(newId, {
      request_id: 'r-2',
      entity_key: 'e-2',
      event_time: 5,
      features: { amount: 1 },
      channel: 'web',
    });
    const decoder = new RequestDecoder(new RegistrySchemas(registryClient), LIMITS, ['amount']);
    const result = await decoder.decode(bytes);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.event.request_id, 'r-2');
  });

  it('answers an unknown schema id as a rejection, and a registry that is down as a retriable error', async () => {
    const unknown = Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0, 2, 0x61]);
    const decoder = new RequestDecoder(new RegistrySchemas(registryClient), LIMITS, []);
    const result = await decoder.decode(unknown);
    assert.equal(result.ok ? 'ok' : result.reason, 'UNKNOWN_SCHEMA_ID');

    const port = await closedPort();
    const down = new RegistrySchemas(
      new RegistryClient({ url: `http://user:s3cret@127.0.0.1:${port}/apis/ccompat/v7` }),
    );
    await assert.rejects(new RequestDecoder(down, LIMITS, []).decode(unknown), (error: unknown) => {
      assert.ok(error instanceof StreamscoreError);
      assert.equal(error.code, 'REGISTRY_UNAVAILABLE');
      assert.equal(error.retriable, true);
      assert.match(error.message, /cannot be reached.*ECONNREFUSED/);
      assert.doesNotMatch(error.message, /s3cret/, 'credentials are not echoed');
      return true;
    });
  });
});
