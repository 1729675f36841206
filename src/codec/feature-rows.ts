/**
 * Reads a FeatureEvent value straight into a float32 row in a fixed feature order, without building
 * the feature map. For a wide model the map is the main cost of serving: avsc turns 256 entries into
 * 256 key strings and a dictionary-mode object, then the row is built by looking each name up again.
 *
 * Only the common case is taken here: a writer schema with the four FeatureEvent fields in their
 * plain types (other fields, of any type, are checked and skipped without being interpreted), a
 * well-formed value, every feature of the layout present and representable. Anything else gives
 * undefined, and the caller decodes the value the ordinary way (requests.ts), which gives the
 * reason. Every count and length is checked against the bytes left first (avro-scan.ts), and the
 * rules are the same as the ordinary path's, so the two accept exactly the same values.
 */
import type avro from 'avsc';
import { AvroShapeError, cursorOf, skipperOf, type Cursor, type Skip } from './avro-scan.js';

/** What the pipeline keeps of an event besides its features. */
export interface EventIdentity {
  request_id: string;
  entity_key: string;
  /** Epoch milliseconds. */
  event_time: number;
}

export interface RowEvent {
  event: EventIdentity;
  /** Features in layout order. */
  row: Float32Array;
  layout: readonly string[];
}

/** event_time must be epoch milliseconds from 0001-01-01 to 9999-12-31 UTC. */
export const MIN_EVENT_TIME = -62_135_596_800_000;
export const MAX_EVENT_TIME = 253_402_300_799_999;

/** One step per writer-schema field, in the writer's order. */
export type Step =
  { kind: 'request_id' | 'entity_key' | 'event_time' | 'features' } | { kind: 'other'; skip: Skip };

const PLAIN_TYPES: Record<string, string> = {
  request_id: 'string',
  entity_key: 'string',
  event_time: 'long',
};

/**
 * The order in which a writer schema's fields are read, or undefined when the schema is not one this
 * reader takes (one of the four fields as a union, a logical type, a different map value type...).
 */
export function stepsFor(schema: unknown): Step[] | undefined {
  const type = schema as { typeName?: unknown; fields?: unknown } | null;
  if (type === null || typeof type !== 'object' || type.typeName !== 'record') return undefined;
  if (!Array.isArray(type.fields)) return undefined;
  const steps: Step[] = [];
  const seen = new Set<string>();
  for (const field of type.fields as readonly { name: string; type: avro.Type }[]) {
    const fieldType = field.type as unknown as { typeName?: string; valuesType?: { typeName?: string } };
    if (field.name === 'features') {
      if (fieldType.typeName !== 'map' || fieldType.valuesType?.typeName !== 'double') return undefined;
    } else if (field.name in PLAIN_TYPES) {
      if (fieldType.typeName !== PLAIN_TYPES[field.name]) return undefined;
    } else {
      steps.push({ kind: 'other', skip: skipperOf(field.type) });
      continue;
    }
    seen.add(field.name);
    steps.push({ kind: field.name as 'request_id' | 'entity_key' | 'event_time' | 'features' });
  }
  return seen.size === 4 ? steps : undefined;
}

/** Where the last accepted value had each map entry: the key's bytes and its column (-1: unused). */
interface Expected {
  key: Buffer;
  column: number;
}

/** Map positions remembered; a wider map still reads, by name beyond it. */
const MAX_REMEMBERED_POSITIONS = 4_096;

export class FeatureRowReader {
  readonly layout: readonly string[];
  readonly #maxFeatures: number;
  readonly #columns: Map<string, number>;
  /**
   * Per map position, the key the last accepted value had there. Those keys were distinct, so a
   * value whose keys all match their positions has distinct keys too, and needs no set.
   */
  #expected: Expected[] = [];
  /** Per column, the number of the value that last wrote it: detects a repeat without clearing. */
  readonly #written: Uint32Array;
  #valueNumber = 0;

  constructor(layout: readonly string[], maxFeatures: number) {
    this.layout = layout;
    this.#maxFeatures = maxFeatures;
    this.#columns = new Map(layout.map((name, column) => [name, column]));
    this.#written = new Uint32Array(layout.length);
  }

  /**
   * The event and its row, read from an Avro body (the value after the 5-byte framing) with the
   * steps of its writer schema; undefined when this value needs the ordinary decoder.
   */
  read(body: Buffer, steps: readonly Step[]): RowEvent | undefined {
    const cursor = cursorOf(body);
    // The record itself is the first level of nesting, as in the ordinary path.
    cursor.depth = 1;
    let request_id: string | undefined;
    let entity_key: string | undefined;
    let event_time: number | undefined;
    let row: Float32Array | undefined;
    try {
      for (const step of steps) {
        switch (step.kind) {
          case 'request_id':
            request_id = readString(body, cursor);
            if (request_id === undefined) return undefined;
            break;
          case 'entity_key':
            entity_key = readString(body, cursor);
            if (entity_key === undefined) return undefined;
            break;
          case 'event_time':
            event_time = readLong(body, cursor);
            if (event_time === undefined) return undefined;
            break;
          case 'features':
            row = this.#readFeatures(body, cursor);
            if (row === undefined) return undefined;
            break;
          default:
            step.skip(cursor);
        }
      }
    } catch (error) {
      if (error instanceof AvroShapeError) return undefined;
      throw error;
    }
    // Trailing bytes, an empty request id or a time out of range: the ordinary path says which.
    if (cursor.position !== body.length || request_id === '') return undefined;
    if (!(event_time! >= MIN_EVENT_TIME && event_time! <= MAX_EVENT_TIME)) return undefined;
    const event = { request_id: request_id!, entity_key: entity_key!, event_time: event_time! };
    return { event, row: row!, layout: this.layout };
  }

