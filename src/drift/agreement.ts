/**
 * Primary-versus-shadow comparison of one output score, from ShadowPrediction records: each record
 * already carries the published (served) outputs beside the shadow's, so no join is needed for the
 * values. Streaming sums only: memory does not grow with the window.
 */

/**
 * A model's decision at its threshold. Strictly above, as the fraud models' `label` output is the
 * argmax of [1 - score, score], which is class 0 on a tie (training/README.md).
 */
export function decision(score: number, threshold: number): boolean {
  return score > threshold;
}

export interface AgreementSnapshot {
  /** Records with a finite score on both sides. */
  compared: number;
  /** Records where both decisions were the same. */
  agreed: number;
  /** agreed / compared; null when nothing was compared. */
  agreement: number | null;
  /** Mean of |served score - shadow score|; null when nothing was compared. */
  meanAbsDiff: number | null;
  /** Pearson correlation of the two scores; null with fewer than 2 records or a constant side. */
  correlation: number | null;
  /** Records lacking the score on either side, or with a non-finite one. */
  missing: number;
  /** Predictions of the served version that got no record from this shadow within the join time. */
  servedOnly: number;
  /** Records of this shadow whose prediction never arrived within the join time. */
  shadowOnly: number;
  /** Unmatched records dropped from a full join before their time was up: one-sided or not, unknown. */
  evicted: number;
  servedThreshold: number;
  shadowThreshold: number;
}

export class AgreementAccumulator {
  readonly servedThreshold: number;
  readonly shadowThreshold: number;
  #compared = 0;
  #agreed = 0;
  #absDiff = 0;
  #missing = 0;
  #servedOnly = 0;
  #shadowOnly = 0;
  #evicted = 0;
  // Welford-style co-moments: stable where raw sums of squares of small scores would cancel.
  #meanServed = 0;
  #meanShadow = 0;
  #m2Served = 0;
  #m2Shadow = 0;
  #coMoment = 0;

  constructor(servedThreshold: number, shadowThreshold: number) {
    this.servedThreshold = servedThreshold;
    this.shadowThreshold = shadowThreshold;
  }

  add(served: number | undefined, shadow: number | undefined): void {
    if (typeof served !== 'number' || typeof shadow !== 'number') {
      this.#missing += 1;
      return;
    }
    if (!Number.isFinite(served) || !Number.isFinite(shadow)) {
      this.#missing += 1;
      return;
    }
    this.#compared += 1;
    if (decision(served, this.servedThreshold) === decision(shadow, this.shadowThreshold)) this.#agreed += 1;
    this.#absDiff += Math.abs(served - shadow);
    const n = this.#compared;
    const dServed = served - this.#meanServed;
    const dShadow = shadow - this.#meanShadow;
    this.#meanServed += dServed / n;
    this.#meanShadow += dShadow / n;
    this.#m2Served += dServed * (served - this.#meanServed);
    this.#m2Shadow += dShadow * (shadow - this.#meanShadow);
    this.#coMoment += dServed * (shadow - this.#meanShadow);
  }

  countServedOnly(): void {
    this.#servedOnly += 1;
  }

  countShadowOnly(): void {
    this.#shadowOnly += 1;
  }

  countEvicted(): void {
    this.#evicted += 1;
  }

  snapshot(): AgreementSnapshot {
    const n = this.#compared;
    const spread = this.#m2Served * this.#m2Shadow;
    return {
      compared: n,
      agreed: this.#agreed,
      agreement: n === 0 ? null : this.#agreed / n,
      meanAbsDiff: n === 0 ? null : this.#absDiff / n,
      correlation:
        n < 2 || !(spread > 0) ? null : Math.max(-1, Math.min(1, this.#coMoment / Math.sqrt(spread))),
      missing: this.#missing,
      servedOnly: this.#servedOnly,
      shadowOnly: this.#shadowOnly,
      evicted: this.#evicted,
      servedThreshold: this.servedThreshold,
      shadowThreshold: this.shadowThreshold,
    };
  }
}
