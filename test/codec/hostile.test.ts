/**
 * Any bytes on the requests topic end as a decoded event or a reject reason, in bounded time,
 * and the row reader and the ordinary decoder agree on every one of them. Values are written by a
 * structure-aware generator: it walks the writer schema and, now and then, writes a hostile
 * encoding in place of a valid one (huge or negative counts and lengths, block sizes that lie, union
 * and enum indexes out of range, varints too long or cut short, nesting too deep), then sometimes
 * flips, cuts or extends the bytes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import avro from 'avsc';
import { RecordDecoder } from '../../src/codec/records.js';
import { RejectReasons, RequestDecoder, type DecodeResult } from '../../src/codec/requests.js';
import { toFeatureRow } from '../../src/inference/tensor.js';
import { framed, varint } from '../support/avro.js';
import { StaticSchemas } from '../support/schemas.js';

const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as {
  name: string;
  namespace: string;
  fields: { name: string }[];
};
const LAYOUT = ['amount', 'merchant_risk', 'hour'];
const LIMITS = { maxValueBytes: 65_536, maxFeatures: 64 };
/** The most any one value may take to be read or refused, ms (a generous bound on a busy machine). */
const BOUND_MS = 50;

/** An extra field of every Avro type, named after it. */
const EXTRA_FIELDS = [
  { name: 'x_null', type: 'null' },
  { name: 'x_boolean', type: 'boolean' },
  { name: 'x_int', type: 'int' },
  { name: 'x_long', type: 'long' },
  { name: 'x_float', type: 'float' },
  { name: 'x_double', type: 'double' },
  { name: 'x_bytes', type: 'bytes' },
  { name: 'x_string', type: 'string' },
  { name: 'x_fixed', type: { type: 'fixed', name: 'Hash', size: 4 } },
  { name: 'x_enum', type: { type: 'enum', name: 'Channel', symbols: ['WEB', 'APP', 'POS'] } },
  { name: 'x_array', type: { type: 'array', items: 'string' } },
  { name: 'x_nulls', type: { type: 'array', items: 'null' } },
  { name: 'x_map', type: { type: 'map', values: 'long' } },
  {
    name: 'x_record',
    type: {
      type: 'record',
      name: 'Device',
      fields: [
        { name: 'id', type: 'string' },
        { name: 'seen', type: ['null', 'long'] },
      ],
    },
  },
  { name: 'x_union', type: ['null', 'string', 'Device'] },
  {
    name: 'x_list',
    type: {
      type: 'record',
      name: 'Node',
      fields: [
        { name: 'value', type: 'int' },
        { name: 'next', type: ['null', 'Node'] },
      ],
    },
  },
];

/** Writer schemas: the plain one, and the four fields among every kind of extra field. */
const SCHEMAS: Record<number, object> = {
  1: featureSchema,
  2: {
    ...featureSchema,
    fields: [
      EXTRA_FIELDS[0],
      ...featureSchema.fields.slice(0, 2),
      ...EXTRA_FIELDS.slice(1, 9),
      ...featureSchema.fields.slice(2),
      ...EXTRA_FIELDS.slice(9),
    ],
  },
  // Reversed, but Device is defined (by x_record) before x_union names it.
  3: {
    ...featureSchema,
    fields: [
      ...EXTRA_FIELDS.slice()
        .reverse()
        .filter((field) => field.name !== 'x_record')
        .flatMap((field) => (field.name === 'x_union' ? [EXTRA_FIELDS[13], field] : [field])),
      ...featureSchema.fields.slice().reverse(),
    ],
  },
  // Not the row reader's: the ordinary decoder answers alone.
  4: {
    ...featureSchema,
    fields: featureSchema.fields.map((field) =>
      field.name === 'features'
        ? { name: 'features', type: ['null', { type: 'map', values: 'float' }] }
        : field,
    ),
  },
};
const TYPES = Object.fromEntries(
  Object.entries(SCHEMAS).map(([id, schema]) => [id, avro.Type.forSchema(schema as avro.Schema)]),
) as Record<string, avro.Type>;

