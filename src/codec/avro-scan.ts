/**
 * Bounded reading of Avro binary data whose bytes come from anyone.
 *
 * avsc trusts the counts and lengths in the bytes it is given: a map block that claims 2^40 entries
 * in a 46-byte value loops for hours, an array block that claims 2e8 items allocates them first.
 * Everything here checks each count and length against the bytes that are left before acting on
 * it, so the work done for a value is bounded by its length (times the schema's size), whatever it
 * holds. A value that passes scan() can then be handed to avsc without risk.
 *
 * Rules, beyond the Avro specification's own:
 * - a varint is at most 10 bytes;
 * - a map or array block of N entries needs at least N bytes left, and a whole value holds at most
 *   as many map and array entries as it has bytes (this refuses, say, 2^30 nulls written in 5 bytes);
 * - a block written with a byte size (negative count) must take exactly that many bytes;
 * - union branch and enum indexes must name a branch or symbol;
 * - values nest at most MAX_DEPTH records, arrays, maps and unions deep.
 */
import type avro from 'avsc';

/** Deeper nesting than this is refused (recursive schemas can nest as deep as the bytes allow). */
export const MAX_DEPTH = 64;

/** Where reading is in a value, and how much more it may do. */
export interface Cursor {
  readonly body: Buffer;
  position: number;
  /** Map and array entries the rest of the value may still hold. */
  entries: number;
  depth: number;
}

export function cursorOf(body: Buffer, position = 0): Cursor {
  return { body, position, entries: body.length, depth: 0 };
}

/** Malformed or hostile bytes; the message says what and where. */
export class AvroShapeError extends Error {
  override readonly name = 'AvroShapeError';
}

function fail(cursor: Cursor, what: string): never {
  throw new AvroShapeError(`${what} at byte ${cursor.position}`);
}

/**
 * An Avro long (zig-zag varint of at most 10 bytes). Exact for magnitudes up to 2^53; beyond that
 * the value is rounded, which the callers here only compare against byte counts.
 */
export function readLong(cursor: Cursor): number {
  const { body } = cursor;
  let position = cursor.position;
  const first = body[position];
  if (first === undefined) fail(cursor, 'a number runs past the end of the value');
  position += 1;
  // The sign is the lowest bit; the magnitude is the rest, summed exactly while it fits a double.
  const negative = (first & 1) === 1;
  let magnitude = (first & 0x7f) >>> 1;
  let byte = first;
  let scale = 64;
  while ((byte & 0x80) !== 0) {
    if (position - cursor.position >= 10) fail(cursor, 'a number is longer than 10 bytes');
    const next = body[position];
    if (next === undefined) fail(cursor, 'a number runs past the end of the value');
    byte = next;
    position += 1;
    magnitude += (byte & 0x7f) * scale;
    scale *= 128;
  }
  cursor.position = position;
  return negative ? -magnitude - 1 : magnitude;
}

/** A length or count that must fit in what is left of the value; returns the position after it. */
function readLength(cursor: Cursor, what: string): number {
  const length = readLong(cursor);
  if (length < 0) fail(cursor, `${what} has a negative length (${length})`);
  if (length > cursor.body.length - cursor.position) {
    fail(cursor, `${what} claims ${length} bytes, ${cursor.body.length - cursor.position} are left`);
  }
  return length;
}

/** Skips an Avro string or bytes value. */
export function skipBytes(cursor: Cursor, what = 'a string or bytes value'): void {
  const length = readLength(cursor, what);
  cursor.position += length;
}

/** Skips an Avro string or bytes value and returns where its bytes start (they end at the cursor). */
export function takeBytes(cursor: Cursor, what: string): number {
  const length = readLength(cursor, what);
  const start = cursor.position;
  cursor.position += length;
  return start;
}

function skipFixed(cursor: Cursor, size: number, what: string): void {
  if (size > cursor.body.length - cursor.position) fail(cursor, `${what} runs past the end of the value`);
  cursor.position += size;
}

/** Reads, checks and skips one value of its type; throws AvroShapeError on anything malformed. */
export type Skip = (cursor: Cursor) => void;

/**
 * Runs `entry` once per entry of an Avro array or map whose blocks start at the cursor, after
 * checking each block's count against the bytes left and the value's entry budget.
 */
