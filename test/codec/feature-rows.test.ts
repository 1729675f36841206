import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import avro from 'avsc';
import { stepsFor } from '../../src/codec/feature-rows.js';
import { RequestDecoder } from '../../src/codec/requests.js';
import { toFeatureRow } from '../../src/inference/tensor.js';
import { StaticSchemas } from '../support/schemas.js';

const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as {
  fields: object[];
};
const LAYOUT = ['amount', 'merchant_risk', 'hour', 'größe'];

/** Writer schemas by id, as a producer might register them. */
const SCHEMAS: Record<number, object> = {
  1: featureSchema,
  // Optional fields added before and after (allowed: they are skipped).
  2: {
    ...featureSchema,
    fields: [
      { name: 'source', type: ['null', 'string'], default: null },
      ...featureSchema.fields,
      { name: 'tags', type: { type: 'array', items: 'string' }, default: [] },
    ],
  },
  // Fields in another order.
  3: { ...featureSchema, fields: [...featureSchema.fields].reverse() },
  // Shapes the row reader does not take: the ordinary decoder must answer for them.
  4: {
    ...featureSchema,
    fields: featureSchema.fields.map((field) =>
      (field as { name: string }).name === 'event_time'
        ? { name: 'event_time', type: ['null', 'long'] }
        : field,
    ),
  },
  5: {
    ...featureSchema,
    fields: featureSchema.fields.map((field) =>
      (field as { name: string }).name === 'features'
        ? { name: 'features', type: { type: 'map', values: 'float' } }
        : field,
    ),
  },
};
const TYPES = Object.fromEntries(
  Object.entries(SCHEMAS).map(([id, schema]) => [id, avro.Type.forSchema(schema as avro.Schema)]),
) as Record<string, avro.Type>;

function framed(id: number, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, body]);
}

/** Avro's zig-zag varint, written by hand so tests can build maps avsc would never write. */
function long(n: number): Buffer {
  let zigzag = n >= 0 ? n * 2 : -n * 2 - 1;
  const bytes: number[] = [];
  while (zigzag >= 128) {
    bytes.push((zigzag % 128) | 0x80);
    zigzag = Math.floor(zigzag / 128);
  }
  bytes.push(zigzag);
  return Buffer.from(bytes);
}
const string = (text: string) => Buffer.concat([long(Buffer.byteLength(text)), Buffer.from(text)]);
const double = (value: number) => {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return bytes;
};

/** A schema-1 body with the map entries exactly as given: repeats, block splits and sizes allowed. */
function rawBody(entries: [string, number][], blocks: number[], sized: boolean, requestId = 'r'): Buffer {
  const parts = [string(requestId), string('e'), long(1_700_000_000_000)];
  let at = 0;
  for (const size of blocks) {
    const block = Buffer.concat(
      entries.slice(at, at + size).flatMap(([key, value]) => [string(key), double(value)]),
    );
    parts.push(sized ? Buffer.concat([long(-size), long(block.length)]) : long(size), block);
    at += size;
  }
  parts.push(long(0));
  return Buffer.concat(parts);
}

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return state / 2 ** 32;
  };
}

function featureMap(next: () => number): Record<string, number> {
  const features: Record<string, number> = {};
  const names = [...LAYOUT, 'extra_a', 'extra_b'].filter(() => next() > 0.1);
  names.sort(() => next() - 0.5);
  const odd = [Number.NaN, Infinity, -Infinity, 1e300, -0, 5e-324];
  for (const name of names)
    features[name] = next() < 0.05 ? odd[Math.floor(next() * odd.length)]! : next() * 100;
  return features;
}

