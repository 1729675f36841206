/**
 * A prediction cache for one model version: the outputs of a feature row, reused when the exact
 * same row (the float32 values the model would be given, in its feature order) comes again. The
 * key is the row itself, never the entity key, so two entities with the same features share an
 * entry and one entity with new features never gets stale outputs. Bounded by entries and by
 * bytes, least recently used out first; an entry older than its time to live is a miss.
 *
 * One cache per loaded version (see ScoringStage): never shared across versions, and dropped
 * whenever the routing changes, which is also what a version whose files changed goes through.
 */

export interface CacheLimits {
  maxEntries: number;
  maxBytes: number;
  ttlMs: number;
}

interface Entry {
  outputs: Readonly<Record<string, number>>;
  storedAt: number;
  bytes: number;
}

/** Rough per-entry overhead beyond the key's characters: the Map slot, the entry and its outputs. */
const ENTRY_OVERHEAD_BYTES = 160;

export interface CacheCounts {
  hits: number;
  misses: number;
  evictions: number;
}

export class PredictionCache {
  readonly #limits: CacheLimits;
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  #bytes = 0;
  readonly counts: CacheCounts = { hits: 0, misses: 0, evictions: 0 };

  constructor(limits: CacheLimits, now: () => number = Date.now) {
    if (!(limits.maxEntries >= 1) || !(limits.maxBytes >= 1) || !(limits.ttlMs >= 1))
      throw new RangeError('cache limits must be positive');
    this.#limits = limits;
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The outputs stored for this row, if fresh; a hit makes the entry the most recently used. */
  get(key: string): Readonly<Record<string, number>> | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      this.counts.misses += 1;
      return undefined;
    }
    this.#entries.delete(key);
    if (this.#now() - entry.storedAt > this.#limits.ttlMs) {
      this.#bytes -= entry.bytes;
      this.counts.misses += 1;
      return undefined;
    }
    this.#entries.set(key, entry);
    this.counts.hits += 1;
    return entry.outputs;
  }

  set(key: string, outputs: Readonly<Record<string, number>>): void {
    const previous = this.#entries.get(key);
    if (previous !== undefined) {
      this.#entries.delete(key);
      this.#bytes -= previous.bytes;
    }
    // A JavaScript string of these keys holds one byte a character (latin1).
    const bytes = key.length + ENTRY_OVERHEAD_BYTES + 16 * Object.keys(outputs).length;
    if (bytes > this.#limits.maxBytes) return;
    this.#entries.set(key, { outputs, storedAt: this.#now(), bytes });
    this.#bytes += bytes;
    while (this.#entries.size > this.#limits.maxEntries || this.#bytes > this.#limits.maxBytes) {
      const [oldest, entry] = this.#entries.entries().next().value as [string, Entry];
      this.#entries.delete(oldest);
      this.#bytes -= entry.bytes;
      this.counts.evictions += 1;
    }
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
}

/** The cache key of row `row` of a row-major float32 matrix `width` wide: its bytes, as a string. */
export function rowKey(matrix: Float32Array, row: number, width: number): string {
  return Buffer.from(matrix.buffer, matrix.byteOffset + row * width * 4, width * 4).toString('latin1');
}
