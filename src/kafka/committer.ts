import type { Logger } from '../telemetry/logger.js';
import type { OffsetLedger, TopicPartitionOffset } from './offsets.js';

export type CommitFn = (offsets: TopicPartitionOffset[]) => Promise<void>;

/**
 * Commits what the ledger says is finished: at most one commit in flight and at most one per
 * interval, so a busy pipeline does not turn into a commit storm. A failed commit (say, during a
 * rebalance) is logged and counted; the next one covers it, and at worst records are read twice.
 */
export class Committer {
  readonly #ledger: OffsetLedger;
  readonly #commit: CommitFn;
  readonly #intervalMs: number;
  readonly #logger: Logger;
  readonly #onResult: (ok: boolean) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastAt = 0;
  #closed = false;
  /** A commit failed and none succeeded since: further failures are not logged again. */
  #failing = false;

  constructor(options: {
    ledger: OffsetLedger;
    commit: CommitFn;
    intervalMs: number;
    logger: Logger;
    onResult: (ok: boolean) => void;
  }) {
    this.#ledger = options.ledger;
    this.#commit = options.commit;
    this.#intervalMs = options.intervalMs;
    this.#logger = options.logger;
    this.#onResult = options.onResult;
  }

  /** Asks for a commit soon. */
  schedule(): void {
    if (this.#closed || this.#timer !== undefined) return;
    const wait = Math.max(0, this.#lastAt + this.#intervalMs - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, wait);
  }

  /** Stops committing without a last commit (after a fatal error: what is unfinished is read again). */
  abandon(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Commits everything finished so far, now, and waits for it. Later schedule() calls are ignored. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    await this.#commitNow();
  }

  async #run(): Promise<void> {
    if (this.#running !== undefined) {
      // One is in flight; come back once it is done.
      await this.#running;
      this.schedule();
      return;
    }
    await this.#commitNow();
  }

  async #commitNow(): Promise<void> {
    const offsets = this.#ledger.committable();
    if (offsets.length === 0) return;
    this.#lastAt = Date.now();
    const attempt = (async () => {
      try {
        await this.#commit(offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })));
        this.#ledger.markCommitted(offsets);
        this.#onResult(true);
        if (this.#failing) {
          this.#failing = false;
          this.#logger.info({ partitions: offsets.length }, 'offset commits succeed again');
        }
      } catch (error) {
        this.#onResult(false);
        if (!this.#failing) {
          this.#failing = true;
          this.#logger.warn(
            { err: error, partitions: offsets.length },
            'offset commit failed; later commits cover it (said once until one succeeds)',
          );
        }
      }
    })();
    this.#running = attempt;
    try {
      await attempt;
    } finally {
      this.#running = undefined;
    }
  }
}
