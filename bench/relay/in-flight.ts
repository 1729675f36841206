/**
 * Owns running promises (the relay's produce calls) so none is left floating: add() waits while
 * `limit` are running, which is the relay's backpressure, and idle() waits for all of them. A
 * failure goes to onFailure, once, and nowhere else.
 */
export class InFlight {
  readonly #limit: number;
  readonly #onFailure: (error: unknown) => void;
  readonly #running = new Set<Promise<void>>();
  #failed = false;

  constructor(limit: number, onFailure: (error: unknown) => void) {
    this.#limit = limit;
    this.#onFailure = onFailure;
  }

  async add(work: Promise<unknown>): Promise<void> {
    const tracked: Promise<void> = work
      .then(
        () => undefined,
        (error: unknown) => {
          if (this.#failed) return;
          this.#failed = true;
          this.#onFailure(error);
        },
      )
      .finally(() => this.#running.delete(tracked));
    this.#running.add(tracked);
    while (this.#running.size >= this.#limit) await Promise.race(this.#running);
  }

  async idle(): Promise<void> {
    await Promise.all(this.#running);
  }
}
