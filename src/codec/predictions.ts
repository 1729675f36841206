import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { HEADER_BYTES, MAGIC_BYTE, type WireSchema } from './registry.js';

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
 * then the payload. The first encode() goes through the registry client, which fetches the schema;
 * after that encodeNow() frames records without awaiting anything.
 */
export class RecordEncoder<T extends object> {
  readonly #registry: SchemaRegistry;
  readonly #schemaId: number;
  #schema: WireSchema | undefined;

  constructor(registry: SchemaRegistry, schemaId: number) {
    this.#registry = registry;
    this.#schemaId = schemaId;
  }

  async encode(record: T): Promise<Buffer> {
    const framed = await this.#registry.encode(this.#schemaId, record);
    this.#schema ??= await this.#registry.getSchema(this.#schemaId);
    return framed;
  }

  /** The framed record, or undefined until encode() has fetched the schema (or when it is invalid). */
  encodeNow(record: T): Buffer | undefined {
    if (this.#schema === undefined) return undefined;
    let payload: Buffer;
    try {
      payload = this.#schema.toBuffer(record);
    } catch {
      return undefined; // encode() reports which fields are invalid
    }
    const framed = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
    framed[0] = MAGIC_BYTE;
    framed.writeInt32BE(this.#schemaId, 1);
    payload.copy(framed, HEADER_BYTES);
    return framed;
  }
}