export function forEachEntry(cursor: Cursor, what: string, entry: (cursor: Cursor) => void): number {
  let total = 0;
  for (;;) {
    let count = readLong(cursor);
    if (count === 0) return total;
    let end = -1;
    if (count < 0) {
      count = -count;
      const size = readLength(cursor, `${what} block`);
      end = cursor.position + size;
    }
    const left = cursor.body.length - cursor.position;
    if (count > left) fail(cursor, `${what} block claims ${count} entries, ${left} bytes are left`);
    if (count > cursor.entries) fail(cursor, `${what} holds more entries than the value has bytes`);
    cursor.entries -= count;
    for (let i = 0; i < count; i += 1) entry(cursor);
    if (end >= 0 && cursor.position !== end) fail(cursor, `${what} block size does not match its entries`);
    total += count;
  }
}

/** The shape of the avsc types read here (avsc's own typings leave most of it out). */
interface AnyType {
  typeName: string;
  name?: string | undefined;
  fields?: readonly { name: string; type: AnyType }[];
  itemsType?: AnyType;
  valuesType?: AnyType;
  types?: readonly AnyType[];
  symbols?: readonly string[];
  size?: number;
  underlyingType?: AnyType;
}

const compiled = new WeakMap<object, Skip>();

/** The checking skipper of an avsc type (cached per type; recursive schemas are fine). */
export function skipperOf(type: avro.Type): Skip {
  return compile(type);
}

function compile(type: AnyType): Skip {
  const known = compiled.get(type);
  if (known !== undefined) return known;
  // Registered before its parts are compiled, so a recursive reference finds it.
  const built: { skip?: Skip } = {};
  const skip: Skip = (cursor) => built.skip!(cursor);
  compiled.set(type, skip);
  built.skip = build(type);
  return skip;
}

function nested(cursor: Cursor): void {
  cursor.depth += 1;
  if (cursor.depth > MAX_DEPTH) fail(cursor, `values nest deeper than ${MAX_DEPTH} levels`);
}

function build(type: AnyType): Skip {
  const name = type.typeName;
  switch (name) {
    case 'null':
      return () => undefined;
    case 'boolean':
      return (cursor) => skipFixed(cursor, 1, 'a boolean');
    case 'int':
    case 'long':
      return (cursor) => void readLong(cursor);
    case 'float':
      return (cursor) => skipFixed(cursor, 4, 'a float');
    case 'double':
      return (cursor) => skipFixed(cursor, 8, 'a double');
    case 'string':
    case 'bytes':
      return (cursor) => skipBytes(cursor, `a ${name}`);
    case 'fixed': {
      const size = type.size ?? 0;
      return (cursor) => skipFixed(cursor, size, `fixed ${type.name ?? ''}`.trim());
    }
    case 'enum': {
      const count = type.symbols?.length ?? 0;
      return (cursor) => {
        const index = readLong(cursor);
        if (index < 0 || index >= count)
          fail(cursor, `enum ${type.name} index ${index} is not one of its ${count} symbols`);
      };
    }
    case 'array': {
      const item = compile(type.itemsType!);
      return (cursor) => {
        nested(cursor);
        forEachEntry(cursor, 'an array', item);
        cursor.depth -= 1;
      };
    }
    case 'map': {
      const value = compile(type.valuesType!);
      const entry = (cursor: Cursor) => {
        skipBytes(cursor, 'a map key');
        value(cursor);
      };
      return (cursor) => {
        nested(cursor);
        forEachEntry(cursor, 'a map', entry);
        cursor.depth -= 1;
      };
    }
    case 'record':
    case 'error': {
      const fields = (type.fields ?? []).map((field) => compile(field.type));
      return (cursor) => {
        nested(cursor);
        for (const field of fields) field(cursor);
        cursor.depth -= 1;
      };
    }
    case 'union:unwrapped':
    case 'union:wrapped': {
      const branches = (type.types ?? []).map((branch) => compile(branch));
      return (cursor) => {
        const index = readLong(cursor);
        const branch = branches[index];
        if (branch === undefined) {
          fail(cursor, `union branch ${index} does not exist (the union has ${branches.length})`);
        }
        nested(cursor);
        branch(cursor);
        cursor.depth -= 1;
      };
    }
    default:
      if (name.startsWith('logical:') && type.underlyingType !== undefined) {
        return compile(type.underlyingType);
      }
      throw new AvroShapeError(`unsupported Avro type ${name}`);
  }
}

/**
 * Checks that `body` is exactly one well-formed value of `type`, within the bounds above; returns
 * undefined when it is, or what is wrong.
 */
export function scan(type: avro.Type, body: Buffer): string | undefined {
  const cursor = cursorOf(body);
  try {
    skipperOf(type)(cursor);
  } catch (error) {
    if (error instanceof AvroShapeError) return error.message;
    if (error instanceof RangeError) return `the value is too deeply nested to read (${error.message})`;
    throw error;
  }
  if (cursor.position !== body.length) return `${body.length - cursor.position} bytes left after the value`;
  return undefined;
}
