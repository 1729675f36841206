import { describeError } from '../errors.js';
import { scan } from './avro-scan.js';
import { HEADER_BYTES } from './registry.js';
import { checkFraming, type Rejection } from './requests.js';
import type { SchemaSource } from './schemas.js';

export type RecordResult = { ok: true; schemaId: number; record: unknown } | Rejection;

/**
 * Decodes values of any topic streamscore reads besides serving (predictions and shadow records in
 * the drift monitor, any topic in `tail`), with the same bounds as the requests decoder: framing and
 * size first, then the whole value checked against its schema before avsc reads it.
 */
export class RecordDecoder {
  readonly #schemas: SchemaSource;
  readonly #maxValueBytes: number;

  constructor(schemas: SchemaSource, maxValueBytes: number) {
    this.#schemas = schemas;
    this.#maxValueBytes = maxValueBytes;
  }

  /** Throws only what the registry threw (REGISTRY_UNAVAILABLE). */
  async decode(value: Buffer | null): Promise<RecordResult> {
    const framing = checkFraming(value, this.#maxValueBytes);
    if (framing !== undefined) return framing;
    const id = value!.readInt32BE(1);
    const lookup = this.#schemas.peek(id) ?? (await this.#schemas.lookup(id));
    if (!lookup.ok) return { ok: false, reason: lookup.reason, stage: 'decode', message: lookup.message };
    const body = value!.subarray(HEADER_BYTES);
    const problem = scan(lookup.type, body);
    if (problem !== undefined) {
      return { ok: false, reason: 'UNDECODABLE', stage: 'decode', message: `schema id ${id}: ${problem}` };
    }
    try {
      return { ok: true, schemaId: id, record: lookup.type.fromBuffer(body) };
    } catch (error) {
      return {
        ok: false,
        reason: 'UNDECODABLE',
        stage: 'decode',
        message: `schema id ${id}: ${describeError(error)}`,
      };
    }
  }
}
