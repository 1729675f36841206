/**
 * A join buffer keyed by request id, bounded two ways: an entry lives `ttlMs` after it was first
 * seen, and at most `maxEntries` live at once (the oldest is evicted to make room). Either way the
 * owner is told, so it can settle what the entry still owes (a side that never came) and count
 * evictions. Entries leave only from the old end, so a FIFO of keys beside the Map finds them in
 * O(1): iterating the Map itself from its start would first walk the slots of every entry already
 * deleted (V8 leaves them until it rehashes), a cost paid on every call.
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
  readonly #entries = new Map<string, V>();
  /** Keys and first-seen times in insertion order; live ones from #head on. */
  #keys: string[] = [];
  #times: number[] = [];
  #head = 0;
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
    if (existing !== undefined) return existing;
    while (this.#entries.size >= this.#options.maxEntries) {
      const [oldestKey, oldest] = this.#shift();
      this.#evictions += 1;
      this.#options.onEvict(oldestKey, oldest);
    }
    const value = create();
    this.#entries.set(key, value);
    this.#keys.push(key);
    this.#times.push(now);
    return value;
  }

  /** Settles every entry first seen at or before now - ttlMs. */
  expire(now: number): void {
    const cutoff = now - this.#options.ttlMs;
    while (this.#head < this.#keys.length && this.#times[this.#head]! <= cutoff) {
      const [key, value] = this.#shift();
      this.#options.onExpire(key, value);
    }
  }

  /** Settles every entry now, whatever its age (at shutdown). */
  expireAll(): void {
    while (this.#head < this.#keys.length) {
      const [key, value] = this.#shift();
      this.#options.onExpire(key, value);
    }
  }

  /** Removes the oldest entry. The FIFO is compacted once its dead half is large. */
  #shift(): [string, V] {
    const key = this.#keys[this.#head]!;
    this.#head += 1;
    const value = this.#entries.get(key)!;
    this.#entries.delete(key);
    if (this.#head >= 1_024 && this.#head * 2 >= this.#keys.length) {
      this.#keys = this.#keys.slice(this.#head);
      this.#times = this.#times.slice(this.#head);
      this.#head = 0;
    }
    return [key, value];
  }
}
