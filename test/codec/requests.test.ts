import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import avro from 'avsc';
import { RequestDecoder, RejectReasons, type DecodeResult } from '../../src/codec/requests.js';
import { StreamscoreError } from '../../src/errors.js';
import { StaticSchemas } from '../support/schemas.js';

const FEATURES = ['amount', 'merchant_risk'];
const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as avro.Schema;
const predictionSchema = JSON.parse(readFileSync('schemas/prediction.avsc', 'utf8')) as avro.Schema;

const LIMITS = { maxValueBytes: 1_048_576, maxFeatures: 10_000 };

function decoderOver(schemas: StaticSchemas, features = FEATURES): RequestDecoder {
  return new RequestDecoder(schemas, LIMITS, features);
}

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
    assert.equal(reason(decoderOver(new StaticSchemas({})).validate(writer.fromBuffer(bytes))), 'ok');
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
  const schemas = new StaticSchemas({});
  const decoder = decoderOver(schemas);

  it('rejects empty, oversized and badly framed values without looking a schema up', async () => {
    assert.equal(reason(await decoder.decode(null)), 'EMPTY_VALUE');
    assert.equal(reason(await decoder.decode(Buffer.alloc(0))), 'EMPTY_VALUE');
    assert.equal(reason(await decoder.decode(Buffer.from('{"json":true}'))), 'BAD_FRAMING');
    assert.equal(reason(await decoder.decode(Buffer.from([0, 0, 1]))), 'BAD_FRAMING');
    const small = new RequestDecoder(schemas, { maxValueBytes: 64, maxFeatures: 10 }, FEATURES);
    assert.equal(reason(await small.decode(framed(1, Buffer.alloc(60)))), 'VALUE_TOO_LARGE');
    assert.deepEqual(schemas.lookups, []);
  });

  it('an unknown schema id is a rejection; a registry that cannot answer is thrown for the caller to wait', async () => {
    const known = new StaticSchemas({ 1: featureSchema });
    const result = await decoderOver(known).decode(framed(999, Buffer.from([1])));
    assert.equal(reason(result), 'UNKNOWN_SCHEMA_ID');
    assert.match(result.ok ? '' : result.message, /schema id 999/);

    const down = new StaticSchemas({ 1: featureSchema });
    const outage = new StreamscoreError('REGISTRY_UNAVAILABLE', 'connect ECONNREFUSED', { retriable: true });
    down.answer = () => {
      throw outage;
    };
    const bytes = framed(1, avro.Type.forSchema(featureSchema).toBuffer(good));
    await assert.rejects(decoderOver(down).decode(bytes), (error) => error === outage);
    down.answer = undefined;
    assert.equal(
      reason(await decoderOver(down).decode(bytes)),
      'ok',
      'the same value, once the registry answers',
    );
  });

  it('gives each kind of bad record its own reason', () => {
    const cases: [unknown, keyof typeof RejectReasons][] = [
      ['a string', 'SCHEMA_MISMATCH'],
      [{ request_id: 'r', entity_key: 'e', event_time: 1 }, 'SCHEMA_MISMATCH'],
      [{ ...good, request_id: 5 }, 'WRONG_TYPE'],
      [{ ...good, request_id: '' }, 'WRONG_TYPE'],
      [{ ...good, event_time: '2024-01-01' }, 'WRONG_TYPE'],
      [{ ...good, event_time: 1e17 }, 'WRONG_TYPE'],
      [{ ...good, event_time: 1_700_000_000_000n }, 'WRONG_TYPE'],
      [{ ...good, features: [1, 2] }, 'WRONG_TYPE'],
      [{ ...good, features: { amount: 'high', merchant_risk: 0.1 } }, 'WRONG_TYPE'],
      [{ ...good, features: { merchant_risk: 0.1 } }, 'MISSING_FEATURE'],
      [{ ...good, features: { amount: null, merchant_risk: 0.1 } }, 'MISSING_FEATURE'],
      [{ ...good, features: Object.create({ amount: 1, merchant_risk: 0.1 }) as object }, 'MISSING_FEATURE'],
      [{ ...good, features: { amount: Number.NaN, merchant_risk: 0.1 } }, 'NON_FINITE_FEATURE'],
      [{ ...good, features: { amount: 1, merchant_risk: -Infinity } }, 'NON_FINITE_FEATURE'],
      [{ ...good, features: { amount: 1e308, merchant_risk: 0.1 } }, 'NON_FINITE_FEATURE'],
      [{ ...good, features: { amount: -3.5e38, merchant_risk: 0.1 } }, 'NON_FINITE_FEATURE'],
    ];
    for (const [record, expected] of cases) {
      const result = decoder.validate(record);
      assert.equal(
        reason(result),
        expected,
        `for ${JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`,
      );
      assert.ok(!result.ok && result.message.length > 0);
    }
  });

  it('accepts a good event, ignores features the model does not use, takes the largest float32', () => {
    const result = decoder.validate({
      ...good,
      features: { ...good.features, merchant_risk: 3.4028234e38, other: Number.NaN },
    });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.event.event_time, 1_700_000_000_000);
  });
});
