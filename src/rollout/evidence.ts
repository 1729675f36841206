/**
 * A rollout step's evidence, gathered from what serve writes: predictions (the canary's and the
 * primary's scores, and the canary events the fallback took, by their `streamscore.fallback-from`
 * header), dead letters (INFERENCE_FAILED ones name the version that failed), shadow records (the
 * canary shadowing the primary gives their decision agreement) and outcomes (joined by request id
 * with the window's predictions: each side's realised AUC). Runtime cost comes from replica
 * metrics and is set when known.
 */
import { DLQ_HEADERS } from '../codec/dead-letter.js';
import type { Prediction } from '../codec/predictions.js';
import { scoreOf } from '../backfill/compare.js';
import { FALLBACK_HEADER } from '../pipeline/scoring.js';
import type { ShadowPrediction } from '../codec/predictions.js';
import { AgreementAccumulator } from '../drift/agreement.js';
import { rankAuc } from '../drift/quality.js';
import { SCORE_BINS, scoreBin, type StepEvidence } from './plan.js';

/** Predictions kept for joining outcomes, at most (the oldest are forgotten first). */
const MAX_JOINED = 200_000;
/**
 * Labelled events of each class a side needs before its AUC is given: with fewer, the AUC of a
 * window moves by more than any drop worth gating on.
 */
export const MIN_PER_CLASS = 50;

export class StepWindow {
  readonly model: string;
  readonly primary: string;
  readonly canary: string;
  #canaryEvents = 0;
  #canaryFailures = 0;
  readonly #canaryBins = new Array<number>(SCORE_BINS).fill(0);
  readonly #primaryBins = new Array<number>(SCORE_BINS).fill(0);
  #extra: Partial<StepEvidence> = {};
  readonly #agreement: AgreementAccumulator;
  /** Scores of the window's predictions by request id, and which side made them, for outcomes. */
  readonly #scored = new Map<string, { canary: boolean; score: number }>();
  readonly #labelled = {
    canary: { scores: [] as number[], labels: [] as number[] },
    primary: { scores: [] as number[], labels: [] as number[] },
  };

  constructor(model: string, primary: string, canary: string, thresholds = { primary: 0.5, canary: 0.5 }) {
    this.model = model;
    this.primary = primary;
    this.canary = canary;
    this.#agreement = new AgreementAccumulator(thresholds.primary, thresholds.canary);
  }

  #remember(id: string, canary: boolean, score: number | undefined): void {
    if (score === undefined) return;
    if (this.#scored.size >= MAX_JOINED) this.#scored.delete(this.#scored.keys().next().value!);
    this.#scored.set(id, { canary, score });
  }

  /** A record of the shadow topic: the canary shadowing the primary counts for agreement. */
  addShadow(record: ShadowPrediction): void {
    if (record.model_name !== this.model) return;
    if (record.model_version !== this.canary || record.served_version !== this.primary) return;
    this.#agreement.add(scoreOf(record.served_outputs), scoreOf(record.outputs));
  }

  /** A record of the outcomes topic: a label (0 or 1) for a prediction of this window, if it is one. */
  addOutcome(requestId: string, observed: number): void {
    const scored = this.#scored.get(requestId);
    if (scored === undefined || (observed !== 0 && observed !== 1)) return;
    this.#scored.delete(requestId);
    const side = scored.canary ? this.#labelled.canary : this.#labelled.primary;
    side.scores.push(scored.score);
    side.labels.push(observed);
  }

  /** A record of the predictions topic, with its headers. */
  addPrediction(prediction: Prediction, headers: Readonly<Record<string, string | undefined>>): void {
    if (prediction.model_name !== this.model) return;
    if (headers[FALLBACK_HEADER] === this.canary && prediction.route === 'fallback') {
      this.#canaryEvents += 1;
      this.#canaryFailures += 1;
      return;
    }
    const score = scoreOf(prediction.outputs);
    if (prediction.model_version === this.canary && prediction.route === 'canary') {
      this.#canaryEvents += 1;
      if (score !== undefined) this.#canaryBins[scoreBin(score)]! += 1;
      this.#remember(prediction.request_id, true, score);
    } else if (prediction.model_version === this.primary && prediction.route === 'primary') {
      if (score !== undefined) this.#primaryBins[scoreBin(score)]! += 1;
      this.#remember(prediction.request_id, false, score);
    }
  }

  /** A record of the dead-letter topic: an INFERENCE_FAILED one of the canary counts against it. */
  addDeadLetter(headers: Readonly<Record<string, string | undefined>>): void {
    if (headers[DLQ_HEADERS.reason] !== 'INFERENCE_FAILED') return;
    if (headers[DLQ_HEADERS.message]?.startsWith(`${this.model}/${this.canary}:`) !== true) return;
    this.#canaryEvents += 1;
    this.#canaryFailures += 1;
  }

  /** Figures this window cannot see (runtime cost, shadow agreement, realised quality). */
  set(extra: Partial<StepEvidence>): void {
    this.#extra = { ...this.#extra, ...extra };
  }

  evidence(): StepEvidence {
    const agreement = this.#agreement.snapshot().agreement;
    const auc = (side: { scores: number[]; labels: number[] }) => {
      const positives = side.labels.filter((label) => label === 1).length;
      if (positives < MIN_PER_CLASS || side.labels.length - positives < MIN_PER_CLASS) return undefined;
      return rankAuc(side.scores, side.labels) ?? undefined;
    };
    return {
      ...(agreement === null ? {} : { agreement }),
      ...optional('canaryAuc', auc(this.#labelled.canary)),
      ...optional('primaryAuc', auc(this.#labelled.primary)),
      ...this.#extra,
      canaryEvents: this.#canaryEvents,
      canaryFailures: this.#canaryFailures,
      canaryScoreBins: [...this.#canaryBins],
      primaryScoreBins: [...this.#primaryBins],
    };
  }
}

function optional<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}
