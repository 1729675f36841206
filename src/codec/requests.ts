import avro from 'avsc';
import { describeError } from '../errors.js';
import {
  AvroShapeError,
  cursorOf,
  forEachEntry,
  readLong,
  skipperOf,
  takeBytes,
  type Cursor,
  type Skip,
} from './avro-scan.js';
import {
  FeatureRowReader,
  MAX_EVENT_TIME,
  MIN_EVENT_TIME,
  stepsFor,
  type EventIdentity,
  type RowEvent,
  type Step,
} from './feature-rows.js';
import { HEADER_BYTES, MAGIC_BYTE } from './registry.js';
import type { SchemaLookup, SchemaSource } from './schemas.js';

/** Why an event could not be scored; each becomes a dead-letter record and a metric label. */
export const RejectReasons = {
  EMPTY_VALUE: 'the record has no value (null or zero bytes)',
  VALUE_TOO_LARGE: 'the value is larger than STREAMSCORE_MAX_VALUE_BYTES',
  BAD_FRAMING: 'the value does not start with the schema-registry magic byte 0 and a 4-byte schema id',
  UNKNOWN_SCHEMA_ID: 'the schema id in the value is not known to the registry',
  UNDECODABLE:
    'the bytes are not a well-formed value of the schema they name (truncated, trailing bytes, a count or length beyond the value, a bad union or enum index, nesting too deep)',
  SCHEMA_MISMATCH: 'the record is not a FeatureEvent (a required field is missing)',
  WRONG_TYPE: 'a field or feature has the wrong type, or event_time is outside years 1-9999',
  TOO_MANY_FEATURES: 'the features map has more entries than STREAMSCORE_MAX_FEATURES',
  DUPLICATE_FEATURE: 'the features map names a feature twice',
  MISSING_FEATURE: 'a feature the model needs is absent',
  NON_FINITE_FEATURE: 'a feature is NaN or infinite, or too large for float32 (it would become infinite)',
  INFERENCE_FAILED: 'the model failed on this event, or gave an output that is not finite',
  PREDICTION_TOO_LARGE:
    'the prediction (its key, request id and entity key) is larger than the predictions topic takes',
  UNEXPECTED_ERROR: 'reading the event raised an error streamscore did not expect; the message says which',
} as const;

export type RejectReason = keyof typeof RejectReasons;

export interface FeatureEvent extends EventIdentity {
  features: Record<string, number>;
}

export type Rejection = { ok: false; reason: RejectReason; stage: 'decode' | 'validate'; message: string };
export type DecodeResult = { ok: true; event: FeatureEvent } | Rejection;

export interface DecoderLimits {
  /** Larger values are refused before any decoding (VALUE_TOO_LARGE). */
  maxValueBytes: number;
  /** Feature maps with more entries are refused before they are built (TOO_MANY_FEATURES). */
  maxFeatures: number;
}

/** How the values of one writer schema are read. */
interface Plan {
  /** Checks the whole value, counting the features map's entries and looking for repeated names. */
  check(body: Buffer): Rejection | undefined;
  /** The four FeatureEvent fields, decoded by avsc once check() passed; other fields skipped. */
  read(body: Buffer): unknown;
  /** For readRowNow(); undefined where the schema is not one the row reader takes. */
  steps: Step[] | undefined;
}

/**
 * Turns one requests-topic value into a checked FeatureEvent, or says exactly why not, in time and
 * memory bounded by the value's length whatever its bytes: every count and length is checked
 * against the bytes left before avsc is given the value (avro-scan.ts), and only the FeatureEvent
 * fields are interpreted; other fields of the writer's schema are checked and skipped, so a
 * producer may add any field without breaking serving.
 *
 * Registry failures that may pass are thrown (REGISTRY_UNAVAILABLE, retriable), not rejected: the
 * caller waits, because dead-lettering good events while the registry restarts would lose them.
 */
