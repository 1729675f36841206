/**
 * The two statistics compared per feature and per output score, both on the frozen reference bins:
 * the Population Stability Index (how much the distribution moved) and Pearson's chi-square test of
 * homogeneity (whether the move is more than this window's sampling noise), plus Holm's correction
 * across the tests of one window.
 *
 * Why chi-square and not KS or Wasserstein: half the fraud features are discrete (binary, hours,
 * counts), where KS p-values are wrong (conservative by an unknown amount), and the window keeps
 * only bin counts, on which chi-square is the natural test; it uses exactly the bins PSI uses, is
 * two-sample (the reference's 50,000 rows are a sample too), and its p-value shrinks with the
 * window size where PSI's noise does not. Wasserstein distance has no p-value and its scale is
 * each feature's own. docs/drift.md has the full argument and the measured error rates.
 */

/**
 * Proportion given to an empty bin in PSI: 1e-4, one event in ten thousand. Without it an empty
 * bin makes PSI infinite. It is below 1/n for every window under 10,000 events, so it only ever
 * replaces a true zero; an empty live bin where the reference holds 10 % then adds about 0.69 to PSI,
 * itself a strong signal (reference bins are never empty by construction; the floor applies to
 * both sides anyway).
 */
export const PSI_FLOOR = 1e-4;

/**
 * PSI = sum over bins of (live - ref) * ln(live / ref), with live and ref the bin proportions, each
 * floored at `floor`. Under no drift its expectation is about (bins - 1) * (1/n + 1/N) for n live
 * and N reference events (0.005 for 10 bins, n = 2,000): small windows make it noisy, which is why
 * the status rule also asks the chi-square test. Null when the window holds no events.
 */
export function psi(live: readonly number[], reference: readonly number[], floor = PSI_FLOOR): number | null {
  checkSameLength(live, reference);
  const n = sum(live);
  const total = sum(reference);
  if (n <= 0 || total <= 0) return null;
  let value = 0;
  for (let i = 0; i < live.length; i += 1) {
    const a = Math.max(live[i]! / n, floor);
    const r = Math.max(reference[i]! / total, floor);
    value += (a - r) * Math.log(a / r);
  }
  return value;
}

export interface ChiSquareResult {
  statistic: number;
  degreesOfFreedom: number;
  pValue: number;
}

/**
 * Pearson's chi-square test of homogeneity on the 2 x k table (live counts, reference counts).
 * Two-sample, so the reference's own sampling noise (N = 50,000 training rows) is accounted for;
 * exact in form for binned and discrete data, unlike KS. Bins empty on both sides are dropped.
 *
 * Null, meaning "not enough data to test", when the window is empty, when fewer than two bins
 * remain, or when a live bin's expected count is below `minExpected` (Cochran's rule: the
 * chi-square approximation of the p-value is poor below 5).
 */
export function chiSquareHomogeneity(
  live: readonly number[],
  reference: readonly number[],
  minExpected = 5,
): ChiSquareResult | null {
  checkSameLength(live, reference);
  const n = sum(live);
  const total = sum(reference);
  if (n <= 0 || total <= 0) return null;
  let statistic = 0;
  let bins = 0;
  for (let i = 0; i < live.length; i += 1) {
    const a = live[i]!;
    const r = reference[i]!;
    const pooled = a + r;
    if (pooled === 0) continue;
    bins += 1;
    if ((n * pooled) / (n + total) < minExpected) return null;
    // (a/n - r/N)^2 summed over both rows of the table, rearranged to stay exact in integers longer.
    const diff = a * total - r * n;
    statistic += (diff * diff) / (n * total * pooled);
  }
  if (bins < 2) return null;
  const degreesOfFreedom = bins - 1;
  return { statistic, degreesOfFreedom, pValue: chiSquareSurvival(statistic, degreesOfFreedom) };
}

