/**
 * How many consumed records are not finished yet (published, or dead-lettered and acknowledged),
 * against a limit. Intake waits while the limit is reached, so neither a slow model nor a flood of
 * bad input can grow memory without bound: every record counts from the moment it is taken in until
 * its outcome is safely written, whichever outcome that is.
 */
export class PendingLimit {
  readonly limit: number;
  #pending = 0;
  #waiters: (() => void)[] = [];

  constructor(limit: number) {
    if (!(Number.isInteger(limit) && limit >= 1))
      throw new RangeError(`limit must be a whole number >= 1, got ${limit}`);
    this.limit = limit;
  }

  get pending(): number {
    return this.#pending;
  }

  hasCapacity(): boolean {
    return this.#pending < this.limit;
  }

  acquire(count = 1): void {
    this.#pending += count;
  }

  /** Marks records finished (or dropped), freeing capacity. */
  release(count: number): void {
    if (count > this.#pending) {
      throw new Error(`PendingLimit.release: released ${count - this.#pending} more than acquired`);
    }
    this.#pending -= count;
    if (this.hasCapacity() && this.#waiters.length > 0) this.#wakeAll();
  }

  /** Resolves once pending records are below the limit (or at once after close()). */
  waitForCapacity(): Promise<void> {
    if (this.hasCapacity()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Lets every waiter go (for shutdown). */
  close(): void {
    this.#wakeAll();
  }

  #wakeAll(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}
