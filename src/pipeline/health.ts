import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';

/**
 * Why a pipeline is not making progress by itself. Each is infrastructure, never the data: records
 * wait (and readiness says so) until it passes, instead of becoming dead letters.
 */
export const STALLS = {
  broker: 'the Kafka cluster has not answered the consumer recently',
  registry: 'the schema registry cannot be reached, so new schema ids cannot be read',
  publish: 'the broker refuses or does not acknowledge the records serve writes',
  inference: 'a model version fails on every batch, including a probe batch of zeros',
} as const;

export type Stall = keyof typeof STALLS;

/**
 * What /readyz and /healthz answer, and the one log line per change of state. A stall is set by
 * the stage that sees it and cleared by the same stage when it passes; `fatal` is for what will not
 * pass without a restart.
 */
export class PipelineHealth {
  readonly #log: Logger;
  readonly #metrics: ServeMetrics;
  readonly #since = new Map<Stall, number>();
  #fatal: unknown;

  constructor(logger: Logger, metrics: ServeMetrics) {
    this.#log = logger;
    this.#metrics = metrics;
    for (const reason of Object.keys(STALLS) as Stall[]) metrics.stalled.set({ reason }, 0);
  }

  /**
   * `level` error is for a stall that needs a person (a broker refusing writes); the others pass
   * by themselves and are warnings.
   */
  stall(reason: Stall, cause?: unknown, level: 'warn' | 'error' = 'warn'): void {
    if (this.#since.has(reason)) return;
    this.#since.set(reason, Date.now());
    this.#metrics.stalled.set({ reason }, 1);
    this.#log[level](
      { stall: reason, ...(cause === undefined ? {} : { err: cause }) },
      `stalled (${reason}): ${STALLS[reason]}${cause === undefined ? '' : `: ${describeError(cause)}`}; records wait, none is dead-lettered for it`,
    );
  }

  /**
   * The stall is over: the cause passed, or (`givenUp`, saying why) nothing waits on it any more,
   * though it may not have passed.
   */
  recover(reason: Stall, givenUp?: string): void {
    const since = this.#since.get(reason);
    if (since === undefined) return;
    this.#since.delete(reason);
    this.#metrics.stalled.set({ reason }, 0);
    this.#log.info(
      { stall: reason, seconds: (Date.now() - since) / 1_000 },
      givenUp === undefined ? `recovered (${reason})` : `no longer waiting (${reason}): ${givenUp}`,
    );
  }

  isStalled(reason: Stall): boolean {
    return this.#since.has(reason);
  }

  get stalls(): Stall[] {
    return [...this.#since.keys()];
  }

  /** Records the first fatal error; later ones are logged by whoever raised them. */
  fail(error: unknown): boolean {
    if (this.#fatal !== undefined) return false;
    this.#fatal = error ?? new Error('unknown failure');
    return true;
  }

  get fatal(): unknown {
    return this.#fatal;
  }

  healthy(): boolean {
    return this.#fatal === undefined;
  }
}
