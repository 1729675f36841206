/**
 * A rollout step's evidence, gathered from what serve writes: predictions (the canary's and the
 * primary's scores, and the canary events the fallback took, by their `streamscore.fallback-from`
 * header) and dead letters (INFERENCE_FAILED ones name the version that failed). Runtime cost and
 * quality come from elsewhere (replica metrics, drift reports) and are set when known.
 */
import { DLQ_HEADERS } from '../codec/dead-letter.js';
import type { Prediction } from '../codec/predictions.js';
import { scoreOf } from '../backfill/compare.js';
import { FALLBACK_HEADER } from '../pipeline/scoring.js';
import { SCORE_BINS, scoreBin, type StepEvidence } from './plan.js';

export class StepWindow {
  readonly model: string;
  readonly primary: string;
  readonly canary: string;
  #canaryEvents = 0;
  #canaryFailures = 0;
  readonly #canaryBins = new Array<number>(SCORE_BINS).fill(0);
  readonly #primaryBins = new Array<number>(SCORE_BINS).fill(0);
  #extra: Partial<StepEvidence> = {};

  constructor(model: string, primary: string, canary: string) {
    this.model = model;
    this.primary = primary;
    this.canary = canary;
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
    } else if (prediction.model_version === this.primary && prediction.route === 'primary') {
      if (score !== undefined) this.#primaryBins[scoreBin(score)]! += 1;
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
    return {
      ...this.#extra,
      canaryEvents: this.#canaryEvents,
      canaryFailures: this.#canaryFailures,
      canaryScoreBins: [...this.#canaryBins],
      primaryScoreBins: [...this.#primaryBins],
    };
  }
}