  #readFeatures(body: Buffer, cursor: Cursor): Float32Array | undefined {
    const row = new Float32Array(this.layout.length);
    const written = this.#written;
    const expected = this.#expected;
    const view = new DataView(body.buffer, body.byteOffset, body.length);
    const stamp = (this.#valueNumber = (this.#valueNumber + 1) >>> 0 || 1);
    let found = 0;
    let index = 0;
    /** Keys from the first position that did not match the last accepted value; undefined if none. */
    let keys: string[] | undefined;
    for (;;) {
      let count = readLong(body, cursor);
      if (count === undefined) return undefined;
      if (count === 0) break;
      let end = -1;
      if (count < 0) {
        // A negative block count is followed by the block's size in bytes, which must be exact.
        count = -count;
        const size = readLong(body, cursor);
        if (size === undefined || size < 0) return undefined;
        end = cursor.position + size;
      }
      // Every entry takes at least 9 bytes; the block and the value's entry budget must allow it.
      if (count > body.length - cursor.position || count > cursor.entries) return undefined;
      if (index + count > this.#maxFeatures) return undefined;
      cursor.entries -= count;
      let position = cursor.position;
      for (; count > 0; count -= 1, index += 1) {
        // Key length: one varint byte for keys under 64 bytes (zig-zag: even = non-negative).
        let length = body[position];
        if (length !== undefined && length < 0x80 && (length & 1) === 0) {
          length >>>= 1;
          position += 1;
        } else {
          cursor.position = position;
          length = readLong(body, cursor);
          if (length === undefined || length < 0) return undefined;
          position = cursor.position;
        }
        const keyEnd = position + length;
        if (keyEnd + 8 > body.length) return undefined;
        let column: number;
        const seen = keys === undefined ? expected[index] : undefined;
        if (seen !== undefined && sameBytes(seen.key, body, position, keyEnd)) {
          column = seen.column;
        } else {
          keys ??= expected.slice(0, index).map((entry) => entry.key.toString('utf8'));
          const name = body.toString('utf8', position, keyEnd);
          keys.push(name);
          column = this.#columns.get(name) ?? -1;
        }
        const value = view.getFloat64(keyEnd, true);
        position = keyEnd + 8;
        if (column < 0) continue;
        // A repeated key, or a value that is not finite in float32: the ordinary path says which.
        if (written[column] === stamp) return undefined;
        written[column] = stamp;
        row[column] = value;
        if (!Number.isFinite(row[column])) return undefined;
        found += 1;
      }
      cursor.position = position;
      if (end >= 0 && position !== end) return undefined;
    }
    if (found !== this.layout.length) return undefined;
    if (keys !== undefined) {
      // A new key order: distinct keys only, then it becomes the order expected next time.
      if (new Set(keys).size !== keys.length) return undefined;
      this.#remember(keys);
    }
    return row;
  }

  #remember(keys: readonly string[]): void {
    const kept = keys.length > MAX_REMEMBERED_POSITIONS ? keys.slice(0, MAX_REMEMBERED_POSITIONS) : keys;
    this.#expected = kept.map((name) => ({
      key: Buffer.from(name, 'utf8'),
      column: this.#columns.get(name) ?? -1,
    }));
  }
}

function sameBytes(key: Buffer, body: Buffer, start: number, end: number): boolean {
  if (key.length !== end - start) return false;
  for (let i = 0; i < key.length; i += 1) if (key[i] !== body[start + i]) return false;
  return true;
}

/** An Avro string, or undefined when it runs past the value or has a negative length. */
function readString(body: Buffer, cursor: Cursor): string | undefined {
  const length = readLong(body, cursor);
  if (length === undefined || length < 0) return undefined;
  const start = cursor.position;
  const end = start + length;
  if (end > body.length) return undefined;
  cursor.position = end;
  return body.toString('utf8', start, end);
}

/**
 * An Avro long (zig-zag varint of at most 10 bytes), or undefined when it runs past the value or is
 * too large to hold exactly; every such case is refused on the ordinary path too.
 */
function readLong(body: Buffer, cursor: Cursor): number | undefined {
  let position = cursor.position;
  let result = 0;
  let scale = 1;
  for (let shift = 0; shift < 70; shift += 7) {
    if (position >= body.length) return undefined;
    const byte = body[position++]!;
    result += (byte & 0x7f) * scale;
    if (result > Number.MAX_SAFE_INTEGER) return undefined;
    scale *= 128;
    if ((byte & 0x80) === 0) {
      cursor.position = position;
      // Zig-zag: even numbers are non-negative, odd ones negative.
      return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
    }
  }
  return undefined;
}
