import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SchemaType } from '@kafkajs/confluent-schema-registry';
import { DLQ_HEADERS } from '../src/codec/dead-letter.js';
import type { Prediction } from '../src/codec/predictions.js';
import type { RejectReason } from '../src/codec/requests.js';
import {
  ServeProcess,
  collect,
  connectProducer,
  createTopics,
  metricValue,
  registerFeatureSchema,
  registry,
  type TestTopics,
} from './harness.js';

const FEATURES = {
  amount: 40,
  account_age_days: 300,
  tx_count_24h: 2,
  distance_from_home_km: 12,
  merchant_risk: 0.2,
  hour_of_day: 14,
  is_foreign: 0,
  card_present: 1,
};

describe('serve: bad input goes to the dead-letter topic, the traffic around it is scored', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let serve: ServeProcess | undefined;

  before(async () => {
    topics = await createTopics('dlq', 2);
  });
  after(async () => {
    await serve?.stop('SIGKILL');
    await topics.remove();
  });

  it('dead-letters each bad kind with its reason and the original bytes', async () => {
    const featureId = await registerFeatureSchema(topics.requests);
    const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as {
      fields: object[];
    };
    // Writers with other schemas, registered under other subjects, as a misconfigured producer would.
    const { id: otherId } = await registry.register(
      {
        type: SchemaType.AVRO,
        schema: JSON.stringify({
          type: 'record',
          name: 'PageView',
          fields: [{ name: 'url', type: 'string' }],
        }),
      },
      { subject: `${topics.requests}-pageview`, compatibility: undefined },
    );
    const { id: stringFeaturesId } = await registry.register(
      {
        type: SchemaType.AVRO,
        schema: JSON.stringify({
          ...featureSchema,
          name: 'StringFeatureEvent',
          fields: featureSchema.fields.map((field) =>
            (field as { name: string }).name === 'features'
              ? { name: 'features', type: { type: 'map', values: 'string' } }
              : field,
          ),
        }),
      },
      { subject: `${topics.requests}-strings`, compatibility: undefined },
    );

    const event = (id: string, features: Record<string, number> = FEATURES) => ({
      request_id: id,
      entity_key: `entity-${id}`,
      event_time: Date.now(),
      features,
    });
    const good = await registry.encode(featureId, event('probe'));
    const unknownId = Buffer.from(good);
    unknownId.writeInt32BE(2_000_000_000, 1);
    const { amount: _dropped, ...withoutAmount } = FEATURES;
    const bad: [RejectReason, Buffer | null][] = [
      ['EMPTY_VALUE', null],
      ['EMPTY_VALUE', Buffer.alloc(0)],
      ['BAD_FRAMING', Buffer.from(JSON.stringify(event('json')))],
      ['UNKNOWN_SCHEMA_ID', unknownId],
      ['UNDECODABLE', good.subarray(0, good.length - 3)],
      ['SCHEMA_MISMATCH', await registry.encode(otherId, { url: 'https://example.test/' })],
      [
        'WRONG_TYPE',
        await registry.encode(stringFeaturesId, { ...event('strings'), features: { amount: 'high' } }),
      ],
      ['MISSING_FEATURE', await registry.encode(featureId, event('missing', withoutAmount))],
      [
        'NON_FINITE_FEATURE',
        await registry.encode(featureId, event('nan', { ...FEATURES, amount: Number.NaN })),
      ],
      [
        'NON_FINITE_FEATURE',
        await registry.encode(featureId, event('inf', { ...FEATURES, merchant_risk: Infinity })),
      ],
    ];

    const goodIds: string[] = [];
    const messages: { key: string; value: Buffer | null }[] = [];
    for (let i = 0; i < 300; i += 1) {
      const id = `good-${i}`;
      goodIds.push(id);
      messages.push({ key: `k-${i % 7}`, value: await registry.encode(featureId, event(id)) });
      // One bad record every 25 good ones, each to one of the two partitions by key.
      if (i % 25 === 12 && (i - 12) / 25 < bad.length) {
        const [reason, value] = bad[(i - 12) / 25]!;
        messages.push({ key: `bad-${reason}-${i}`, value });
      }
    }
    const expectedBad = new Map<string, { reason: RejectReason; value: Buffer | null }>();
    bad.forEach(([reason, value], index) =>
      expectedBad.set(`bad-${reason}-${index * 25 + 12}`, { reason, value }),
    );
    assert.equal(expectedBad.size, bad.length);

    const producer = await connectProducer();
    try {
      await producer.send({ topic: topics.requests, messages });
    } finally {
      await producer.disconnect();
    }

    serve = ServeProcess.start(topics, { STREAMSCORE_BATCH_MAX_ROWS: '32' });
    await serve.ready();
    const [predictions, deadLetters] = await Promise.all([
      collect(topics.predictions, { count: goodIds.length, timeoutMs: 60_000 }),
      collect(topics.dlq, { count: bad.length, timeoutMs: 60_000 }),
    ]);

    const scored = new Set<string>();
    for (const record of predictions)
      scored.add(((await registry.decode(record.value!)) as Prediction).request_id);
    assert.equal(predictions.length, goodIds.length);
    assert.deepEqual([...scored].sort(), [...goodIds].sort());

    assert.equal(deadLetters.length, bad.length);
    for (const record of deadLetters) {
      const expected = expectedBad.get(record.key!);
      assert.ok(expected, `unexpected dead letter with key ${record.key}`);
      assert.equal(
        record.headers[DLQ_HEADERS.reason],
        expected.reason,
        `${record.key}: ${record.headers[DLQ_HEADERS.message]}`,
      );
      assert.ok(record.headers[DLQ_HEADERS.message]!.length > 0);
      assert.equal(record.headers[DLQ_HEADERS.sourceTopic], topics.requests);
      assert.match(record.headers[DLQ_HEADERS.sourcePartition]!, /^[01]$/);
      assert.match(record.headers[DLQ_HEADERS.sourceOffset]!, /^\d+$/);
      if (expected.value === null) assert.equal(record.value, null);
      else assert.deepEqual(record.value ?? Buffer.alloc(0), expected.value, `${record.key}: bytes changed`);
    }

    const metrics = await serve.metrics();
    for (const reason of new Set(bad.map(([r]) => r))) {
      const want = bad.filter(([r]) => r === reason).length;
      assert.equal(metricValue(metrics, 'streamscore_dead_letters_total', { reason }), want, reason);
    }
    assert.equal((await fetch(`http://127.0.0.1:${serve.metricsPort}/healthz`)).status, 200);
    assert.equal((await serve.stop('SIGTERM')).code, 0, serve.output());
  });
});
