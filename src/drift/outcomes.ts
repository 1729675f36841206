import { ExpiringJoin } from './join.js';

/** What the monitor reads of an Outcome record (schemas/outcome.avsc). */
export interface OutcomeRecord {
  request_id: string;
  /** The observed label (0 or 1) or value. */
  observed: number;
  observed_at: number;
}

/** One request id waiting on the outcomes side: the scores seen for it, and its label once known. */
interface Waiting {
  /** Version keys and their scores; matched at once when the label is already known. */
  predictions: { key: string; score: number }[];
  label: 0 | 1 | undefined;
}

export interface OutcomeJoinOptions {
  /** How long a request id waits for the other side: outcomes come minutes or hours after scores. */
  ttlMs: number;
  /** Request ids held at most; the oldest is settled first. Size it above event rate x ttlMs. */
  maxEntries: number;
  onMatch: (key: string, score: number, label: 0 | 1) => void;
  /** A prediction settled without an outcome (its time ran out, or it was evicted for room). */
  onUnmatched: (key: string) => void;
  /** An outcome settled without any prediction. */
  onOrphan: (requestId: string) => void;
}

/**
 * Joins scores with outcomes by request id, in either order: a prediction waits for its outcome
 * and an outcome for its predictions, each for at most ttlMs after the request id was first seen
 * on this side, among at most maxEntries request ids. Apart from the drift join because its time
 * is of another order (an outcome is observed long after the score), and a prediction's quality
 * counts once: when it meets its outcome, or as unmatched when its time is up.
 */
export class OutcomeJoin {
  readonly #join: ExpiringJoin<Waiting>;
  readonly #options: OutcomeJoinOptions;

  constructor(options: OutcomeJoinOptions) {
    this.#options = options;
    const settle = (requestId: string, waiting: Waiting) => this.#settle(requestId, waiting);
    this.#join = new ExpiringJoin<Waiting>({
      ttlMs: options.ttlMs,
      maxEntries: options.maxEntries,
      onExpire: settle,
      onEvict: settle,
    });
  }

  get size(): number {
    return this.#join.size;
  }

  get evictions(): number {
    return this.#join.evictions;
  }

  /** A version's score for a request; false when this version's score was already seen (a redelivery). */
  prediction(requestId: string, key: string, score: number, now: number): boolean {
    const waiting = this.#join.entry(requestId, now, newWaiting);
    if (waiting.predictions.some((p) => p.key === key)) return false;
    waiting.predictions.push({ key, score });
    if (waiting.label !== undefined) this.#options.onMatch(key, score, waiting.label);
    return true;
  }

  /** A request's observed label; false when it already had one (a redelivery). */
  outcome(requestId: string, label: 0 | 1, now: number): boolean {
    const waiting = this.#join.entry(requestId, now, newWaiting);
    if (waiting.label !== undefined) return false;
    waiting.label = label;
    for (const { key, score } of waiting.predictions) this.#options.onMatch(key, score, label);
    return true;
  }

  expire(now: number): void {
    this.#join.expire(now);
  }

  expireAll(): void {
    this.#join.expireAll();
  }

  #settle(requestId: string, waiting: Waiting): void {
    if (waiting.label === undefined) {
      for (const { key } of waiting.predictions) this.#options.onUnmatched(key);
    } else if (waiting.predictions.length === 0) {
      this.#options.onOrphan(requestId);
    }
  }
}

/** The label an observed value stands for, or undefined when it is not 0 or 1. */
export function labelOf(observed: number): 0 | 1 | undefined {
  return observed === 1 ? 1 : observed === 0 ? 0 : undefined;
}

function newWaiting(): Waiting {
  return { predictions: [], label: undefined };
}
