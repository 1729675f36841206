/**
 * A wait between retries that stopping can cut short: retry loops that back off for seconds would
 * otherwise hold a shutdown until their timer fires.
 */
export class Backoff {
  #wake: (() => void) | undefined;

  /** Resolves after `ms`, or at once when wake() is called meanwhile. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** Ends the wait in progress, if any. */
  wake(): void {
    this.#wake?.();
  }
}
