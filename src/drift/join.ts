/**
 * A join buffer keyed by request id, bounded two ways: an entry lives `ttlMs` after it was first
 * seen, and at most `maxEntries` live at once (the oldest is evicted to make room). Either way the
 * owner is told, so it can settle what the entry still owes (a side that never came) and count
 * evictions. A JavaScript Map iterates in insertion order, so the oldest entry is always first and
 * both expiry and eviction cost O(1) per entry.
 */
export interface JoinOptions<V> {
  ttlMs: number;
  maxEntries: number;
  /** An entry's time is up: it will not be matched any more. */
  onExpire: (key: string, value: V) => void;
  /** An entry was dropped early because the buffer was full. */
  onEvict: (key: string, value: V) => void;
}

export class ExpiringJoin<V> {
  readonly #entries = new Map<string, { at: number; value: V }>();
  readonly #options: JoinOptions<V>;
  #evictions = 0;

  constructor(options: JoinOptions<V>) {
    if (!(options.maxEntries >= 1))
      throw new RangeError(`maxEntries must be >= 1, got ${options.maxEntries}`);
    if (!(options.ttlMs >= 0)) throw new RangeError(`ttlMs must be >= 0, got ${options.ttlMs}`);
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Entries evicted for room since this join was made. */
  get evictions(): number {
    return this.#evictions;
  }

  /** The entry for key, made with `create` (first seen at `now`) if there is none. */
  entry(key: string, now: number, create: () => V): V {
    const existing = this.#entries.get(key);
    if (existing !== undefined) return existing.value;
    while (this.#entries.size >= this.#options.maxEntries) {
      const [oldestKey, oldest] = this.#entries.entries().next().value as [string, { at: number; value: V }];
      this.#entries.delete(oldestKey);
      this.#evictions += 1;
      this.#options.onEvict(oldestKey, oldest.value);
    }
    const value = create();
    this.#entries.set(key, { at: now, value });
    return value;
  }

  /** Settles every entry first seen at or before now - ttlMs. */
  expire(now: number): void {
    const cutoff = now - this.#options.ttlMs;
    for (const [key, entry] of this.#entries) {
      if (entry.at > cutoff) break;
      this.#entries.delete(key);
      this.#options.onExpire(key, entry.value);
    }
  }

  /** Settles every entry now, whatever its age (at shutdown). */
  expireAll(): void {
    for (const [key, entry] of this.#entries) {
      this.#entries.delete(key);
      this.#options.onExpire(key, entry.value);
    }
  }
}
