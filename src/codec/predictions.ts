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

/** Encodes predictions with the Confluent framing through the registry client (schema id cached). */
export class PredictionEncoder {
  readonly #registry: SchemaRegistry;
  readonly #schemaId: number;

  constructor(registry: SchemaRegistry, schemaId: number) {
    this.#registry = registry;
    this.#schemaId = schemaId;
  }

  encode(prediction: Prediction): Promise<Buffer> {
    return this.#registry.encode(this.#schemaId, prediction);
  }
}