function value(next: () => number): Buffer {
  const pick = next();
  if (pick < 0.15) {
    // Hand-built maps: repeated keys, split and sized blocks.
    const entries = LAYOUT.map((name): [string, number] => [name, next()]);
    if (next() < 0.5) entries.push([LAYOUT[Math.floor(next() * LAYOUT.length)]!, next()]);
    if (next() < 0.3) entries.splice(Math.floor(next() * entries.length), 1);
    const blocks = next() < 0.5 ? [entries.length] : [2, entries.length - 2];
    return framed(1, rawBody(entries, blocks, next() < 0.5, next() < 0.1 ? '' : 'r'));
  }
  const id = 1 + Math.floor(next() * 5);
  const event = {
    request_id: next() < 0.05 ? '' : `r-${Math.floor(next() * 1e6)}`,
    entity_key: `e-${Math.floor(next() * 100)}`,
    event_time: next() < 0.05 ? 0 : 1_700_000_000_000 + Math.floor(next() * 1e9),
    features: featureMap(next),
    source: next() < 0.5 ? null : 'web',
    tags: next() < 0.5 ? [] : ['a', 'ü'],
  };
  const body = TYPES[id]!.toBuffer(id === 4 ? { ...event, event_time: event.event_time } : event);
  const cut = next();
  if (cut < 0.05) return framed(id, body.subarray(0, Math.floor(next() * body.length)));
  if (cut < 0.08) return framed(id, Buffer.concat([body, Buffer.from([0])]));
  return framed(id, body);
}

async function primedDecoder(): Promise<RequestDecoder> {
  const schemas = await new StaticSchemas(TYPES).primeAll();
  const decoder = new RequestDecoder(schemas, { maxValueBytes: 1_048_576, maxFeatures: 10_000 }, LAYOUT);
  decoder.setRowLayout(LAYOUT);
  return decoder;
}

function good() {
  return {
    request_id: 'r',
    entity_key: 'e',
    event_time: 1_700_000_000_000,
    features: Object.fromEntries(LAYOUT.map((name, i) => [name, i + 0.5])),
  };
}

