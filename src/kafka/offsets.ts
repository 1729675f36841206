/** One consumed record whose outcome (published or dead-lettered) is still awaited. */
export interface OffsetEntry {
  readonly offset: string;
  done: boolean;
}

/**
 * The records of one partition in the order they were consumed. The committable offset is one
 * past the longest run of finished records from the start, so a commit never skips a record that
 * is still in flight, whatever order outcomes arrive in. Offsets need not be contiguous
 * (transaction markers and compaction leave gaps).
 */
class PartitionOffsets {
  #entries: OffsetEntry[] = [];
  #head = 0;
  #lastDone: string | undefined;
  #lastCommitted: string | undefined;

  track(offset: string): OffsetEntry {
    const entry: OffsetEntry = { offset, done: false };
    this.#entries.push(entry);
    return entry;
  }

  /** The offset to commit (next record to read), if it moved since the last markCommitted(). */
  committable(): string | undefined {
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
    if (this.#lastDone === undefined) return undefined;
    const next = (BigInt(this.#lastDone) + 1n).toString();
    return next === this.#lastCommitted ? undefined : next;
  }

  markCommitted(offset: string): void {
    this.#lastCommitted = offset;
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

/**
 * Tracks every consumed record until it is finished, per topic-partition. After a rebalance the
 * consumer re-reads from the last committed offset, so reset() starts a fresh generation: records
 * of the old one may still finish, but they can no longer move a commit.
 */
export class OffsetLedger {
  #partitions = new Map<string, { topic: string; partition: number; offsets: PartitionOffsets }>();

  track(topic: string, partition: number, offset: string): OffsetEntry {
    const id = `${topic}\u0000${partition}`;
    let slot = this.#partitions.get(id);
    if (slot === undefined) {
      slot = { topic, partition, offsets: new PartitionOffsets() };
      this.#partitions.set(id, slot);
    }
    return slot.offsets.track(offset);
  }

  /** Offsets that moved since they were last marked committed. */
  committable(): TopicPartitionOffset[] {
    const result: TopicPartitionOffset[] = [];
    for (const { topic, partition, offsets } of this.#partitions.values()) {
      const offset = offsets.committable();
      if (offset !== undefined) result.push({ topic, partition, offset });
    }
    return result;
  }

  markCommitted(commits: readonly TopicPartitionOffset[]): void {
    for (const { topic, partition, offset } of commits) {
      this.#partitions.get(`${topic}\u0000${partition}`)?.offsets.markCommitted(offset);
    }
  }

  /** Records consumed and not yet finished, across partitions of this generation. */
  get inFlight(): number {
    let total = 0;
    for (const { offsets } of this.#partitions.values()) total += offsets.inFlight;
    return total;
  }

  reset(): void {
    this.#partitions = new Map();
  }
}
