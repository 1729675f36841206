import type { Logger } from '../telemetry/logger.js';

/**
 * SIGTERM and SIGINT, from the first moment of a command: the first signal asks for a clean stop
 * (whatever phase the command is in), a second one, or `timeoutMs` after the first, exits at once
 * with status 1.
 */
export class Shutdown {
  /** Resolves at the first signal. */
  readonly requested: Promise<NodeJS.Signals>;
  #signal: NodeJS.Signals | undefined;
  #resolve!: (signal: NodeJS.Signals) => void;
  readonly #handlers: (() => void)[] = [];
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #onSignal = (signal: NodeJS.Signals) => this.#received(signal);

  constructor(logger: Logger, timeoutMs: number) {
    this.#logger = logger;
    this.#timeoutMs = timeoutMs;
    this.requested = new Promise((resolve) => (this.#resolve = resolve));
    process.on('SIGTERM', this.#onSignal);
    process.on('SIGINT', this.#onSignal);
  }

  get isRequested(): boolean {
    return this.#signal !== undefined;
  }

  /** Runs `stop` at the first signal (at once, if one came already). */
  onRequest(stop: () => void): void {
    if (this.#signal !== undefined) stop();
    else this.#handlers.push(stop);
  }

  /**
   * `work`'s value, or undefined when a signal comes first; the work is then left to finish or fail
   * on its own (the command is exiting).
   */
  async race<T>(work: Promise<T>): Promise<T | undefined> {
    const outcome = await Promise.race([work, this.requested.then(() => undefined)]);
    if (outcome === undefined) work.catch(() => undefined);
    return outcome;
  }

  dispose(): void {
    process.off('SIGTERM', this.#onSignal);
    process.off('SIGINT', this.#onSignal);
  }

  #received(signal: NodeJS.Signals): void {
    if (this.#signal !== undefined) {
      this.#logger.warn({ signal }, 'second signal: exiting now; uncommitted records will be read again');
      this.#logger.flush();
      process.exit(1);
    }
    this.#signal = signal;
    this.#logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      this.#logger.error(
        { timeoutMs: this.#timeoutMs },
        'shutdown took too long; exiting without a final commit',
      );
      this.#logger.flush();
      process.exit(1);
    }, this.#timeoutMs);
    timer.unref();
    this.#resolve(signal);
    for (const stop of this.#handlers.splice(0)) stop();
  }
}
