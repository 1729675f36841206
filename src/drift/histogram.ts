import { binIndex, type DistributionProfile } from './reference.js';

/** What one window saw of one feature or output: counts per frozen bin, and its moments. */
export interface HistogramSnapshot {
  counts: number[];
  /** Values counted (finite ones). */
  count: number;
  /** Values absent or not finite, not counted. */
  missing: number;
  /** Values counted that lie outside the reference's [min, max]. */
  outside: number;
  /** Null when count is 0. */
  mean: number | null;
  /** Population standard deviation (ddof 0, like the reference); null when count is 0. */
  std: number | null;
}

/**
 * Counts values into the reference's frozen bins and keeps a running mean and variance (Welford),
 * so its memory is one number per bin whatever the window size. Values are rounded to float32
 * before binning: that is what the model is fed and what the reference was computed over, so a
 * value and an edge compare the same way here as in training.
 */
export class BinnedHistogram {
  readonly #edges: readonly number[];
  readonly #min: number;
  readonly #max: number;
  readonly #counts: number[];
  #count = 0;
  #outside = 0;
  #missing = 0;
  #mean = 0;
  #m2 = 0;

  constructor(
    profile: Pick<DistributionProfile, 'edges'> & Partial<Pick<DistributionProfile, 'min' | 'max'>>,
  ) {
    this.#edges = profile.edges;
    this.#min = profile.min ?? -Infinity;
    this.#max = profile.max ?? Infinity;
    this.#counts = new Array<number>(profile.edges.length + 1).fill(0);
  }

  add(value: number | undefined | null): void {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      this.#missing += 1;
      return;
    }
    const single = Math.fround(value);
    this.#counts[binIndex(this.#edges, single)]! += 1;
    this.#count += 1;
    if (single < this.#min || single > this.#max) this.#outside += 1;
    const delta = value - this.#mean;
    this.#mean += delta / this.#count;
    this.#m2 += delta * (value - this.#mean);
  }

  snapshot(): HistogramSnapshot {
    const empty = this.#count === 0;
    return {
      counts: [...this.#counts],
      count: this.#count,
      missing: this.#missing,
      outside: this.#outside,
      mean: empty ? null : this.#mean,
      std: empty ? null : Math.sqrt(Math.max(0, this.#m2 / this.#count)),
    };
  }
}
