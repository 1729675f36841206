import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';

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

/** Encodes records with the Confluent framing through the registry client (schema id cached). */
export class RecordEncoder<T extends object> {
  readonly #registry: SchemaRegistry;
  readonly #schemaId: number;

  constructor(registry: SchemaRegistry, schemaId: number) {
    this.#registry = registry;
    this.#schemaId = schemaId;
  }

  encode(record: T): Promise<Buffer> {
    return this.#registry.encode(this.#schemaId, record);
  }
}
