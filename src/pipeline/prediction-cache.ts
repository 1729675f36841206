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
  row: Float32Array;
  outputs: Readonly<Record<string, number>>;
  storedAt: number;
  bytes: number;
}

/** Rough per-entry overhead beyond the row's bytes: the Map slot, the entry and its outputs. */
const ENTRY_OVERHEAD_BYTES = 200;

export interface CacheCounts {
  hits: number;
  misses: number;
  evictions: number;
}

/**
 * A 53-bit hash of row `row` of a row-major float32 matrix `width` wide, over the values' bits
 * (two 32-bit multiplicative hashes, 32 + 21 bits of them): a number, so the Map lookup is cheap.
 */
export function rowHash(matrix: Float32Array, row: number, width: number): number {
  const words = new Uint32Array(matrix.buffer, matrix.byteOffset, matrix.length);
  let a = 0x811c9dc5 ^ width;
  let b = 0x9e3779b9;
  for (let i = row * width, end = i + width; i < end; i += 1) {
    const word = words[i]!;
    a = Math.imul(a ^ word, 0x01000193);
    b = Math.imul(b ^ word, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return (a >>> 0) * 2_097_152 + ((b >>> 0) & 0x1fffff);
}

function sameRow(stored: Float32Array, matrix: Float32Array, offset: number): boolean {
  const words = new Uint32Array(stored.buffer, stored.byteOffset, stored.length);
  const other = new Uint32Array(matrix.buffer, matrix.byteOffset + offset * 4, stored.length);
  for (let i = 0; i < words.length; i += 1) if (words[i] !== other[i]) return false;
  return true;
}

export class PredictionCache {
  readonly #limits: CacheLimits;
  readonly #entries = new Map<number, Entry>();
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

  /**
   * The outputs stored for row `row` of the matrix (its hash given), if fresh and the very same
   * values; a hit makes the entry the most recently used.
   */
  get(
    hash: number,
    matrix: Float32Array,
    row: number,
    width: number,
  ): Readonly<Record<string, number>> | undefined {
    const entry = this.#entries.get(hash);
    if (entry === undefined || entry.row.length !== width || !sameRow(entry.row, matrix, row * width)) {
      this.counts.misses += 1;
      return undefined;
    }
    this.#entries.delete(hash);
    if (this.#now() - entry.storedAt > this.#limits.ttlMs) {
      this.#bytes -= entry.bytes;
      this.counts.misses += 1;
      return undefined;
    }
    this.#entries.set(hash, entry);
    this.counts.hits += 1;
    return entry.outputs;
  }

  /** Stores a row's outputs; `row` is kept (pass a copy that nothing else writes to). */
  set(hash: number, row: Float32Array, outputs: Readonly<Record<string, number>>): void {
    const previous = this.#entries.get(hash);
    if (previous !== undefined) {
      this.#entries.delete(hash);
      this.#bytes -= previous.bytes;
    }
    const bytes = row.byteLength + ENTRY_OVERHEAD_BYTES + 16 * Object.keys(outputs).length;
    if (bytes > this.#limits.maxBytes) return;
    this.#entries.set(hash, { row, outputs, storedAt: this.#now(), bytes });
    this.#bytes += bytes;
    while (this.#entries.size > this.#limits.maxEntries || this.#bytes > this.#limits.maxBytes) {
      const [oldest, entry] = this.#entries.entries().next().value as [number, Entry];
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