/** A small deterministic generator, so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return state / 2 ** 32;
  };
}

interface AnyType {
  typeName: string;
  fields?: { name: string; type: AnyType }[];
  itemsType?: AnyType;
  valuesType?: AnyType;
  types?: AnyType[];
  symbols?: string[];
  size?: number;
  name?: string;
}

const HUGE_COUNTS = [2n ** 40n, 200_000_000n, 2n ** 62n, -(2n ** 40n), 65_537n];
const ODD_DOUBLES = [
  Number.NaN,
  Infinity,
  -Infinity,
  1e308,
  -1e308,
  3.4028235e38,
  3.4028236e38,
  -0,
  5e-324,
  1e-45,
];

/** Writes one value of `type`, hostile here and there. */
class HostileWriter {
  readonly bytes: number[] = [];
  readonly #next: () => number;
  readonly #rate: number;
  #depth = 0;

  constructor(next: () => number, rate: number) {
    this.#next = next;
    this.#rate = rate;
  }

  #hostile(): boolean {
    return this.#next() < this.#rate;
  }

  #pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.#next() * list.length)]!;
  }

  long(value: bigint): void {
    this.bytes.push(...varint(value));
  }

  string(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    this.long(BigInt(bytes.length));
    this.bytes.push(...bytes);
  }

  double(value: number): void {
    const bytes = Buffer.alloc(8);
    bytes.writeDoubleLE(value);
    this.bytes.push(...bytes);
  }

  /** A varint that is too long, or cut short, or a number beyond 2^53. */
  #badNumber(): void {
    const pick = this.#next();
    if (pick < 0.3) this.bytes.push(...Array<number>(10).fill(0xff), 0x01);
    else if (pick < 0.5) this.bytes.push(0x80, 0x80);
    else this.long(this.#pick([2n ** 53n + 1n, -(2n ** 60n), 2n ** 63n - 1n]));
  }

  write(type: AnyType): void {
    switch (type.typeName) {
      case 'null':
        return;
      case 'boolean':
        this.bytes.push(this.#next() < 0.5 ? 0 : 1);
        return;
      case 'int':
      case 'long':
        if (this.#hostile()) this.#badNumber();
        else this.long(BigInt(Math.floor((this.#next() - 0.5) * 1e6)));
        return;
      case 'float':
        this.bytes.push(...Buffer.from(new Float32Array([this.#next() * 10]).buffer));
        return;
      case 'double':
        this.double(this.#hostile() ? this.#pick(ODD_DOUBLES) : this.#next());
        return;
      case 'string':
      case 'bytes':
        if (this.#hostile()) {
          this.long(this.#pick([...HUGE_COUNTS, -5n]));
          this.bytes.push(0x61, 0x62);
        } else this.string(this.#pick(['', 'a', 'web', 'ünï', '\u0000x']));
        return;
      case 'fixed':
        for (let i = 0; i < (type.size ?? 0); i += 1) this.bytes.push(Math.floor(this.#next() * 256));
        return;
      case 'enum':
        this.long(this.#hostile() ? this.#pick([3n, -1n, 2n ** 31n]) : BigInt(Math.floor(this.#next() * 3)));
        return;
      case 'array':
      case 'map':
        this.#blocks(type);
        return;
      case 'record':
      case 'error':
        this.#depth += 1;
        for (const field of type.fields ?? []) this.write(field.type);
        this.#depth -= 1;
        return;
      default: {
        // A union: a branch index, then the branch.
        const branches = type.types ?? [];
        if (this.#hostile()) {
          this.long(this.#pick([BigInt(branches.length), -1n, 2n ** 40n]));
          return;
        }
        // A recursive list goes deep (past the decoder's nesting limit) now and then.
        const deep =
          this.#depth < 80 &&
          this.#next() < 0.9 &&
          branches.length === 2 &&
          branches[1]!.name?.endsWith('Node');
        const index = deep ? 1 : this.#depth > 3 ? 0 : Math.floor(this.#next() * branches.length);
        this.long(BigInt(index));
        this.write(branches[index]!);
      }
    }
  }

  #blocks(type: AnyType): void {
    const entry = (writer: HostileWriter) => {
      if (type.typeName === 'map')
        writer.string(this.#pick(['k', 'key', 'ü']) + String(Math.floor(this.#next() * 5)));
      writer.write((type.itemsType ?? type.valuesType)!);
    };
    if (this.#hostile()) {
      const pick = this.#next();
      if (pick < 0.5) {
        // A count the bytes cannot hold.
        this.long(this.#pick(HUGE_COUNTS));
        entry(this);
      } else {
        // A sized block whose size lies.
        const inner = new HostileWriter(this.#next, 0);
        entry(inner);
        this.long(-1n);
        this.long(BigInt(inner.bytes.length + this.#pick([-1, 1, 1000])));
        this.bytes.push(...inner.bytes);
      }
      this.long(0n);
      return;
    }
    const count = Math.floor(this.#next() * 3);
    if (count > 0) {
      if (this.#next() < 0.3) {
        const inner = new HostileWriter(this.#next, this.#rate);
        for (let i = 0; i < count; i += 1) entry(inner);
        this.long(BigInt(-count));
        this.long(BigInt(inner.bytes.length));
        this.bytes.push(...inner.bytes);
      } else {
        this.long(BigInt(count));
        for (let i = 0; i < count; i += 1) entry(this);
      }
    }
    this.long(0n);
  }

  /** The features map: layout names and others, repeats, odd names and values. */
  features(valuesType: AnyType): void {
    const names = [...LAYOUT, 'extra', '__proto__', 'constructor'].filter(() => this.#next() < 0.85);
    names.sort(() => this.#next() - 0.5);
    if (this.#next() < 0.05) names.push(this.#pick(names.length > 0 ? names : ['amount']));
    if (this.#next() < 0.02) for (let i = 0; i < 70; i += 1) names.push(`wide_${i}`);
    if (this.#hostile()) {
      this.long(this.#pick(HUGE_COUNTS));
    } else if (names.length > 0) {
      this.long(BigInt(names.length));
    }
    for (const name of names) {
      this.string(name);
      if (valuesType.typeName === 'double')
        this.double(this.#next() < 0.1 ? this.#pick(ODD_DOUBLES) : this.#next() * 100);
      else this.write(valuesType);
    }
    this.long(0n);
  }
}

/** One value of schema `id`, framed, built by HostileWriter and then perhaps damaged. */
function hostileValue(id: number, next: () => number, rate: number): Buffer {
  const type = TYPES[id] as unknown as AnyType;
  const writer = new HostileWriter(next, rate);
  for (const field of type.fields!) {
    if (field.name === 'features' && field.type.typeName === 'map') writer.features(field.type.valuesType!);
    else if (field.name === 'features' && field.type.types !== undefined && next() > rate) {
      writer.long(1n);
      writer.features(field.type.types[1]!.valuesType!);
    } else if (field.name === 'request_id')
      writer.string(next() < 0.03 ? '' : `r-${Math.floor(next() * 1e6)}`);
    else if (field.name === 'event_time' && next() > rate)
      writer.long(BigInt(1_700_000_000_000 + Math.floor(next() * 1e9)));
    else writer.write(field.type);
  }
  let body = Buffer.from(writer.bytes);
  const damage = next();
  if (damage < rate) {
    body = Buffer.from(body);
    body[Math.floor(next() * body.length)] = Math.floor(next() * 256);
  } else if (damage < 2 * rate) body = body.subarray(0, Math.floor(next() * body.length));
  else if (damage < 2.5 * rate) body = Buffer.concat([body, Buffer.from([0x02, 0x00])]);
  return framed(id, body);
}

async function decoders() {
  const schemas = await new StaticSchemas(TYPES).primeAll();
  const decoder = new RequestDecoder(schemas, LIMITS, LAYOUT);
  decoder.setRowLayout(LAYOUT);
  return { decoder, records: new RecordDecoder(schemas, LIMITS.maxValueBytes) };
}

/**
 * How long `what` takes; past BOUND_MS it is run again (up to four more times) and the fastest run
 * counts. A garbage collection or a descheduled thread does not repeat itself run after run; a
 * value that is slow to decode is slow every time.
 */
function timed<T>(what: () => T): { value: T; ms: number } {
  let started = performance.now();
  const value = what();
  let ms = performance.now() - started;
  for (let again = 0; again < 4 && ms >= BOUND_MS; again += 1) {
    started = performance.now();
    what();
    ms = Math.min(ms, performance.now() - started);
  }
  return { value, ms };
}

function checkResult(result: DecodeResult, where: string): void {
  if (result.ok) return;
  assert.ok(result.reason in RejectReasons, `${where}: unknown reason ${result.reason}`);
  assert.ok(result.message.length > 0, `${where}: no message`);
}

describe('decoding hostile values', () => {
  it('ends every generated value as an event or a reason, in bounded time, with the row reader agreeing', async () => {
    const { decoder } = await decoders();
    const reasons = new Map<string, number>();
    let slowest = 0;
    let rowAccepted = 0;
    for (let seed = 1; seed <= 30_000; seed += 1) {
      const next = random(seed);
      const id = 1 + (seed % 4);
      const bytes = hostileValue(id, next, seed % 3 === 0 ? 0 : 0.04);
      const where = `seed ${seed} (schema ${id}, 0x${bytes.toString('hex').slice(0, 120)})`;
      const slow = timed(() => decoder.decodeNow(bytes));
      const fast = timed(() => decoder.readRowNow(bytes));
      slowest = Math.max(slowest, slow.ms, fast.ms);
      assert.ok(slow.ms < BOUND_MS && fast.ms < BOUND_MS, `${where}: took ${slow.ms} / ${fast.ms} ms`);
      const result = slow.value;
      assert.ok(result !== undefined, `${where}: every schema is known`);
      checkResult(result, where);
      reasons.set(result.ok ? 'ok' : result.reason, (reasons.get(result.ok ? 'ok' : result.reason) ?? 0) + 1);
      if (fast.value !== undefined) {
        rowAccepted += 1;
        assert.ok(
          result.ok,
          `${where}: the row reader took a value the decoder rejects: ${JSON.stringify(result)}`,
        );
        const { request_id, entity_key, event_time, features } = result.event;
        assert.deepEqual(fast.value.event, { request_id, entity_key, event_time }, where);
        assert.deepEqual(fast.value.row, toFeatureRow(features, LAYOUT, false).row, where);
      } else if (id !== 4) {
        assert.ok(!result.ok, `${where}: the row reader declined a value the decoder accepts`);
      }
    }
    // The generator must reach both outcomes and the hostile reasons, or it proves little.
    for (const expected of [
      'ok',
      'UNDECODABLE',
      'DUPLICATE_FEATURE',
      'TOO_MANY_FEATURES',
      'NON_FINITE_FEATURE',
      'MISSING_FEATURE',
      'WRONG_TYPE',
    ]) {
      assert.ok(
        (reasons.get(expected) ?? 0) > 0,
        `no value ended as ${expected}: ${JSON.stringify([...reasons])}`,
      );
    }
    assert.ok(rowAccepted > 1_000, `the row reader took only ${rowAccepted} values`);
    assert.ok(
      (reasons.get('ok') ?? 0) > rowAccepted,
      'values only the ordinary decoder reads (schema 4) are accepted too',
    );
    assert.ok(slowest < BOUND_MS, `slowest ${slowest} ms`);
  });

  it('refuses the hostile values seen in the wild, fast, and scores what is valid', async () => {
    const { decoder } = await decoders();
    const plain = TYPES[1]!;
    const good = {
      request_id: 'r',
      entity_key: 'e',
      event_time: 1_700_000_000_000,
      features: { amount: 1, merchant_risk: 2, hour: 3 },
    };
    const goodBody = plain.toBuffer(good);
    const identity = [...Buffer.from([0x02, 0x72, 0x02, 0x65]), ...varint(1_700_000_000_000n)];
    const cases: [string, Buffer, string][] = [
      // A features map that claims 2^40 entries: avsc would loop for hours.
      [
        'map of 2^40 entries',
        framed(1, [...identity, ...varint(2n ** 40n), 0x02, 0x61, ...Array<number>(8).fill(0), 0]),
        'UNDECODABLE',
      ],
      // An array that claims 2e8 items in a few bytes: avsc would allocate them first.
      ['array of 2e8 items', framed(2, [0x00, ...varint(200_000_000n), 0x00, 0x00]), 'UNDECODABLE'],
      [
        'nulls, more than bytes',
        framed(3, [...Array<number>(15).fill(0), ...varint(1_000_000n), 0x00]),
        'UNDECODABLE',
      ],
      // A corrupted union branch byte in an extra field: avsc threw "invalid union index".
      [
        'union index',
        framed(3, [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, ...Array<number>(20).fill(0)]),
        'UNDECODABLE',
      ],
      [
        'feature of 1e308',
        framed(1, plain.toBuffer({ ...good, features: { ...good.features, amount: 1e308 } })),
        'NON_FINITE_FEATURE',
      ],
      [
        'repeated feature',
        framed(1, [
          ...identity,
          0x08,
          ...[...['amount', 'merchant_risk', 'hour', 'amount']].flatMap((name) => [
            ...Buffer.from([name.length * 2]),
            ...Buffer.from(name),
            ...Array<number>(8).fill(0),
          ]),
          0,
        ]),
        'DUPLICATE_FEATURE',
      ],
      ['trailing bytes', framed(1, [...goodBody, 0x00]), 'UNDECODABLE'],
      ['too large', framed(1, Buffer.alloc(LIMITS.maxValueBytes)), 'VALUE_TOO_LARGE'],
    ];
    for (const [what, bytes, expected] of cases) {
      const { value, ms } = timed(() => decoder.decodeNow(bytes));
      assert.equal(value?.ok === false ? value.reason : 'ok', expected, `${what}: ${JSON.stringify(value)}`);
      assert.ok(ms < BOUND_MS, `${what}: ${ms} ms`);
      assert.equal(decoder.readRowNow(bytes), undefined, what);
    }
    const many = {
      ...good,
      features: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i])),
    };
    const manyResult = decoder.decodeNow(
      framed(1, plain.toBuffer({ ...many, features: { ...many.features, ...good.features } })),
    );
    assert.equal(manyResult?.ok === false && manyResult.reason, 'TOO_MANY_FEATURES');

    // Valid values whose extra fields avsc would refuse to interpret are scored.
    const extras = TYPES[2]!;
    const valid = {
      ...good,
      x_null: null,
      x_boolean: true,
      x_int: 1,
      x_long: 0,
      x_float: 1,
      x_double: 1,
      x_bytes: Buffer.from('b'),
      x_string: 's',
      x_fixed: Buffer.alloc(4),
      x_enum: 'POS',
      x_array: ['a'],
      x_nulls: [null, null],
      x_map: { k: 1 },
      x_record: { id: 'd', seen: null },
      x_union: null,
      x_list: { value: 1, next: null },
    };
    const body = extras.toBuffer(valid);
    // Put a long beyond 2^53 in x_long (the ninth field written, after x_int).
    const at = body.indexOf(Buffer.from([0x02, 0x00, 0x00]), 0); // x_int 1, x_long 0, then x_float
    assert.ok(at > 0);
    const beyond = Buffer.concat([
      body.subarray(0, at + 1),
      Buffer.from(varint(2n ** 60n)),
      body.subarray(at + 2),
    ]);
    assert.throws(() => extras.fromBuffer(beyond), /precision loss/, 'avsc itself refuses it');
    for (const bytes of [framed(2, body), framed(2, beyond)]) {
      const result = decoder.decodeNow(bytes);
      assert.ok(result?.ok, JSON.stringify(result));
      assert.ok(decoder.readRowNow(bytes) !== undefined);
    }
  });

  it('protects the other readers (drift, tail) the same way', async () => {
    const { records } = await decoders();
    const hostile = Buffer.concat([
      Buffer.from([0, 0, 0, 0, 1, 0x02, 0x72, 0x02, 0x65, 0x00]),
      Buffer.from(varint(2n ** 40n)),
      Buffer.from([0x02, 0x61]),
    ]);
    const started = performance.now();
    const result = await records.decode(hostile);
    assert.ok(performance.now() - started < BOUND_MS);
    assert.equal(result.ok ? 'ok' : result.reason, 'UNDECODABLE');
    for (let seed = 1; seed <= 3_000; seed += 1) {
      const next = random(seed);
      const bytes = hostileValue(1 + (seed % 4), next, 0.05);
      const decoded = await records.decode(bytes);
      if (!decoded.ok) assert.ok(decoded.reason in RejectReasons);
    }
  });
});
