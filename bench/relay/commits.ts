/**
 * Offset commits after acknowledgement, for the transport relays: a partition's offset is
 * committed only once every produce call that carried a record of it, up to that offset, has
 * been acknowledged. Produce calls may be acknowledged out of the order they were made (several
 * in flight, over several connections), so acknowledged calls are folded in send order: a call's
 * offsets count only when it and every call made before it are acknowledged.
 *
 * One commit request runs at a time; what is acknowledged meanwhile goes in the next one, so a
 * commit never lands after a later one and moves an offset back.
 */

/** The next offset to read in a partition (the last relayed record's offset + 1), as Kafka commits it. */
export interface NextOffset {
  topic: string;
  partition: number;
  offset: bigint;
  /** The leader epoch of the last relayed record, where the client knows it (KIP-320); -1 otherwise. */
  leaderEpoch: number;
}

export type Commit = (offsets: NextOffset[]) => Promise<void>;

interface SentCall {
  offsets: NextOffset[];
  acked: boolean;
}

export class CommitAfterAcks {
  readonly #commit: Commit;
  readonly #onFailure: (error: unknown) => void;
  /** Produce calls not yet folded in, in the order they were made. */
  readonly #sent: SentCall[] = [];
  /** Offsets whose records are all acknowledged and that no commit has carried yet. */
  readonly #ready = new Map<string, NextOffset>();
  #running: Promise<void> | undefined;
  #failed = false;

  constructor(commit: Commit, onFailure: (error: unknown) => void) {
    this.#commit = commit;
    this.#onFailure = onFailure;
  }

  /**
   * Notes a produce call about to be made with these offsets (per partition, the next offset after
   * its last record); the function it returns is called once the call is acknowledged.
   */
  sent(offsets: NextOffset[]): () => void {
    const call: SentCall = { offsets, acked: false };
    this.#sent.push(call);
    return () => {
      call.acked = true;
      this.#fold();
    };
  }

  /** Resolves once everything acknowledged so far is committed (or a commit has failed). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** Offsets acknowledged but not yet committed (for tests and logs). */
  get pending(): number {
    return this.#ready.size;
  }

  #fold(): void {
    let folded = false;
    while (this.#sent.length > 0 && this.#sent[0]!.acked) {
      for (const next of this.#sent.shift()!.offsets) {
        const key = `${next.topic}:${next.partition}`;
        const ready = this.#ready.get(key);
        if (ready === undefined || ready.offset < next.offset) this.#ready.set(key, next);
      }
      folded = true;
    }
    if (folded) this.#next();
  }

  /** Starts the next commit unless one is running; each one, once done, starts the next. */
  #next(): void {
    if (this.#running !== undefined || this.#failed || this.#ready.size === 0) return;
    const offsets = [...this.#ready.values()];
    this.#ready.clear();
    this.#running = Promise.resolve()
      .then(() => this.#commit(offsets))
      .then(
        () => undefined,
        (error: unknown) => {
          this.#failed = true;
          this.#onFailure(error);
        },
      )
      .finally(() => {
        this.#running = undefined;
        this.#next();
      });
  }
}

/** Per partition, the offset after the last of these records: what committing them all means. */
export function nextOffsets(
  records: Iterable<{ topic: string; partition: number; offset: bigint; leaderEpoch?: number }>,
): NextOffset[] {
  const next = new Map<string, NextOffset>();
  for (const { topic, partition, offset, leaderEpoch } of records) {
    const key = `${topic}:${partition}`;
    const known = next.get(key);
    if (known === undefined || known.offset <= offset) {
      next.set(key, { topic, partition, offset: offset + 1n, leaderEpoch: leaderEpoch ?? -1 });
    }
  }
  return [...next.values()];
}
