/**
 * Finds the external-data files an ONNX model names: tensors whose `data_location` is EXTERNAL
 * keep their bytes in another file, named by the `location` entry of their `external_data`
 * (relative to the model's folder). The walk reads only the parts of the protobuf where a tensor
 * can sit (onnx.proto, field numbers below) and skips everything else by its wire type, so its
 * cost is one pass over the bytes; every length is checked against the bytes left, and nesting
 * (graphs inside node attributes) is bounded.
 */

/** One external-data file and the tensors read from it. */
export interface ExternalReference {
  /** The `location` entry exactly as written in the model. */
  location: string;
  tensors: string[];
}

/** The bytes are not an ONNX protobuf the walk can read. */
export class OnnxFormatError extends Error {
  override readonly name = 'OnnxFormatError';
}

/** Graphs nest inside attributes (If, Loop, Scan); real models nest a few levels, not dozens. */
const MAX_DEPTH = 64;
const DATA_LOCATION_EXTERNAL = 1;

type Message = 'model' | 'training' | 'function' | 'graph' | 'node' | 'attribute' | 'sparse';

/** For each message, the fields that hold a message which may, somewhere below, hold a tensor. */
const CHILDREN: Record<Message, Readonly<Record<number, Message | 'tensor'>>> = {
  // ModelProto: graph = 7, training_info = 20, functions = 25
  model: { 7: 'graph', 20: 'training', 25: 'function' },
  // TrainingInfoProto: initialization = 1, algorithm = 2
  training: { 1: 'graph', 2: 'graph' },
  // FunctionProto: node = 7, attribute_proto = 11
  function: { 7: 'node', 11: 'attribute' },
  // GraphProto: node = 1, initializer = 5, sparse_initializer = 15
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse' },
  // NodeProto: attribute = 5
  node: { 5: 'attribute' },
  // AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11, sparse_tensor = 22, sparse_tensors = 23
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse' },
  // SparseTensorProto: values = 1, indices = 2
  sparse: { 1: 'tensor', 2: 'tensor' },
};

/** Every external-data location the model names, in order of first use. */
export function externalReferences(bytes: Uint8Array): ExternalReference[] {
  const found = new Map<string, ExternalReference>();
  walk(new Reader(bytes, 0, bytes.length), 'model', 0, found);
  return [...found.values()];
}

function walk(reader: Reader, message: Message, depth: number, found: Map<string, ExternalReference>): void {
  if (depth > MAX_DEPTH) throw new OnnxFormatError(`graphs nest deeper than ${MAX_DEPTH} levels`);
  const children = CHILDREN[message];
  while (!reader.done) {
    const { field, wire } = reader.tag();
    const child = children[field];
    if (child === undefined || wire !== 2) {
      reader.skip(wire);
      continue;
    }
    const inner = reader.sub();
    if (child === 'tensor') tensor(inner, found);
    else walk(inner, child, depth + 1, found);
  }
}

/** TensorProto: name = 8, external_data = 13 (StringStringEntryProto: key = 1, value = 2), data_location = 14. */
function tensor(reader: Reader, found: Map<string, ExternalReference>): void {
  let name = '';
  let location: string | undefined;
  let external = false;
  while (!reader.done) {
    const { field, wire } = reader.tag();
    if (field === 8 && wire === 2) name = reader.string();
    else if (field === 14 && wire === 0) external = reader.varint() === DATA_LOCATION_EXTERNAL;
    else if (field === 13 && wire === 2) {
      const entry = reader.sub();
      let key = '';
      let value = '';
      while (!entry.done) {
        const inner = entry.tag();
        if (inner.field === 1 && inner.wire === 2) key = entry.string();
        else if (inner.field === 2 && inner.wire === 2) value = entry.string();
        else entry.skip(inner.wire);
      }
      if (key === 'location') location = value;
    } else reader.skip(wire);
  }
  if (!external) return;
  const shown = name === '' ? 'a tensor without a name' : `tensor "${name}"`;
  if (location === undefined || location === '') {
    throw new OnnxFormatError(`${shown} has external data but no "location" entry`);
  }
  const reference = found.get(location);
  if (reference === undefined) found.set(location, { location, tensors: [name] });
  else reference.tensors.push(name);
}

/** A bounded protobuf reader over bytes[start, end). */
class Reader {
  readonly #bytes: Uint8Array;
  #at: number;
  readonly #end: number;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.#bytes = bytes;
    this.#at = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#at >= this.#end;
  }

  tag(): { field: number; wire: number } {
    const tag = this.varint();
    const field = Math.floor(tag / 8);
    if (field === 0) throw new OnnxFormatError(`field number 0 at byte ${this.#at}`);
    return { field, wire: tag % 8 };
  }

  /** A varint as a number; values past 2^53 lose precision, which no field read here can reach. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i += 1) {
      if (this.#at >= this.#end) throw new OnnxFormatError('a varint runs past the end of its message');
      const byte = this.#bytes[this.#at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new OnnxFormatError(`a varint longer than 10 bytes ends at byte ${this.#at}`);
  }

  sub(): Reader {
    const length = this.varint();
    if (length > this.#end - this.#at) {
      throw new OnnxFormatError(
        `a field of ${length} bytes at byte ${this.#at} runs past the end of its message`,
      );
    }
    const reader = new Reader(this.#bytes, this.#at, this.#at + length);
    this.#at += length;
    return reader;
  }

  string(): string {
    const reader = this.sub();
    return Buffer.from(
      this.#bytes.buffer,
      this.#bytes.byteOffset + reader.#at,
      reader.#end - reader.#at,
    ).toString('utf8');
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        this.#advance(8);
        return;
      case 2:
        this.sub();
        return;
      case 5:
        this.#advance(4);
        return;
      default:
        // 3 and 4 are groups, which onnx.proto never declares; 6 and 7 do not exist.
        throw new OnnxFormatError(`wire type ${wire} at byte ${this.#at} is not used by ONNX`);
    }
  }

  #advance(count: number): void {
    if (count > this.#end - this.#at) throw new OnnxFormatError('a fixed-size field runs past the end');
    this.#at += count;
  }
}