/**
 * Where the window lies against the reference on an ordered feature, from bin counts alone: the
 * mean ridit of the window's values minus 1/2, i.e. P(live > reference) - P(live < reference), halved
 * (the Mann-Whitney statistic on the frozen bins). 0 under no drift; a normal feature moved by
 * d standard deviations gives about 0.28 d. `z` standardizes it with its two-sample standard error,
 * sqrt(v (1/n + 1/N)), v the variance of the reference's ridits (ties in a bin share one ridit, so
 * discrete features are exact). Null for an empty side or a single-valued reference.
 */
export function locationShift(
  live: readonly number[],
  reference: readonly number[],
): { shift: number; z: number } | null {
  checkSameLength(live, reference);
  const n = sum(live);
  const total = sum(reference);
  if (n <= 0 || total <= 0) return null;
  let below = 0;
  let mean = 0;
  let square = 0;
  for (let i = 0; i < live.length; i += 1) {
    const p = reference[i]! / total;
    const ridit = below + p / 2;
    below += p;
    mean += (live[i]! * ridit) / n;
    square += p * ridit * ridit;
  }
  const variance = square - 0.25;
  if (!(variance > 1e-12)) return null;
  const shift = mean - 0.5;
  return { shift, z: shift / Math.sqrt(variance * (1 / n + 1 / total)) };
}

/** A category's rate change: live / reference rate, and how far it moved at least. */
export interface RateChange {
  /** live rate / reference rate (2 = doubled, 0.5 = halved). */
  ratio: number;
  /**
   * The factor it moved by at least, either way, with 95 % confidence (>= 1): the log ratio's
   * interval, ln(ratio) -/+ 1.96 sqrt((1 - p)/(n p) + (1 - r)/(N r)), nearest end to 0. 1 when the
   * interval holds no change.
   */
  bound: number;
}

/**
 * The category whose rate moved most, judged by its confidence bound, so a rare category's noisy
 * rate needs more evidence than a common one's. A relative measure on purpose: 8 % -> 16 % and
 * 40 % -> 80 % are both a doubling, where PSI, Hellinger or Jensen-Shannon rate the first a small
 * change. An empty live bin counts as half an event. Null when a side is empty.
 */
export function largestRateChange(live: readonly number[], reference: readonly number[]): RateChange | null {
  checkSameLength(live, reference);
  const n = sum(live);
  const total = sum(reference);
  if (n <= 0 || total <= 0) return null;
  let largest: RateChange = { ratio: 1, bound: 1 };
  for (let i = 0; i < live.length; i += 1) {
    const r = reference[i]! / total;
    if (!(r > 0 && r < 1)) continue;
    const p = Math.max(live[i]!, 0.5) / n;
    const ratio = p / r;
    const se = Math.sqrt(Math.max(0, 1 - p) / (n * p) + (1 - r) / (total * r));
    const bound = Math.exp(Math.max(0, Math.abs(Math.log(ratio)) - Z_95 * se));
    if (
      bound > largest.bound ||
      (bound === largest.bound && Math.abs(Math.log(ratio)) > Math.abs(Math.log(largest.ratio)))
    ) {
      largest = { ratio, bound };
    }
  }
  return largest;
}

/** The two-sided 95 % normal quantile. */
const Z_95 = 1.959964;

/**
 * The reference as the window's own time-slice mix would have drawn it: each slice's bin shares,
 * weighted by the share of the window's events in that slice. Returned as counts of an equivalent
 * sample, its Kish effective size 1 / sum(w_s^2 / N_s), so that the two-sample tests above weigh the
 * reference's noise right: a window inside one slice is compared with that slice's rows, as a
 * plain two-sample test; a window spread like the reference is compared with about all of them.
 * Null when the window has no event in any slice.
 */