describe('FeatureRowReader', () => {
  it('accepts exactly what the ordinary decoder accepts, with the same identity and the same row', async () => {
    const decoder = await primedDecoder();
    const next = random(42);
    let read = 0;
    let accepted = 0;
    for (let i = 0; i < 20_000; i += 1) {
      const bytes = value(next);
      const fast = decoder.readRowNow(bytes);
      const slow = decoder.decodeNow(bytes);
      assert.ok(slow !== undefined, 'every schema id is cached');
      if (slow.ok) accepted += 1;
      if (fast === undefined) {
        // Schemas 4 and 5 are not the row reader's; for the others it must not decline a good value.
        const id = bytes.readInt32BE(1);
        if (id <= 3) assert.ok(!slow.ok, `value ${i}: the row reader declined a value the decoder accepts`);
        continue;
      }
      read += 1;
      assert.ok(
        slow.ok,
        `value ${i}: the row reader took a value the decoder rejects (${JSON.stringify(slow)})`,
      );
      const { request_id, entity_key, event_time, features } = slow.event;
      assert.deepEqual(fast.event, { request_id, entity_key, event_time });
      assert.deepEqual(fast.row, toFeatureRow(features, LAYOUT, false).row);
      assert.equal(fast.layout, LAYOUT);
    }
    // Most accepted values come from schemas 1-3 without oddities; the row reader must take those.
    assert.ok(accepted > 2_000, `accepted ${accepted}`);
    assert.ok(read > 0.5 * accepted, `the row reader took ${read} of ${accepted} accepted values`);
  });

  it('reads every well-formed value of a supported schema, whatever the key order', async () => {
    const decoder = await primedDecoder();
    const next = random(7);
    for (let i = 0; i < 500; i += 1) {
      const event = good();
      const names = [...LAYOUT, 'unused'].sort(() => next() - 0.5);
      event.features = Object.fromEntries(names.map((name) => [name, next()]));
      for (const id of [1, 2, 3]) {
        const fast = decoder.readRowNow(
          framed(id, TYPES[id]!.toBuffer({ ...event, source: 'x', tags: ['t'] })),
        );
        assert.ok(fast !== undefined, `schema ${id}, keys ${names.join(',')}`);
        assert.deepEqual(
          [...fast.row],
          LAYOUT.map((name) => Math.fround(event.features[name]!)),
        );
      }
    }
  });

  it('leaves repeated keys, missing or non-finite features and malformed values to the decoder', async () => {
    const decoder = await primedDecoder();
    const entries = LAYOUT.map((name, i): [string, number] => [name, i]);
    assert.ok(decoder.readRowNow(framed(1, rawBody(entries, [4], false))) !== undefined);
    assert.ok(decoder.readRowNow(framed(1, rawBody(entries, [1, 3], true))) !== undefined);
    const repeated: [string, number][] = [...entries, ['amount', 9]];
    assert.equal(decoder.readRowNow(framed(1, rawBody(repeated, [5], false))), undefined);
    const repeatedResult = decoder.decodeNow(framed(1, rawBody(repeated, [5], false)));
    assert.equal(
      repeatedResult?.ok === false && repeatedResult.reason,
      'DUPLICATE_FEATURE',
      'a repeat is refused',
    );
    assert.equal(decoder.readRowNow(framed(1, rawBody(entries.slice(1), [3], false))), undefined);
    const repeatedNotMissing: [string, number][] = [...entries.slice(1), ['hour', 7]];
    assert.equal(decoder.readRowNow(framed(1, rawBody(repeatedNotMissing, [4], false))), undefined);
    const nan: [string, number][] = entries.map(([name], i) => [name, i === 2 ? Number.NaN : i]);
    assert.equal(decoder.readRowNow(framed(1, rawBody(nan, [4], false))), undefined);
    assert.equal(decoder.readRowNow(framed(1, rawBody(entries, [4], false, ''))), undefined);
    const body = rawBody(entries, [4], false);
    assert.equal(decoder.readRowNow(framed(1, body.subarray(0, body.length - 3))), undefined);
    assert.equal(decoder.readRowNow(framed(1, Buffer.concat([body, Buffer.from([0])]))), undefined);
    assert.equal(decoder.readRowNow(framed(99, body)), undefined, 'schema not fetched yet');
    assert.equal(decoder.readRowNow(Buffer.from([1, 0, 0, 0, 1])), undefined, 'bad framing');
    assert.equal(decoder.readRowNow(null), undefined);
  });

  it('is off while a required feature lies outside the layout, or when no layout is set', async () => {
    const decoder = await primedDecoder();
    const bytes = framed(1, TYPES[1]!.toBuffer(good()));
    assert.ok(decoder.readRowNow(bytes) !== undefined);
    decoder.setRequiredFeatures([...LAYOUT, 'canary_only']);
    assert.equal(decoder.readRowNow(bytes), undefined);
    decoder.setRequiredFeatures(LAYOUT);
    assert.ok(decoder.readRowNow(bytes) !== undefined);
    decoder.setRowLayout(undefined);
    assert.equal(decoder.readRowNow(bytes), undefined);
  });

  it('takes only writer schemas with the four fields in their plain types', () => {
    assert.equal(stepsFor(TYPES[1])?.length, 4);
    assert.deepEqual(
      stepsFor(TYPES[2])?.map((step) => step.kind),
      ['other', 'request_id', 'entity_key', 'event_time', 'features', 'other'],
    );
    assert.equal(stepsFor(TYPES[4]), undefined, 'event_time as a union');
    assert.equal(stepsFor(TYPES[5]), undefined, 'float feature values');
    const logical = avro.Type.forSchema(featureSchema as avro.Schema, {
      logicalTypes: { 'timestamp-millis': class extends avro.types.LogicalType {} },
    });
    assert.equal(stepsFor(logical), undefined, 'event_time as a logical type');
    const missing = { ...featureSchema, fields: featureSchema.fields.slice(1) } as avro.Schema;
    assert.equal(stepsFor(avro.Type.forSchema(missing)), undefined, 'no request_id');
    assert.equal(stepsFor(avro.Type.forSchema('string')), undefined);
  });
});
