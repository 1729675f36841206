import { SECURITY_CODES, isStreamscoreError } from '../errors.js';

/** What a record waiting on the registry needs from whoever consumes it. */
export interface Waiting {
  /** Keeps the group membership alive during the wait. */
  heartbeat(): Promise<void>;
  /** False once the record should be given up: stopping, or its partition is no longer ours. */
  live(): boolean;
}

export type RegistryOutcome<T> =
  | { outcome: 'answered'; value: T }
  /** The record was given up while waiting; it is read again by whoever reads the partition next. */
  | { outcome: 'given up' }
  /** The registry refused (credentials, TLS): waiting will not change that. */
  | { outcome: 'refused'; error: unknown };

const BACKOFF_MS = { first: 200, max: 5_000 };
const HEARTBEAT_MS = 1_000;

/**
 * Runs `attempt` until the registry answers it: a retriable REGISTRY_UNAVAILABLE (the registry did
 * not answer) is waited out, 0.2 s doubling to 5 s between tries, with a heartbeat at least every
 * second, for as long as the record stays live; `stalled` is told at each failed try. Other errors
 * are thrown as they are.
 */
export async function untilRegistryAnswers<T>(
  attempt: () => Promise<T>,
  waiting: Waiting,
  stalled: (error: unknown) => void,
): Promise<RegistryOutcome<T>> {
  let backoff = BACKOFF_MS.first;
  for (;;) {
    try {
      return { outcome: 'answered', value: await attempt() };
    } catch (error) {
      if (isStreamscoreError(error) && SECURITY_CODES.has(error.code)) return { outcome: 'refused', error };
      if (!isStreamscoreError(error) || error.code !== 'REGISTRY_UNAVAILABLE') throw error;
      if (!error.retriable) return { outcome: 'refused', error };
      stalled(error);
      if (!(await waitLive(waiting, backoff))) return { outcome: 'given up' };
      backoff = Math.min(backoff * 2, BACKOFF_MS.max);
    }
  }
}

/** Waits `ms` with heartbeats; false when the record should be given up meanwhile. */
async function waitLive(waiting: Waiting, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(HEARTBEAT_MS, until - Date.now())));
    if (!waiting.live()) return false;
    await waiting.heartbeat().catch(() => undefined);
  }
  return waiting.live();
}
