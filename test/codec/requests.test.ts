import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import avro from 'avsc';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { RequestDecoder, RejectReasons, type DecodeResult } from '../../src/codec/requests.js';

const FEATURES = ['amount', 'merchant_risk'];
const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as avro.Schema;
const predictionSchema = JSON.parse(readFileSync('schemas/prediction.avsc', 'utf8')) as avro.Schema;

/** Stands in for the registry's decode only, to check how each registry answer is classified. */
function registryAnswering(answer: (buffer: Buffer) => unknown): SchemaRegistry {
  return {
    decode: (buffer: Buffer) => Promise.resolve().then(() => answer(buffer)),
  } as unknown as SchemaRegistry;
}
const unusedRegistry = registryAnswering(() => {
  throw new Error('the registry must not be asked');
});

function framed(id: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, payload]);
}

function reason(result: DecodeResult): string {
  return result.ok ? 'ok' : result.reason;
}

const good = {
  request_id: 'r1',
  entity_key: 'e1',
  event_time: 1_700_000_000_000,
  features: { amount: 12.5, merchant_risk: 0.3 },
};

describe('schemas', () => {
  it('FeatureEvent round-trips through Avro, NaN and extra features included', () => {
    const type = avro.Type.forSchema(featureSchema);
    const event = { ...good, features: { amount: Number.NaN, merchant_risk: Infinity, extra: 1 } };
    const decoded = type.fromBuffer(type.toBuffer(event)) as typeof event;
    assert.equal(decoded.request_id, 'r1');
    assert.ok(Number.isNaN(decoded.features.amount));
    assert.equal(decoded.features.merchant_risk, Infinity);
  });

  it('a producer adding an optional field stays readable with our schema (backward compatible)', () => {
    const evolved = {
      ...(featureSchema as object),
      fields: [
        ...(featureSchema as { fields: object[] }).fields,
        { name: 'channel', type: ['null', 'string'], default: null },
      ],
    } as avro.Schema;
    const writer = avro.Type.forSchema(evolved);
    const reader = avro.Type.forSchema(featureSchema);
    const bytes = writer.toBuffer({ ...good, channel: 'web' });
    const decoded = reader.fromBuffer(bytes, reader.createResolver(writer)) as typeof good;
    assert.deepEqual({ ...decoded }, good);
    // And serve, which decodes with the writer's schema, validates it like any other event.
    assert.equal(
      reason(new RequestDecoder(unusedRegistry, FEATURES).validate(writer.fromBuffer(bytes))),
      'ok',
    );
  });

  it('Prediction schema encodes a prediction', () => {
    const type = avro.Type.forSchema(predictionSchema);
    const prediction = {
      request_id: 'r1',
      entity_key: 'e1',
      model_name: 'fraud',
      model_version: '1',
      route: 'primary',
      outputs: { score: 0.25, label: 0 },
      event_time: 1,
      scored_at: 2,
    };
    assert.deepEqual({ ...(type.fromBuffer(type.toBuffer(prediction)) as object) }, prediction);
  });
});

describe('RequestDecoder', () => {
  const decoder = new RequestDecoder(unusedRegistry, FEATURES);

  it('rejects empty values and bad framing without asking the registry', async () => {
    assert.equal(reason(await decoder.decode(null)), 'EMPTY_VALUE');
    assert.equal(reason(await decoder.decode(Buffer.alloc(0))), 'EMPTY_VALUE');
    assert.equal(reason(await decoder.decode(Buffer.from('{"json":true}'))), 'BAD_FRAMING');
    assert.equal(reason(await decoder.decode(Buffer.from([0, 0, 1]))), 'BAD_FRAMING');
  });

  it('classifies registry answers: 404 is data, a network error is thrown for retry', async () => {
    const notFound = new RequestDecoder(
      registryAnswering(() => {
        throw Object.assign(new Error('Schema not found'), { status: 404 });
      }),
      FEATURES,
    );
    const result = await notFound.decode(framed(999, Buffer.from([1])));
    assert.equal(reason(result), 'UNKNOWN_SCHEMA_ID');
    assert.match(result.ok ? '' : result.message, /schema id 999/);

    const down = new RequestDecoder(
      registryAnswering(() => {
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      }),
      FEATURES,
    );
    await assert.rejects(down.decode(framed(1, Buffer.from([1]))), /ECONNREFUSED/);

    const broken = new RequestDecoder(
      registryAnswering(() => {
        throw new Error('truncated buffer');
      }),
      FEATURES,
    );
    assert.equal(reason(await broken.decode(framed(1, Buffer.from([1])))), 'UNDECODABLE');
  });

  it('gives each kind of bad record its own reason', () => {
    const cases: [unknown, keyof typeof RejectReasons][] = [
      ['a string', 'SCHEMA_MISMATCH'],
      [{ request_id: 'r', entity_key: 'e', event_time: 1 }, 'SCHEMA_MISMATCH'],
      [{ ...good, request_id: 5 }, 'WRONG_TYPE'],
      [{ ...good, request_id: '' }, 'WRONG_TYPE'],
      [{ ...good, event_time: '2024-01-01' }, 'WRONG_TYPE'],
      [{ ...good, features: [1, 2] }, 'WRONG_TYPE'],
      [{ ...good, features: { amount: 'high', merchant_risk: 0.1 } }, 'WRONG_TYPE'],
      [{ ...good, features: { merchant_risk: 0.1 } }, 'MISSING_FEATURE'],
      [{ ...good, features: { amount: null, merchant_risk: 0.1 } }, 'MISSING_FEATURE'],
      [{ ...good, features: { amount: Number.NaN, merchant_risk: 0.1 } }, 'NON_FINITE_FEATURE'],
      [{ ...good, features: { amount: 1, merchant_risk: -Infinity } }, 'NON_FINITE_FEATURE'],
    ];
    for (const [record, expected] of cases) {
      const result = decoder.validate(record);
      assert.equal(reason(result), expected, `for ${JSON.stringify(record)}`);
      assert.ok(!result.ok && result.message.length > 0);
    }
  });

  it('accepts a good event, ignores features the model does not use, reads a bigint time', () => {
    const result = decoder.validate({
      ...good,
      event_time: 1_700_000_000_000n,
      features: { ...good.features, other: 3 },
    });
    assert.ok(result.ok);
    assert.equal(result.event.event_time, 1_700_000_000_000);
  });
});