export class RequestDecoder {
  readonly #schemas: SchemaSource;
  readonly #limits: DecoderLimits;
  #features: readonly string[];
  readonly #plans = new Map<number, Plan | Rejection>();
  #rowLayout: readonly string[] | undefined;
  #rows: FeatureRowReader | undefined;

  constructor(schemas: SchemaSource, limits: DecoderLimits, requiredFeatures: readonly string[]) {
    this.#schemas = schemas;
    this.#limits = limits;
    this.#features = requiredFeatures;
  }

  /** The feature list follows the live routing; the next record is checked against the new list. */
  setRequiredFeatures(names: readonly string[]): void {
    this.#features = names;
    this.#refreshRows();
  }

  /**
   * Lets readRowNow() read rows in this feature order; undefined turns it off (for callers that need
   * the decoded maps). It stays off while a required feature is outside the layout.
   */
  setRowLayout(layout: readonly string[] | undefined): void {
    this.#rowLayout = layout;
    this.#refreshRows();
  }

  #refreshRows(): void {
    const layout = this.#rowLayout;
    const names = new Set(layout);
    const covered = layout !== undefined && this.#features.every((name) => names.has(name));
    this.#rows = covered ? new FeatureRowReader(layout, this.#limits.maxFeatures) : undefined;
  }

  /**
   * The event with its features already in a row of the layout, for a well-formed value whose
   * schema is known; undefined for everything else, which decodeNow() or decode() then takes.
   * It accepts exactly what decodeNow() accepts, with the same identity and the same row.
   */
  readRowNow(value: Buffer | null): RowEvent | undefined {
    const rows = this.#rows;
    if (rows === undefined || this.#framing(value) !== undefined) return undefined;
    const plan = this.#planNow(value!.readInt32BE(1));
    if (plan === undefined || !('steps' in plan) || plan.steps === undefined) return undefined;
    return rows.read(value!.subarray(HEADER_BYTES), plan.steps);
  }

  /**
   * Decodes with a schema already known, without awaiting anything; undefined when the value names
   * a schema that must be looked up first (then decode() does).
   */
  decodeNow(value: Buffer | null): DecodeResult | undefined {
    const framing = this.#framing(value);
    if (framing !== undefined) return framing;
    const plan = this.#planNow(value!.readInt32BE(1));
    if (plan === undefined) return undefined;
    if (!('check' in plan)) return plan;
    const body = value!.subarray(HEADER_BYTES);
    const problem = plan.check(body);
    if (problem !== undefined) return problem;
    let decoded: unknown;
    try {
      decoded = plan.read(body);
    } catch (error) {
      return reject('UNDECODABLE', 'decode', `schema id ${value!.readInt32BE(1)}: ${describeError(error)}`);
    }
    return this.validate(decoded);
  }

  /** decodeNow(), looking the schema up first where needed. Throws only what the registry threw. */
  async decode(value: Buffer | null): Promise<DecodeResult> {
    const now = this.decodeNow(value);
    if (now !== undefined) return now;
    await this.#schemas.lookup(value!.readInt32BE(1));
    return this.decodeNow(value)!;
  }

  /** Checks a decoded record against the FeatureEvent contract and the model's feature list. */
  validate(record: unknown): DecodeResult {
    if (typeof record !== 'object' || record === null) {
      return reject('SCHEMA_MISMATCH', 'validate', `expected a record, got ${kindOf(record)}`);
    }
    const fields = record as Record<string, unknown>;
    for (const field of ['request_id', 'entity_key', 'event_time', 'features']) {
      if (!Object.hasOwn(fields, field)) {
        return reject('SCHEMA_MISMATCH', 'validate', `field "${field}" is missing`);
      }
    }
    const { request_id, entity_key, event_time, features } = fields;
    if (typeof request_id !== 'string' || request_id === '') {
      return reject(
        'WRONG_TYPE',
        'validate',
        `"request_id" must be a non-empty string, got ${kindOf(request_id)}`,
      );
    }
    if (typeof entity_key !== 'string') {
      return reject('WRONG_TYPE', 'validate', `"entity_key" must be a string, got ${kindOf(entity_key)}`);
    }
    if (typeof event_time !== 'number' || !(event_time >= MIN_EVENT_TIME && event_time <= MAX_EVENT_TIME)) {
      return reject(
        'WRONG_TYPE',
        'validate',
        `"event_time" must be epoch milliseconds within years 1-9999, got ${kindOf(event_time)}`,
      );
    }
    if (typeof features !== 'object' || features === null || Array.isArray(features)) {
      return reject(
        'WRONG_TYPE',
        'validate',
        `"features" must be a map of name to number, got ${kindOf(features)}`,
      );
    }
    const values = features as Record<string, unknown>;
    for (const name of this.#features) {
      const value = Object.hasOwn(values, name) ? values[name] : undefined;
      if (value === undefined || value === null) {
        return reject('MISSING_FEATURE', 'validate', `feature "${name}" is missing`);
      }
      if (typeof value !== 'number') {
        return reject('WRONG_TYPE', 'validate', `feature "${name}" must be a number, got ${kindOf(value)}`);
      }
      if (!Number.isFinite(Math.fround(value))) {
        return reject(
          'NON_FINITE_FEATURE',
          'validate',
          Number.isFinite(value)
            ? `feature "${name}" is ${value}, beyond float32's range (it would be infinite)`
            : `feature "${name}" is ${value}`,
        );
      }
    }
    return {
      ok: true,
      event: { request_id, entity_key, event_time, features: values as Record<string, number> },
    };
  }

  #framing(value: Buffer | null): Rejection | undefined {
    return checkFraming(value, this.#limits.maxValueBytes);
  }

  /** The plan for a schema id, or the rejection every value of it gets; undefined if not looked up. */
  #planNow(id: number): Plan | Rejection | undefined {
    const planned = this.#plans.get(id);
    if (planned !== undefined) return planned;
    const lookup = this.#schemas.peek(id);
    if (lookup === undefined) return undefined;
    const plan = planFor(lookup, this.#limits.maxFeatures);
    // A known schema's plan (or why it cannot be read) never changes; a lookup's refusal is kept
    // only as long as the schema source remembers it.
    if (lookup.ok) this.#plans.set(id, plan);
    return plan;
  }
}

