/**
 * Reads a FeatureEvent value straight into a float32 row in a fixed feature order, without building
 * the feature map. For a wide model the map is the main cost of serving: avsc turns 256 entries into
 * 256 key strings and a dictionary-mode object, then toFeatureRow looks each name up again.
 *
 * Only the common case is taken here: a writer schema with the four FeatureEvent fields in their
 * plain types (other fields are allowed and skipped), a well-formed value, every feature of the
 * layout present once and finite. Anything else gives undefined, and the caller decodes the value
 * the ordinary way, so every rejection keeps the exact reason and message it has there.
 */

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

/** The shape of an avsc Type that this reader relies on, checked at run time before use. */
interface AvroType {
  typeName: string;
  fields?: readonly { name: string; type: AvroType }[];
  valuesType?: AvroType;
  decode(buffer: Buffer, position: number): { value: unknown; offset: number };
}

/** One step per writer-schema field, in the writer's order. */
export type Step =
  { kind: 'request_id' | 'entity_key' | 'event_time' | 'features' } | { kind: 'other'; type: AvroType };

const PLAIN_TYPES: Record<string, string> = {
  request_id: 'string',
  entity_key: 'string',
  event_time: 'long',
};

/**
 * The order in which a writer schema's fields are read, or undefined when the schema is not one this
 * reader takes (a union, a logical type, a different map value type...).
 */
export function stepsFor(schema: unknown): Step[] | undefined {
  const type = schema as Partial<AvroType> | null;
  if (type === null || typeof type !== 'object' || type.typeName !== 'record') return undefined;
  if (!Array.isArray(type.fields)) return undefined;
  const steps: Step[] = [];
  const seen = new Set<string>();
  for (const field of type.fields as readonly { name: string; type: AvroType }[]) {
    const typeName = field.type?.typeName;
    if (field.name === 'features') {
      if (typeName !== 'map' || field.type.valuesType?.typeName !== 'double') return undefined;
    } else if (field.name in PLAIN_TYPES) {
      if (typeName !== PLAIN_TYPES[field.name]) return undefined;
    } else {
      if (typeof field.type?.decode !== 'function') return undefined;
      steps.push({ kind: 'other', type: field.type });
      continue;
    }
    seen.add(field.name);
    steps.push({ kind: field.name as 'request_id' | 'entity_key' | 'event_time' | 'features' });
  }
  return seen.size === 4 ? steps : undefined;
}

/** Where the previous value had each map entry: the key's bytes and its column (-1: not in layout). */
interface Expected {
  key: Buffer;
  column: number;
}

/** Map positions remembered; a map wider than this still reads, by name beyond it. */
const MAX_REMEMBERED_POSITIONS = 4_096;

export class FeatureRowReader {
  readonly layout: readonly string[];
  readonly #columns: Map<string, number>;
  /** Per map position, what the last value had there; producers write keys in a stable order. */
  readonly #expected: (Expected | undefined)[] = [];
  /** Per column, the number of the value that last wrote it: detects repeats without clearing. */
  readonly #written: Uint32Array;
  #valueNumber = 0;

  constructor(layout: readonly string[]) {
    this.layout = layout;
    this.#columns = new Map(layout.map((name, column) => [name, column]));
    this.#written = new Uint32Array(layout.length);
  }

  /**
   * The event and its row, read from an Avro body (the value after the 5-byte framing) with the
   * steps of its writer schema; undefined when this value needs the ordinary decoder.
   */
  read(body: Buffer, steps: readonly Step[]): RowEvent | undefined {
    const cursor = { position: 0 };
    let request_id: string | undefined;
    let entity_key: string | undefined;
    let event_time: number | undefined;
    let row: Float32Array | undefined;
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
        default: {
          const { offset } = step.type.decode(body, cursor.position);
          if (offset < 0) return undefined;
          cursor.position = offset;
        }
      }
    }
    // Trailing bytes or an empty request id are rejected by the ordinary path, with its message.
    if (cursor.position !== body.length || request_id === '') return undefined;
    const event = { request_id: request_id!, entity_key: entity_key!, event_time: event_time! };
    return { event, row: row!, layout: this.layout };
  }

  #readFeatures(body: Buffer, cursor: { position: number }): Float32Array | undefined {
    const row = new Float32Array(this.layout.length);
    const written = this.#written;
    const expected = this.#expected;
    const view = new DataView(body.buffer, body.byteOffset, body.length);
    const stamp = (this.#valueNumber = (this.#valueNumber + 1) >>> 0 || 1);
    let found = 0;
    let index = 0;
    for (;;) {
      let count = readLong(body, cursor);
      if (count === undefined) return undefined;
      if (count === 0) break;
      if (count < 0) {
        // A negative block count is followed by the block's size in bytes.
        count = -count;
        if (readLong(body, cursor) === undefined) return undefined;
      }
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
        const end = position + length;
        if (end + 8 > body.length) return undefined;
        const seen = expected[index];
        const column =
          seen !== undefined && sameBytes(seen.key, body, position, end)
            ? seen.column
            : this.#lookUp(body, position, end, index);
        const value = view.getFloat64(end, true);
        position = end + 8;
        if (column < 0) continue;
        // A repeated key (the last one wins) or a non-finite value: the ordinary path decides.
        if (written[column] === stamp || !Number.isFinite(value)) return undefined;
        written[column] = stamp;
        row[column] = value;
        found += 1;
      }
      cursor.position = position;
    }
    return found === this.layout.length ? row : undefined;
  }

  /** The column of the key in body[start, end), remembered as what map position `index` holds. */
  #lookUp(body: Buffer, start: number, end: number, index: number): number {
    const name = body.toString('utf8', start, end);
    const column = this.#columns.get(name) ?? -1;
    if (index < MAX_REMEMBERED_POSITIONS) {
      this.#expected[index] = { key: Buffer.from(body.subarray(start, end)), column };
    }
    return column;
  }
}

function sameBytes(key: Buffer, body: Buffer, start: number, end: number): boolean {
  if (key.length !== end - start) return false;
  for (let i = 0; i < key.length; i += 1) if (key[i] !== body[start + i]) return false;
  return true;
}

/** An Avro string, or undefined when it runs past the value or has a negative length. */
function readString(body: Buffer, cursor: { position: number }): string | undefined {
  const length = readLong(body, cursor);
  if (length === undefined || length < 0) return undefined;
  const start = cursor.position;
  const end = start + length;
  if (end > body.length) return undefined;
  cursor.position = end;
  return body.toString('utf8', start, end);
}

/**
 * An Avro long (zig-zag varint), or undefined when it runs past the value or is too large to read
 * exactly as a number (avsc refuses most of those; the ordinary path gives its message).
 */
function readLong(body: Buffer, cursor: { position: number }): number | undefined {
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
