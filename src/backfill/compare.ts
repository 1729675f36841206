/**
 * Replay evaluation: the predictions a backfill wrote, joined by request id with the predictions
 * serve wrote for the same events, compared as the drift monitor compares a shadow with its
 * primary (decision agreement at each version's threshold, mean |diff|, correlation, events only
 * one side has). An offline shadow: a candidate judged on past traffic before it takes any.
 *
 * Memory is bounded: one entry per backfilled event, and past `maxEvents` a deterministic sample
 * of request ids (the same ids on both sides, by a hash), whose rate the report states.
 */
import type { Prediction } from '../codec/predictions.js';
import { AgreementAccumulator, type AgreementSnapshot } from '../drift/agreement.js';

/** The score of a prediction: its `score` output, or its only output. */
export function scoreOf(outputs: Readonly<Record<string, number>>): number | undefined {
  if ('score' in outputs) return outputs.score;
  const values = Object.values(outputs);
  return values.length === 1 ? values[0] : undefined;
}

/** FNV-1a over the id's UTF-16 code units, as a share of 2^32: the same id, the same place. */
export function samplePoint(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i += 1) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) / 4_294_967_296;
}

interface Backfilled {
  score: number | undefined;
  matched: boolean;
}

/** How one served version compares with the backfilled one. */
export type ServedComparison = Pick<
  AgreementSnapshot,
  'compared' | 'agreed' | 'agreement' | 'meanAbsDiff' | 'correlation' | 'missing' | 'servedOnly'
> & {
  /** The served version's decision threshold, and where it came from. */
  servedThreshold: number;
  thresholdFrom: 'model.json' | 'backfill version';
};

export interface ComparisonReport {
  model: string;
  backfillVersion: string;
  backfillThreshold: number;
  /** Share of request ids compared (1 unless the job held more than the bound). */
  sampleRate: number;
  /** Distinct backfilled events in the sample. */
  backfilled: number;
  /** Served predictions of the sample, by the version that served them. */
  served: Record<string, ServedComparison>;
  /** Backfilled events no served prediction matched. */
  backfillOnly: number;
  /** Served predictions read more than once for the same request id (at-least-once repeats). */
  servedRepeats: number;
  /** Event times the backfilled events span, epoch ms (served predictions outside are not counted as served-only). */
  eventTimes: { from: number | null; to: number | null };
}

/**
 * Streaming two-sided comparison: first every backfilled prediction (addBackfilled), then every
 * served one (addServed), then report().
 */
export class ReplayComparison {
  readonly #model: string;
  readonly #version: string;
  readonly #threshold: number;
  readonly #sampleRate: number;
  readonly #thresholdOf: (version: string) => number | undefined;
  readonly #backfilled = new Map<string, Backfilled>();
  readonly #served = new Map<string, { accumulator: AgreementAccumulator; fromModel: boolean }>();
  #servedRepeats = 0;
  #firstTime = Number.POSITIVE_INFINITY;
  #lastTime = Number.NEGATIVE_INFINITY;

  constructor(options: {
    model: string;
    version: string;
    threshold: number;
    sampleRate: number;
    /** A served version's threshold (its model.json), if known here. */
    thresholdOf: (version: string) => number | undefined;
  }) {
    this.#model = options.model;
    this.#version = options.version;
    this.#threshold = options.threshold;
    this.#sampleRate = options.sampleRate;
    this.#thresholdOf = options.thresholdOf;
  }

  #sampled(id: string): boolean {
    return this.#sampleRate >= 1 || samplePoint(id) < this.#sampleRate;
  }

  /** A record of the backfill's output topic; other models', versions' and routes' are ignored. */
  addBackfilled(prediction: Prediction): void {
    if (prediction.model_name !== this.#model || prediction.model_version !== this.#version) return;
    if (prediction.route !== 'backfill' || !this.#sampled(prediction.request_id)) return;
    const time = Number(prediction.event_time);
    if (time < this.#firstTime) this.#firstTime = time;
    if (time > this.#lastTime) this.#lastTime = time;
    // A repeat (the job resumed after a crash) scored the same event with the same version.
    this.#backfilled.set(prediction.request_id, { score: scoreOf(prediction.outputs), matched: false });
  }

  /** A record of the served predictions topic; other models' are ignored. */
  addServed(prediction: Prediction): void {
    if (prediction.model_name !== this.#model || !this.#sampled(prediction.request_id)) return;
    const mine = this.#backfilled.get(prediction.request_id);
    const side = this.#side(prediction.model_version);
    if (mine === undefined) {
      const time = Number(prediction.event_time);
      if (time >= this.#firstTime && time <= this.#lastTime) side.accumulator.countServedOnly();
      return;
    }
    if (mine.matched) {
      this.#servedRepeats += 1;
      return;
    }
    mine.matched = true;
    side.accumulator.add(scoreOf(prediction.outputs), mine.score);
  }

  #side(version: string): { accumulator: AgreementAccumulator; fromModel: boolean } {
    let side = this.#served.get(version);
    if (side === undefined) {
      const threshold = this.#thresholdOf(version);
      side = {
        accumulator: new AgreementAccumulator(threshold ?? this.#threshold, this.#threshold),
        fromModel: threshold !== undefined,
      };
      this.#served.set(version, side);
    }
    return side;
  }

  report(): ComparisonReport {
    let backfillOnly = 0;
    for (const entry of this.#backfilled.values()) if (!entry.matched) backfillOnly += 1;
    const served: ComparisonReport['served'] = {};
    for (const [version, side] of [...this.#served].sort(([a], [b]) => a.localeCompare(b))) {
      const { compared, agreed, agreement, meanAbsDiff, correlation, missing, servedOnly, servedThreshold } =
        side.accumulator.snapshot();
      served[version] = {
        compared,
        agreed,
        agreement,
        meanAbsDiff,
        correlation,
        missing,
        servedOnly,
        servedThreshold,
        thresholdFrom: side.fromModel ? 'model.json' : 'backfill version',
      };
    }
    const any = this.#backfilled.size > 0;
    return {
      model: this.#model,
      backfillVersion: this.#version,
      backfillThreshold: this.#threshold,
      sampleRate: this.#sampleRate,
      backfilled: this.#backfilled.size,
      served,
      backfillOnly,
      servedRepeats: this.#servedRepeats,
      eventTimes: { from: any ? this.#firstTime : null, to: any ? this.#lastTime : null },
    };
  }
}
