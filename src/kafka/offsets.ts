/** One consumed record whose outcome (published or dead-lettered) is still awaited. */
export interface OffsetEntry {
  readonly offset: string;
  /**
   * Its outcome is decided: at-least-once, once the output was acknowledged; exactly-once, once
   * the output was handed to the transactional publisher (which commits output and offset together).
   */
  done: boolean;
  /** The ownership it was taken in under: once revoked, its output must not be committed. */
  readonly lease: PartitionLease;
}

/** A bounded replay's offsets of one partition: from `start` (where reading begins) to `end`, exclusive. */
export interface PartitionRange {
  readonly start: bigint;
  readonly end: bigint;
}

/**
 * One ownership of a partition: from the group generation that assigned it to this replica until
 * one that did not. It holds the partition's records in the order they were consumed; the
 * committable offset is one past the longest run of finished records from the start, so a commit
 * never skips a record still in flight, whatever order outcomes arrive in. Offsets need not be
 * contiguous (transaction markers and compaction leave gaps).
 */
export class PartitionLease {
  readonly topic: string;
  readonly partition: number;
  /** Set when the partition went to another replica: its records are dropped, never committed. */
  revoked = false;
  /** The highest offset taken in under this lease; the group hands older ones out again on rejoin. */
  #lastTaken: string | undefined;
  #entries: OffsetEntry[] = [];
  #head = 0;
  #lastDone: string | undefined;
  #lastCommitted: string | undefined;
  /** A bounded replay's range for this partition, once decided (see bound()). */
  #range: PartitionRange | undefined;
  /** Nothing at or past the range's end will be taken: the range was read through. */
  #readThrough = false;

  constructor(topic: string, partition: number) {
    this.topic = topic;
    this.partition = partition;
  }

  /** True for an offset this lease already took in (in flight or finished). */
  alreadyTaken(offset: string): boolean {
    return this.#lastTaken !== undefined && BigInt(offset) <= BigInt(this.#lastTaken);
  }

  /**
   * Makes the lease a bounded one, reading `range`. `committed` is the partition's committed offset
   * when one exists: a range already committed to its end is finished from the start.
   */
  bound(range: PartitionRange, committed: bigint | undefined): void {
    this.#range = range;
    if (committed !== undefined) this.#lastCommitted = committed.toString();
    if (range.start >= range.end || committed === range.end) this.#readThrough = true;
  }

  get range(): PartitionRange | undefined {
    return this.#range;
  }

  /** No record at or past the range's end will be taken; returns false if that was known already. */
  markReadThrough(): boolean {
    if (this.#readThrough) return false;
    this.#readThrough = true;
    return true;
  }

  get readThrough(): boolean {
    return this.#readThrough;
  }

  /** A bounded lease whose range was read through, finished, and committed up to its end. */
  get finished(): boolean {
    return (
      this.#readThrough && this.#range !== undefined && this.#lastCommitted === this.#range.end.toString()
    );
  }

  /** Tracks the next record; offsets come in increasing order within a lease. */
  track(offset: string): OffsetEntry {
    const entry: OffsetEntry = { offset, done: false, lease: this };
    this.#entries.push(entry);
    this.#lastTaken = offset;
    return entry;
  }

  /** The offset to commit (next record to read), if it moved since the last markCommitted(). */
  committable(): string | undefined {
    if (this.revoked) return undefined;
    const entries = this.#entries;
    while (this.#head < entries.length && entries[this.#head]!.done) {
      this.#lastDone = entries[this.#head]!.offset;
      this.#head += 1;
    }
    // Drop the finished prefix now and then, so the array does not grow without end.
    if (this.#head > 1024 && this.#head * 2 > entries.length) {
      this.#entries = entries.slice(this.#head);
      this.#head = 0;
    }
    // A range read through and all finished commits its end: offsets in between that were never
    // records (transaction markers, compacted ones) are passed too, so a restart sees it finished.
    const through = this.#readThrough && this.#range !== undefined && this.#head === this.#entries.length;
    if (this.#lastDone === undefined && !through) {
      // A range taken up for the first time commits its start at once: the range (in the commit's
      // metadata) is then fixed for every later run of the job, whatever the topic holds by then.
      const start = this.#range?.start.toString();
      return this.#lastCommitted === undefined ? start : undefined;
    }
    const next = through ? this.#range!.end.toString() : (BigInt(this.#lastDone!) + 1n).toString();
    return next === this.#lastCommitted ? undefined : next;
  }

  markCommitted(offset: string): void {
    this.#lastCommitted = offset;
  }

  /** The offset last committed under this lease (or found committed when it was bounded). */
  get committedOffset(): string | undefined {
    return this.#lastCommitted;
  }

  get inFlight(): number {
    return this.#entries.length - this.#head;
  }
}

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  offset: string;
}

/** A committable offset and the lease it belongs to. */
export interface Committable extends TopicPartitionOffset {
  lease: PartitionLease;
}

/** Partitions per topic, as kafkajs reports an assignment. */
export type Assignment = Readonly<Record<string, readonly number[]>>;

/**
 * The leases of the partitions this replica owns. A group join brings a new assignment: partitions
 * it keeps keep their lease (records in flight still finish and commit, and the copies the group
 * hands out again are skipped), partitions it loses are revoked (what is not scored yet is dropped,
 * since their new owner reads them again from the last commit).
 */
export class OffsetLedger {
  #leases = new Map<string, PartitionLease>();

  /** The current lease of a partition (a fresh one if there is none). */
  lease(topic: string, partition: number): PartitionLease {
    const id = `${topic}\u0000${partition}`;
    let lease = this.#leases.get(id);
    if (lease === undefined) {
      lease = new PartitionLease(topic, partition);
      this.#leases.set(id, lease);
    }
    return lease;
  }

  /**
   * Applies a new assignment. With `keep` false (this replica came back as a new member, so it may
   * have lost its partitions in between), every lease is revoked. Returns the revoked leases.
   */
  assign(assignment: Assignment, keep: boolean): PartitionLease[] {
    const kept = new Set<string>();
    if (keep) {
      for (const [topic, partitions] of Object.entries(assignment)) {
        for (const partition of partitions) kept.add(`${topic}\u0000${partition}`);
      }
    }
    const revoked: PartitionLease[] = [];
    for (const [id, lease] of this.#leases) {
      if (kept.has(id)) continue;
      lease.revoked = true;
      revoked.push(lease);
      this.#leases.delete(id);
    }
    return revoked;
  }

  /** Offsets that moved since they were last marked committed. */
  committable(): Committable[] {
    const result: Committable[] = [];
    for (const lease of this.#leases.values()) {
      const offset = lease.committable();
      if (offset !== undefined)
        result.push({ topic: lease.topic, partition: lease.partition, offset, lease });
    }
    return result;
  }

  /** The leases held now. */
  leases(): IterableIterator<PartitionLease> {
    return this.#leases.values();
  }

  markCommitted(commits: readonly Committable[]): void {
    for (const { lease, offset } of commits) lease.markCommitted(offset);
  }

  /** Records taken in and not yet finished, across owned partitions. */
  get inFlight(): number {
    let total = 0;
    for (const lease of this.#leases.values()) total += lease.inFlight;
    return total;
  }
}
