export interface BatcherOptions {
  /** A batch is cut as soon as it holds this many items. */
  maxRows: number;
  /**
   * A batch becomes due this long after its first item arrived, milliseconds. 0 = at once: a
   * waiting consumer gets everything added before the adding code next yields (one synchronous
   * run of add() calls, e.g. one decoded slice of a fetch), not just the first item.
   */
  lingerMs: number;
}

/**
 * Gathers items into batches for a single consumer that pulls them with next().
 *
 * A batch is handed out when it is full (maxRows) or due (lingerMs after its first item), whichever
 * comes first. A due batch that the consumer is not yet ready for keeps filling up to maxRows, so a
 * busy consumer gets bigger batches rather than a queue of small ones. Items leave in the order they
 * were added, so per-partition order holds as long as one consumer processes batches in order.
 * How many items may wait is not the batcher's business: intake bounds it (PendingLimit).
 */
export class MicroBatcher<T> {
  readonly #options: BatcherOptions;
  #current: T[] = [];
  #currentDue = false;
  readonly #full: T[][] = [];
  #timer: NodeJS.Timeout | undefined;
  #waiter: ((batch: T[] | undefined) => void) | undefined;
  #closed = false;

  constructor(options: BatcherOptions) {
    if (!Number.isInteger(options.maxRows) || options.maxRows < 1) {
      throw new RangeError(`maxRows must be a whole number >= 1, got ${options.maxRows}`);
    }
    if (!(options.lingerMs >= 0)) throw new RangeError(`lingerMs must be >= 0, got ${options.lingerMs}`);
    this.#options = { ...options };
  }

  /** Items waiting to be handed out (not yet taken by next()). */
  get queued(): number {
    return this.#current.length + this.#full.reduce((sum, batch) => sum + batch.length, 0);
  }

  get closed(): boolean {
    return this.#closed;
  }

  add(item: T): void {
    if (this.#closed) throw new Error('MicroBatcher.add after close()');
    this.#current.push(item);
    if (this.#current.length === 1) {
      if (this.#options.lingerMs > 0) this.#timer = setTimeout(this.#onLinger, this.#options.lingerMs);
      // A waiting consumer would only run after the adding code yields anyway; waking it then hands
      // over the items added meanwhile in the same batch instead of the first item alone.
      else queueMicrotask(this.#onLinger);
    }
    if (this.#current.length >= this.#options.maxRows) {
      this.#cut();
      this.#wake();
    }
  }

  /**
   * The next batch, once one is full or due; undefined once close() was called and every item
   * was handed out. One consumer at a time.
   */
  next(): Promise<T[] | undefined> {
    if (this.#waiter !== undefined) throw new Error('MicroBatcher.next: another next() is still waiting');
    const ready = this.#take();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Makes what is queued due at once (for shutdown or a drain). */
  flush(): void {
    if (this.#current.length > 0) this.#currentDue = true;
    this.#wake();
  }

  /** No more items will come: everything queued is handed out, then next() yields undefined. */
  close(): void {
    this.#closed = true;
    this.flush();
    if (this.#waiter !== undefined && this.queued === 0) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter(undefined);
    }
  }

  readonly #onLinger = (): void => {
    this.#timer = undefined;
    if (this.#current.length > 0) this.#currentDue = true;
    this.#wake();
  };

  #cut(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#full.push(this.#current);
    this.#current = [];
    this.#currentDue = false;
  }

  #take(): T[] | undefined {
    if (this.#full.length > 0) return this.#full.shift();
    if (this.#current.length > 0 && (this.#currentDue || this.#closed)) {
      this.#cut();
      return this.#full.shift();
    }
    return undefined;
  }

  #wake(): void {
    if (this.#waiter === undefined) return;
    const ready = this.#take();
    if (ready === undefined) return;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter(ready);
  }
}
