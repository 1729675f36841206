import avro from 'avsc';
import type { SchemaLookup, SchemaSource } from '../../src/codec/schemas.js';

/**
 * Writer schemas from a fixed table, for unit tests of the codec (integration tests use the real
 * registry through RegistrySchemas). `answer` can make a lookup throw, as a registry that is down.
 */
export class StaticSchemas implements SchemaSource {
  readonly lookups: number[] = [];
  readonly #types: Map<number, avro.Type>;
  readonly #known = new Map<number, SchemaLookup>();
  answer: ((id: number) => void) | undefined;

  constructor(schemas: Record<number, avro.Schema | avro.Type>) {
    this.#types = new Map(
      Object.entries(schemas).map(([id, schema]): [number, avro.Type] => [
        Number(id),
        schema instanceof avro.Type ? schema : avro.Type.forSchema(schema),
      ]),
    );
  }

  peek(id: number): SchemaLookup | undefined {
    return this.#known.get(id);
  }

  lookup(id: number): Promise<SchemaLookup> {
    this.lookups.push(id);
    return Promise.resolve().then(() => {
      this.answer?.(id);
      const type = this.#types.get(id);
      const lookup: SchemaLookup =
        type === undefined
          ? { ok: false, id, reason: 'UNKNOWN_SCHEMA_ID', message: `schema id ${id} is not in the registry` }
          : { ok: true, id, type };
      this.#known.set(id, lookup);
      return lookup;
    });
  }

  /** Looks every id up, as a decoder that has seen them all would have. */
  async primeAll(): Promise<this> {
    for (const id of this.#types.keys()) await this.lookup(id);
    return this;
  }
}
