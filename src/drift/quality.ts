import { decision } from './agreement.js';

/** Scores are clipped to [EPSILON, 1 - EPSILON] in the log loss, so one confident miss stays finite. */
export const LOG_LOSS_EPSILON = 1e-15;

/** Equal-width score bins of the expected calibration error, over [0, 1]. */
export const CALIBRATION_BINS = 10;

/** Realised quality of one model version over one window, from predictions joined with outcomes. */
export interface QualitySnapshot {
  /** Predictions settled in the window: matched with an outcome, or their join time ran out. */
  settled: number;
  /** Of those, the ones matched with an outcome. */
  matched: number;
  /** matched / settled; null when nothing settled. */
  outcomeShare: number | null;
  /** Matched outcomes with label 1. */
  positives: number;
  /** Rank-based (Mann-Whitney, ties counted half); null without both labels. */
  auc: number | null;
  /** Mean negative log likelihood, scores clipped by LOG_LOSS_EPSILON; null when nothing matched. */
  logLoss: number | null;
  /** At the model's threshold (a positive decision is a score strictly above it). */
  threshold: number;
  precision: number | null;
  recall: number | null;
  /** Expected calibration error over CALIBRATION_BINS equal-width bins; null when nothing matched. */
  ece: number | null;
}

/**
 * Realised quality of one version in one window. Streaming sums for everything but the AUC, which
 * ranks the window's matched (score, label) pairs when the window closes: those are kept, one score
 * and one label each. Their number is bounded by the window's events plus the outcome join's
 * entries (a pair is added when a prediction meets its outcome, once per prediction).
 */
export class QualityAccumulator {
  readonly threshold: number;
  #settled = 0;
  #scores: number[] = [];
  #labels: number[] = [];
  #positives = 0;
  #logLossSum = 0;
  #truePositives = 0;
  #predictedPositives = 0;
  readonly #binCount = new Array<number>(CALIBRATION_BINS).fill(0);
  readonly #binScore = new Array<number>(CALIBRATION_BINS).fill(0);
  readonly #binLabel = new Array<number>(CALIBRATION_BINS).fill(0);

  constructor(threshold: number) {
    this.threshold = threshold;
  }

  /** A prediction met its outcome: label 0 or 1, score a probability. */
  addMatched(score: number, label: 0 | 1): void {
    this.#settled += 1;
    this.#scores.push(score);
    this.#labels.push(label);
    this.#positives += label;
    this.#logLossSum += logLossTerm(score, label);
    if (decision(score, this.threshold)) {
      this.#predictedPositives += 1;
      this.#truePositives += label;
    }
    const bin = calibrationBin(score);
    this.#binCount[bin]! += 1;
    this.#binScore[bin]! += score;
    this.#binLabel[bin]! += label;
  }

  /** A prediction whose join time ran out with no outcome. */
  addUnmatched(): void {
    this.#settled += 1;
  }

  get settled(): number {
    return this.#settled;
  }

  snapshot(): QualitySnapshot {
    const matched = this.#scores.length;
    let ece: number | null = null;
    if (matched > 0) {
      ece = 0;
      for (let b = 0; b < CALIBRATION_BINS; b += 1) {
        const n = this.#binCount[b]!;
        if (n > 0) ece += (n / matched) * Math.abs(this.#binScore[b]! / n - this.#binLabel[b]! / n);
      }
    }
    return {
      settled: this.#settled,
      matched,
      outcomeShare: this.#settled > 0 ? matched / this.#settled : null,
      positives: this.#positives,
      auc: rankAuc(this.#scores, this.#labels),
      logLoss: matched > 0 ? this.#logLossSum / matched : null,
      threshold: this.threshold,
      precision: this.#predictedPositives > 0 ? this.#truePositives / this.#predictedPositives : null,
      recall: this.#positives > 0 ? this.#truePositives / this.#positives : null,
      ece,
    };
  }
}

export function logLossTerm(score: number, label: 0 | 1): number {
  const p = Math.min(Math.max(score, LOG_LOSS_EPSILON), 1 - LOG_LOSS_EPSILON);
  return label === 1 ? -Math.log(p) : -Math.log(1 - p);
}

/** The calibration bin of a score: [0, 0.1), ..., [0.9, 1]; scores outside [0, 1] go to the end bins. */
export function calibrationBin(score: number): number {
  return Math.min(CALIBRATION_BINS - 1, Math.max(0, Math.floor(score * CALIBRATION_BINS)));
}

/**
 * AUC from ranks: (sum of the positives' ranks - P(P+1)/2) / (P N), with tied scores given their
 * average rank, which counts a tied positive-negative pair as half a correct ordering. O(n log n).
 */
export function rankAuc(scores: readonly number[], labels: readonly number[]): number | null {
  const n = scores.length;
  let positives = 0;
  for (const label of labels) positives += label;
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSum = 0;
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && scores[order[end]!] === scores[order[start]!]) end += 1;
    // Ranks start..end-1 (zero-based) share their average, one-based: (start + 1 + end) / 2.
    const rank = (start + 1 + end) / 2;
    for (let i = start; i < end; i += 1) if (labels[order[i]!] === 1) rankSum += rank;
    start = end;
  }
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Limits a quality snapshot must meet to pass as a rollout gate; an absent limit is not checked. */
export interface QualityGate {
  /** Matched outcomes needed before the figures are judged at all. */
  minMatched: number;
  minAuc?: number;
  maxLogLoss?: number;
  minPrecision?: number;
  minRecall?: number;
  maxEce?: number;
  minOutcomeShare?: number;
}

export interface GateVerdict {
  /** pass: every limit met; fail: one or more missed; insufficient: too few outcomes to judge. */
  verdict: 'pass' | 'fail' | 'insufficient';
  /** One line per limit missed (or why the evidence is insufficient). */
  reasons: string[];
}

/**
 * Judges a version's realised quality against a gate. A figure that could not be computed (no
 * positives for the AUC, no positive decisions for the precision) is insufficient evidence, never a
 * pass: a gate only passes on figures it could check.
 */
export function evaluateQualityGate(quality: QualitySnapshot | null, gate: QualityGate): GateVerdict {
  if (quality === null || quality.matched < gate.minMatched) {
    return {
      verdict: 'insufficient',
      reasons: [`${quality?.matched ?? 0} predictions matched with an outcome, ${gate.minMatched} needed`],
    };
  }
  const checks: [string, number | null, number | undefined, 'min' | 'max'][] = [
    ['auc', quality.auc, gate.minAuc, 'min'],
    ['log loss', quality.logLoss, gate.maxLogLoss, 'max'],
    ['precision', quality.precision, gate.minPrecision, 'min'],
    ['recall', quality.recall, gate.minRecall, 'min'],
    ['ece', quality.ece, gate.maxEce, 'max'],
    ['outcome share', quality.outcomeShare, gate.minOutcomeShare, 'min'],
  ];
  const missing: string[] = [];
  const failed: string[] = [];
  for (const [name, value, limit, side] of checks) {
    if (limit === undefined) continue;
    if (value === null) missing.push(`${name} could not be computed`);
    else if (side === 'min' ? value < limit : value > limit) {
      failed.push(`${name} ${value.toFixed(4)} ${side === 'min' ? '<' : '>'} ${limit}`);
    }
  }
  if (failed.length > 0) return { verdict: 'fail', reasons: failed };
  if (missing.length > 0) return { verdict: 'insufficient', reasons: missing };
  return { verdict: 'pass', reasons: [] };
}