const FIELDS = ['request_id', 'entity_key', 'event_time', 'features'];

function planFor(lookup: SchemaLookup, maxFeatures: number): Plan | Rejection {
  if (!lookup.ok) return reject(lookup.reason, 'decode', lookup.message);
  const { type, id } = lookup;
  try {
    const record = type as unknown as {
      typeName: string;
      name?: string;
      fields?: { name: string; type: avro.Type }[];
    };
    if (record.typeName !== 'record' || record.fields === undefined) {
      const skip = skipperOf(type);
      return {
        check: (body) => checkWith(id, body, (cursor) => skip(cursor)),
        read: (body): unknown => type.fromBuffer(body),
        steps: undefined,
      };
    }
    const fields = record.fields.map((field) => ({
      name: field.name,
      skip: field.name === 'features' ? featuresSkip(field.type, maxFeatures) : skipperOf(field.type),
    }));
    // A reader schema of the FeatureEvent fields alone, in the writer's own types: avsc skips the
    // other fields instead of interpreting them (a long beyond 2^53 there is no reason to refuse).
    const kept = record.fields.filter((field) => FIELDS.includes(field.name));
    const projection = avro.Type.forSchema(
      {
        type: 'record',
        name: record.name ?? 'FeatureEvent',
        fields: kept.map((f) => ({ name: f.name, type: f.type })),
      } as unknown as avro.Schema,
      { registry: {} },
    );
    const resolver = projection.createResolver(type);
    return {
      check: (body) =>
        checkWith(id, body, (cursor) => {
          cursor.depth = 1;
          for (const field of fields) field.skip(cursor);
        }),
      read: (body): unknown => projection.fromBuffer(body, resolver),
      steps: stepsFor(type),
    };
  } catch (error) {
    return reject('UNDECODABLE', 'decode', `schema id ${id} cannot be read: ${describeError(error)}`);
  }
}

