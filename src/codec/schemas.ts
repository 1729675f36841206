/**
 * Writer schemas by id, as avsc types. Ids come from the bytes of records, so from anyone: an id
 * the registry does not know, or whose schema is not Avro we can read, is an answer about that
 * record (a dead letter); a registry that does not answer is not, and is thrown as retriable.
 */
import avro from 'avsc';
import { StreamscoreError, describeError } from '../errors.js';
import type { RegistryClient } from './registry.js';

/** What the registry said of a schema id. */
export type SchemaLookup =
  | { ok: true; id: number; type: avro.Type }
  | { ok: false; id: number; reason: 'UNKNOWN_SCHEMA_ID' | 'UNDECODABLE'; message: string };

export interface SchemaSource {
  /** What is already known of the id, without asking anyone; undefined when it must be looked up. */
  peek(id: number): SchemaLookup | undefined;
  /**
   * Looks the id up (once; concurrent lookups of one id share the request). Throws
   * REGISTRY_UNAVAILABLE when the registry gave no answer about the id; `retriable` says whether
   * waiting may help.
   */
  lookup(id: number): Promise<SchemaLookup>;
}

/** An id the registry said nothing of is asked again after this long, ms. */
const NEGATIVE_TTL_MS = 60_000; // one minute
/** At most this many unknown ids are remembered (hostile bytes can name any id). */
const MAX_NEGATIVE = 10_000;
/** Schema references are followed this deep, and at most this many in all. */
const MAX_REFERENCE_DEPTH = 8;
const MAX_REFERENCES = 100;

interface SchemaAnswer {
  schema?: unknown;
  schemaType?: unknown;
  references?: unknown;
}

interface Reference {
  name: string;
  subject: string;
  version: number | string;
}

export class RegistrySchemas implements SchemaSource {
  readonly #client: RegistryClient;
  readonly #found = new Map<number, SchemaLookup & { ok: true }>();
  readonly #refused = new Map<number, { lookup: SchemaLookup; until: number }>();
  readonly #asking = new Map<number, Promise<SchemaLookup>>();

  constructor(client: RegistryClient) {
    this.#client = client;
  }

  peek(id: number): SchemaLookup | undefined {
    const found = this.#found.get(id);
    if (found !== undefined) return found;
    const refused = this.#refused.get(id);
    if (refused === undefined) return undefined;
    if (refused.until > Date.now()) return refused.lookup;
    this.#refused.delete(id);
    return undefined;
  }

  lookup(id: number): Promise<SchemaLookup> {
    const known = this.peek(id);
    if (known !== undefined) return Promise.resolve(known);
    let asking = this.#asking.get(id);
    if (asking === undefined) {
      asking = this.#ask(id).finally(() => this.#asking.delete(id));
      this.#asking.set(id, asking);
    }
    return asking;
  }

  async #ask(id: number): Promise<SchemaLookup> {
    const answer = await this.#client.request('GET', `/schemas/ids/${id}`);
    let lookup: SchemaLookup;
    if (answer.status === 404) {
      lookup = {
        ok: false,
        id,
        reason: 'UNKNOWN_SCHEMA_ID',
        message: `schema id ${id} is not in the registry`,
      };
    } else if (answer.status >= 400 && answer.status < 500 && ![401, 403, 408, 429].includes(answer.status)) {
      lookup = {
        ok: false,
        id,
        reason: 'UNKNOWN_SCHEMA_ID',
        message: `the registry refused schema id ${id} (${answer.status})`,
      };
    } else if (answer.status >= 300) {
      throw this.#client.failure(answer, `Cannot fetch schema id ${id}`);
    } else {
      lookup = await this.#parse(id, answer.body as SchemaAnswer);
    }
    if (lookup.ok) this.#found.set(id, lookup);
    else {
      if (this.#refused.size >= MAX_NEGATIVE) this.#refused.clear();
      this.#refused.set(id, { lookup, until: Date.now() + NEGATIVE_TTL_MS });
    }
    return lookup;
  }

  async #parse(id: number, answer: SchemaAnswer): Promise<SchemaLookup> {
    const kind = answer.schemaType ?? 'AVRO';
    if (kind !== 'AVRO') {
      return {
        ok: false,
        id,
        reason: 'UNDECODABLE',
        message: `schema id ${id} is a ${JSON.stringify(kind)} schema, not Avro`,
      };
    }
    try {
      const named: Record<string, avro.Type> = {};
      await this.#resolveReferences(answer.references, named, 0, { count: 0 });
      const type = avro.Type.forSchema(JSON.parse(String(answer.schema)) as avro.Schema, { registry: named });
      return { ok: true, id, type };
    } catch (error) {
      if (error instanceof StreamscoreError) throw error;
      return {
        ok: false,
        id,
        reason: 'UNDECODABLE',
        message: `schema id ${id} is not an Avro schema streamscore can read: ${describeError(error)}`,
      };
    }
  }

  /** Fetches referenced schemas (depth first) into `named`, where avsc finds them by name. */
  async #resolveReferences(
    references: unknown,
    named: Record<string, avro.Type>,
    depth: number,
    seen: { count: number },
  ): Promise<void> {
    if (references === undefined || references === null) return;
    if (!Array.isArray(references)) throw new Error('"references" is not a list');
    if (depth > MAX_REFERENCE_DEPTH) throw new Error(`references nest deeper than ${MAX_REFERENCE_DEPTH}`);
    for (const reference of references as Reference[]) {
      seen.count += 1;
      if (seen.count > MAX_REFERENCES) throw new Error(`more than ${MAX_REFERENCES} schema references`);
      const path = `/subjects/${encodeURIComponent(String(reference.subject))}/versions/${encodeURIComponent(String(reference.version))}`;
      const answer = await this.#client.request('GET', path);
      if (answer.status >= 300) {
        if (answer.status === 404)
          throw new Error(`reference ${reference.subject}/${reference.version} not found`);
        throw this.#client.failure(answer, `Cannot fetch schema reference ${reference.subject}`);
      }
      const body = answer.body as SchemaAnswer;
      await this.#resolveReferences(body.references, named, depth + 1, seen);
      avro.Type.forSchema(JSON.parse(String(body.schema)) as avro.Schema, { registry: named });
    }
  }
}
