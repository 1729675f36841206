import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { describeError } from '../errors.js';
import { FeatureRowReader, stepsFor, type EventIdentity, type RowEvent, type Step } from './feature-rows.js';
import {
  HEADER_BYTES,
  MAGIC_BYTE,
  isRegistryNotFound,
  isRegistryTransient,
  type WireSchema,
} from './registry.js';

/** Why an event could not be scored; each becomes a dead-letter record and a metric label. */
export const RejectReasons = {
  EMPTY_VALUE: 'the record has no value (null or zero bytes)',
  BAD_FRAMING: 'the value does not start with the schema-registry magic byte 0 and a 4-byte schema id',
  UNKNOWN_SCHEMA_ID: 'the schema id in the value is not known to the registry',
  UNDECODABLE: 'the bytes do not decode with the schema they name',
  SCHEMA_MISMATCH: 'the record is not a FeatureEvent (a required field is missing)',
  WRONG_TYPE: 'a field or feature has the wrong type',
  MISSING_FEATURE: 'a feature the model needs is absent',
  NON_FINITE_FEATURE: 'a feature is NaN or infinite',
  INFERENCE_FAILED: 'the model failed on the batch holding this event',
} as const;

export type RejectReason = keyof typeof RejectReasons;

export interface FeatureEvent extends EventIdentity {
  features: Record<string, number>;
}

export type DecodeResult =
  | { ok: true; event: FeatureEvent }
  | { ok: false; reason: RejectReason; stage: 'decode' | 'validate'; message: string };

/**
 * Turns one requests-topic value into a checked FeatureEvent, or says exactly why not.
 * Decoding goes through the registry client (which caches schemas by id); the writer's schema is
 * used as is, so producers may add optional fields without breaking serving.
 *
 * Registry failures that may pass (network, 5xx) are thrown, not rejected: the caller retries,
 * because dead-lettering good events while the registry restarts would lose them for users.
 */
export class RequestDecoder {
  readonly #registry: SchemaRegistry;
  #features: readonly string[];
  /** Writer schemas by id, as the registry client returned them (schemas never change under an id). */
  readonly #schemas = new Map<number, WireSchema>();
  /** How readRowNow() reads each writer schema; null where it cannot. */
  readonly #steps = new Map<number, Step[] | null>();
  #rowLayout: readonly string[] | undefined;
  #rows: FeatureRowReader | undefined;

  constructor(registry: SchemaRegistry, requiredFeatures: readonly string[]) {
    this.#registry = registry;
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
    this.#rows = covered ? new FeatureRowReader(layout) : undefined;
  }

  /**
   * The event with its features already in a row of the layout, for a well-formed value whose
   * schema is cached; undefined for everything else, which decodeNow() or decode() then takes.
   * Whatever this accepts, decode() would accept with the same identity and the same row.
   */
  readRowNow(value: Buffer | null): RowEvent | undefined {
    const rows = this.#rows;
    if (rows === undefined || checkFraming(value) !== undefined) return undefined;
    const id = value!.readInt32BE(1);
    let steps = this.#steps.get(id);
    if (steps === undefined) {
      const schema = this.#schemas.get(id);
      if (schema === undefined) return undefined;
      steps = stepsFor(schema) ?? null;
      this.#steps.set(id, steps);
    }
    return steps === null ? undefined : rows.read(value!.subarray(HEADER_BYTES), steps);
  }

  /**
   * Decodes with a schema already fetched, without awaiting anything; undefined when the value
   * names a schema this decoder has not seen yet (then decode() fetches it).
   */
  decodeNow(value: Buffer | null): DecodeResult | undefined {
    const framing = checkFraming(value);
    if (framing !== undefined) return framing;
    const schema = this.#schemas.get(value!.readInt32BE(1));
    if (schema === undefined) return undefined;
    let decoded: unknown;
    try {
      decoded = schema.fromBuffer(value!.subarray(HEADER_BYTES));
    } catch (error) {
      return undecodable(value!, error);
    }
    return this.validate(decoded);
  }

  async decode(value: Buffer | null): Promise<DecodeResult> {
    const framing = checkFraming(value);
    if (framing !== undefined) return framing;
    const id = value!.readInt32BE(1);
    let decoded: unknown;
    try {
      decoded = await this.#registry.decode(value!);
      // The registry client decodes with the writer's schema as it is; so does decodeNow().
      if (!this.#schemas.has(id)) this.#schemas.set(id, await this.#registry.getSchema(id));
    } catch (error) {
      if (isRegistryNotFound(error)) {
        return reject('UNKNOWN_SCHEMA_ID', 'decode', `schema id ${id} is not in the registry`);
      }
      if (isRegistryTransient(error)) throw error;
      return undecodable(value!, error);
    }
    return this.validate(decoded);
  }

  /** Checks a decoded record against the FeatureEvent contract and the model's feature list. */
  validate(record: unknown): DecodeResult {
    if (typeof record !== 'object' || record === null) {
      return reject('SCHEMA_MISMATCH', 'validate', `expected a record, got ${typeof record}`);
    }
    const fields = record as Record<string, unknown>;
    for (const field of ['request_id', 'entity_key', 'event_time', 'features']) {
      if (!(field in fields)) return reject('SCHEMA_MISMATCH', 'validate', `field "${field}" is missing`);
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
    const time = typeof event_time === 'bigint' ? Number(event_time) : event_time;
    if (typeof time !== 'number' || !Number.isFinite(time)) {
      return reject(
        'WRONG_TYPE',
        'validate',
        `"event_time" must be epoch milliseconds, got ${kindOf(event_time)}`,
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
      const value = values[name];
      if (value === undefined || value === null) {
        return reject('MISSING_FEATURE', 'validate', `feature "${name}" is missing`);
      }
      if (typeof value !== 'number') {
        return reject('WRONG_TYPE', 'validate', `feature "${name}" must be a number, got ${kindOf(value)}`);
      }
      if (!Number.isFinite(value)) {
        return reject('NON_FINITE_FEATURE', 'validate', `feature "${name}" is ${value}`);
      }
    }
    return {
      ok: true,
      event: { request_id, entity_key, event_time: time, features: values as Record<string, number> },
    };
  }
}

function checkFraming(value: Buffer | null): DecodeResult | undefined {
  if (value === null || value.length === 0) return reject('EMPTY_VALUE', 'decode', RejectReasons.EMPTY_VALUE);
  if (value.length < HEADER_BYTES || value[0] !== MAGIC_BYTE) {
    return reject(
      'BAD_FRAMING',
      'decode',
      `expected magic byte 0 and a 4-byte schema id, got ${value.length} bytes starting 0x${value.subarray(0, 5).toString('hex')}`,
    );
  }
  return undefined;
}

function undecodable(value: Buffer, error: unknown): DecodeResult {
  return reject('UNDECODABLE', 'decode', `schema id ${value.readInt32BE(1)}: ${describeError(error)}`);
}

function reject(reason: RejectReason, stage: 'decode' | 'validate', message: string): DecodeResult {
  return { ok: false, reason, stage, message };
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return typeof value;
}