/** Thrown inside a check for a features map that is well-formed so far but not acceptable. */
class FeaturesProblem extends Error {
  constructor(
    readonly reason: 'TOO_MANY_FEATURES' | 'DUPLICATE_FEATURE',
    message: string,
  ) {
    super(message);
  }
}

function checkWith(id: number, body: Buffer, walk: (cursor: Cursor) => void): Rejection | undefined {
  const cursor = cursorOf(body);
  try {
    walk(cursor);
  } catch (error) {
    if (error instanceof FeaturesProblem) return reject(error.reason, 'decode', error.message);
    if (error instanceof AvroShapeError)
      return reject('UNDECODABLE', 'decode', `schema id ${id}: ${error.message}`);
    throw error;
  }
  if (cursor.position !== body.length) {
    return reject(
      'UNDECODABLE',
      'decode',
      `schema id ${id}: ${body.length - cursor.position} bytes left after the value`,
    );
  }
  return undefined;
}

/**
 * The features field's check: a map (directly, or as a union branch) has its entries counted
 * against maxFeatures before they are read, and its names checked for repeats, which avsc would
 * silently collapse (the last one winning). Anything else is checked like any field.
 */
function featuresSkip(type: avro.Type, maxFeatures: number): Skip {
  const shape = type as unknown as { typeName: string; valuesType?: avro.Type; types?: avro.Type[] };
  if (shape.typeName === 'map') return mapCheck(shape.valuesType!, maxFeatures);
  if (shape.typeName.startsWith('union:')) {
    const branches = (shape.types ?? []).map((branch) => featuresSkip(branch, maxFeatures));
    return (cursor) => {
      const index = readLong(cursor);
      const branch = branches[index];
      if (branch === undefined) {
        throw new AvroShapeError(
          `union branch ${index} does not exist (the union has ${branches.length}) at byte ${cursor.position}`,
        );
      }
      branch(cursor);
    };
  }
  return skipperOf(type);
}

function mapCheck(valuesType: avro.Type, maxFeatures: number): Skip {
  const value = skipperOf(valuesType);
  return (cursor) => {
    cursor.depth += 1;
    const names = new Set<string>();
    forEachEntry(cursor, 'the features map', (at) => {
      if (names.size >= maxFeatures) {
        throw new FeaturesProblem(
          'TOO_MANY_FEATURES',
          `the features map has more than ${maxFeatures} entries (STREAMSCORE_MAX_FEATURES)`,
        );
      }
      const start = takeBytes(at, 'a feature name');
      const name = at.body.toString('utf8', start, at.position);
      if (names.has(name)) {
        throw new FeaturesProblem(
          'DUPLICATE_FEATURE',
          `feature ${JSON.stringify(name.slice(0, 80))} appears twice`,
        );
      }
      names.add(name);
      value(at);
    });
    cursor.depth -= 1;
  };
}

/** Empty, too large, or not in the Confluent framing: refused before any schema is looked at. */
export function checkFraming(value: Buffer | null, maxValueBytes: number): Rejection | undefined {
  if (value === null || value.length === 0) return reject('EMPTY_VALUE', 'decode', RejectReasons.EMPTY_VALUE);
  if (value.length > maxValueBytes) {
    return reject(
      'VALUE_TOO_LARGE',
      'decode',
      `the value is ${value.length} bytes; STREAMSCORE_MAX_VALUE_BYTES is ${maxValueBytes}`,
    );
  }
  if (value.length < HEADER_BYTES || value[0] !== MAGIC_BYTE) {
    return reject(
      'BAD_FRAMING',
      'decode',
      `expected magic byte 0 and a 4-byte schema id, got ${value.length} bytes starting 0x${value.subarray(0, 5).toString('hex')}`,
    );
  }
  return undefined;
}

function reject(reason: RejectReason, stage: 'decode' | 'validate', message: string): Rejection {
  return { ok: false, reason, stage, message };
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'number') return String(value);
  return typeof value;
}
