/**
 * Accumulation across windows, for a drift too slow for one window to call: Page's two-sided
 * CUSUM on each window's standardized location shift (statistics.ts, locationShift), computed on
 * the same frozen bins as the per-window tests. Each window adds its z minus an allowance k; the sum
 * never drops below 0 and is capped, so it forgets a past drift within a few windows once traffic
 * is back. A sum above the limit h says the same direction has been seen for longer than noise
 * explains: a steady creep, flagged while it is still small.
 *
 * With k = 1 and h = 4 (standard errors), one side of one subject reaches h by noise about once in
 * 15,000 windows (Siegmund's approximation); docs/drift.md has the measured rates.
 */

/** The two one-sided sums of one subject: evidence of a move up and of a move down. */
export interface CusumState {
  up: number;
  down: number;
}

export const CUSUM_START: Readonly<CusumState> = Object.freeze({ up: 0, down: 0 });

/** The sums after one more window; a window too small to test (z null) leaves them as they were. */
export function accumulate(
  previous: Readonly<CusumState>,
  z: number | null,
  allowance: number,
  limit: number,
): CusumState {
  if (z === null || !Number.isFinite(z)) return { ...previous };
  // Capped at twice the limit: after a long drift ends, the sum falls below the limit again within
  // about limit / allowance windows instead of as many windows as the drift lasted.
  const cap = 2 * limit;
  return {
    up: Math.min(cap, Math.max(0, previous.up + z - allowance)),
    down: Math.min(cap, Math.max(0, previous.down - z - allowance)),
  };
}

/**
 * The sums of every model version's subjects (`feature:amount`, `output:score`), kept between its
 * windows. Memory: two numbers per subject of each version with a profile.
 */
export class CusumMemory {
  readonly #byVersion = new Map<string, Map<string, CusumState>>();

  of(version: string): ReadonlyMap<string, CusumState> {
    return this.#byVersion.get(version) ?? new Map();
  }

  set(version: string, sums: Map<string, CusumState>): void {
    this.#byVersion.set(version, sums);
  }

  /** A version whose profile was replaced starts again from zero. */
  forget(version: string): void {
    this.#byVersion.delete(version);
  }
}
