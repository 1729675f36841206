import type avro from 'avsc';
import { StreamscoreError } from '../errors.js';
import { HEADER_BYTES, MAGIC_BYTE } from './registry.js';
import type { SchemaSource } from './schemas.js';

/** The Prediction record, as in schemas/prediction.avsc. */
export interface Prediction {
  request_id: string;
  entity_key: string;
  model_name: string;
  model_version: string;
  route: string;
  outputs: Record<string, number>;
  event_time: number;
  scored_at: number;
}

/** The ShadowPrediction record, as in schemas/shadow-prediction.avsc. */
export interface ShadowPrediction extends Prediction {
  served_version: string;
  served_route: string;
  served_outputs: Record<string, number>;
}

/**
 * Encodes records with the Confluent framing: magic byte 0, the schema id (4 bytes, big-endian),
 * then the payload. The first encode() looks the schema up; after that encodeNow() frames records
 * without awaiting anything.
 */
export class RecordEncoder<T extends object> {
  readonly #schemas: SchemaSource;
  readonly #schemaId: number;
  #type: avro.Type | undefined;

  constructor(schemas: SchemaSource, schemaId: number) {
    this.#schemas = schemas;
    this.#schemaId = schemaId;
  }

  /** Looks the schema up, once; encodeNow() works from then on. */
  async prepare(): Promise<void> {
    if (this.#type !== undefined) return;
    const lookup = await this.#schemas.lookup(this.#schemaId);
    if (!lookup.ok) {
      throw new StreamscoreError(
        'SCHEMA_INVALID',
        `Cannot encode with schema id ${this.#schemaId}: ${lookup.message}`,
      );
    }
    this.#type = lookup.type;
  }

  async encode(record: T): Promise<Buffer> {
    await this.prepare();
    return this.encodeNow(record);
  }

  /** The framed record, without awaiting anything; prepare() must have completed. */
  encodeNow(record: T): Buffer {
    const type = this.#type;
    if (type === undefined) throw new Error('RecordEncoder.encodeNow before prepare()');
    const payload = type.toBuffer(record);
    const framed = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
    framed[0] = MAGIC_BYTE;
    framed.writeInt32BE(this.#schemaId, 1);
    payload.copy(framed, HEADER_BYTES);
    return framed;
  }
}