export function sliceMixture(
  table: readonly (readonly number[])[],
  windowSlices: readonly number[],
): number[] | null {
  if (table.length !== windowSlices.length) {
    throw new RangeError(`the window has ${windowSlices.length} slices, the reference ${table.length}`);
  }
  const n = sum(windowSlices);
  if (n <= 0) return null;
  const bins = table[0]?.length ?? 0;
  const shares = new Array<number>(bins).fill(0);
  let inverse = 0;
  for (let s = 0; s < table.length; s += 1) {
    const weight = windowSlices[s]! / n;
    const rows = sum(table[s]!);
    if (weight === 0 || rows === 0) continue;
    for (let b = 0; b < bins; b += 1) shares[b]! += (weight * table[s]![b]!) / rows;
    inverse += (weight * weight) / rows;
  }
  if (inverse === 0) return null;
  const effective = 1 / inverse;
  return shares.map((share) => share * effective);
}

/** P(X >= x) for X chi-square with df degrees of freedom: Q(df/2, x/2). */
export function chiSquareSurvival(x: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`chi-square degrees of freedom must be > 0, got ${df}`);
  if (Number.isNaN(x)) return Number.NaN;
  if (x <= 0) return 1;
  return regularizedGammaQ(df / 2, x / 2);
}

/**
 * Holm's step-down adjustment: the adjusted p-values, in the input's order, such that "adjusted p <
 * alpha" rejects with a family-wise error rate of at most alpha. Nulls (untested) stay null and do
 * not count towards the family size. Never less powerful than Bonferroni, valid under any dependence.
 */
export function holmAdjust(pValues: readonly (number | null)[]): (number | null)[] {
  const order = pValues
    .map((p, index) => ({ p, index }))
    .filter((entry): entry is { p: number; index: number } => entry.p !== null)
    .sort((x, y) => x.p - y.p);
  const m = order.length;
  const adjusted: (number | null)[] = pValues.map(() => null);
  let running = 0;
  order.forEach(({ p, index }, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    adjusted[index] = running;
  });
  return adjusted;
}

/** ln Γ(x) for x > 0: Lanczos approximation (g = 7, 9 terms), relative error about 1e-15. */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma needs x > 0, got ${x}`);
  if (x < 0.5) {
    // Reflection keeps the approximation in its accurate range.
    return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  }
  const z = x - 1;
  let series = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i += 1) series += LANCZOS[i]! / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(series);
}

/** Q(a, x) = Γ(a, x) / Γ(a), the upper regularized incomplete gamma function (a > 0, x >= 0). */
export function regularizedGammaQ(a: number, x: number): number {
  if (!(a > 0)) throw new RangeError(`regularizedGammaQ needs a > 0, got ${a}`);
  if (!(x >= 0)) throw new RangeError(`regularizedGammaQ needs x >= 0, got ${x}`);
  if (x === 0) return 1;
  // The series converges fast below a + 1, the continued fraction above (Numerical Recipes 6.2);
  // the continued fraction keeps tiny upper tails accurate to relative precision.
  if (x < a + 1) return 1 - gammaSeries(a, x);
  return gammaContinuedFraction(a, x);
}

/** P(a, x) by its power series. */
function gammaSeries(a: number, x: number): number {
  let term = 1 / a;
  let total = term;
  for (let n = 1; n < MAX_ITERATIONS; n += 1) {
    term *= x / (a + n);
    total += term;
    if (Math.abs(term) < Math.abs(total) * EPSILON) break;
  }
  return total * Math.exp(-x + a * Math.log(x) - logGamma(a));
}

/** Q(a, x) by its continued fraction, modified Lentz. */
function gammaContinuedFraction(a: number, x: number): number {
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITERATIONS; i += 1) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPSILON) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];
const MAX_ITERATIONS = 1_000;
const EPSILON = 1e-15;
const TINY = 1e-300;

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function checkSameLength(live: readonly number[], reference: readonly number[]): void {
  if (live.length !== reference.length) {
    throw new RangeError(`live has ${live.length} bins, the reference ${reference.length}`);
  }
}
