import { CusumMemory } from './accumulation.js';
import { ExpiringJoin } from './join.js';
import { OutcomeJoin, labelOf, type OutcomeRecord } from './outcomes.js';
import { buildReport, cusumSums, type DriftReport } from './report.js';
import { DEFAULT_THRESHOLDS, checkThresholds, type DriftThresholds } from './status.js';
import {
  DEFAULT_WINDOW_LIMITS,
  DriftWindow,
  checkWindowLimits,
  type CloseReason,
  type VersionProfile,
  type WindowLimits,
} from './window.js';

/** Why a record was counted and skipped; each is a metric label. */
export const SkipReasons = {
  UNDECODABLE: 'the record could not be decoded',
  NO_REFERENCE: 'the model version has no reference profile',
  DUPLICATE: 'this request id was already seen for this version within the join time (a redelivery)',
  NOT_A_LABEL: 'the outcome observed a value other than 0 or 1, which binary quality cannot use',
  NO_PREDICTION: 'the outcome met no prediction within the outcome join time',
} as const;

export type SkipReason = keyof typeof SkipReasons;

export interface SkipDetail {
  message: string;
  model?: string;
  version?: string;
  requestId?: string;
}

/** What the monitor reads of a FeatureEvent. */
export interface RequestRecord {
  request_id: string;
  features: Readonly<Record<string, number>>;
}

/** What the monitor reads of a Prediction. */
export interface PredictionRecord {
  request_id: string;
  model_name: string;
  model_version: string;
  outputs: Readonly<Record<string, number>>;
}

/** What the monitor reads of a ShadowPrediction (model_version is the shadow's). */
export interface ShadowRecord extends PredictionRecord {
  served_version: string;
  served_outputs: Readonly<Record<string, number>>;
}

export interface JoinLimits {
  /** How long a request id waits for its other records before what is missing counts as missing. */
  ttlMs: number;
  /** Request ids held at most; the oldest goes first. Size it above event rate x ttlMs. */
  maxEntries: number;
}

export const DEFAULT_JOIN_LIMITS: Readonly<JoinLimits> = Object.freeze({
  ttlMs: 30_000, // thirty seconds
  maxEntries: 100_000,
});

/**
 * Outcomes are observed long after the score (a chargeback takes days; a demo, seconds): ten
 * minutes by default, and 200,000 request ids (enough for 330 events/s over that time).
 */
export const DEFAULT_OUTCOME_JOIN_LIMITS: Readonly<JoinLimits> = Object.freeze({
  ttlMs: 600_000, // ten minutes
  maxEntries: 200_000,
});

export interface DriftMonitorOptions {
  /** Every model version that has a reference profile. Others are skipped (NO_REFERENCE). */
  profiles: Iterable<VersionProfile>;
  thresholds?: DriftThresholds;
  window?: WindowLimits;
  join?: JoinLimits;
  /** The join of predictions with outcomes, apart from `join`: outcomes come later. */
  outcomes?: JoinLimits;
  /** Epoch ms; injected so tests decide when time passes. */
  clock?: () => number;
  /** Every skipped record, for a counter. */
  onSkip?: (reason: SkipReason, detail: SkipDetail) => void;
  /** Once per model version seen without a reference profile, for one clear log line. */
  onMissingReference?: (model: string, version: string) => void;
}

export interface MonitorStats {
  openWindows: number;
  joinEntries: number;
  joinEvictions: number;
  outcomeEntries: number;
  outcomeEvictions: number;
  skipped: Record<SkipReason, number>;
}

/** One request id's records seen so far. */
interface Pending {
  features?: Readonly<Record<string, number>>;
  /** Version keys whose windows count this request's features (each once). */
  scorers: string[];
  /** Version keys of the predictions seen (one, unless routing changed between redeliveries). */
  predictions: string[];
  /** Shadow records seen: shadow version key and the served version key they name. */
  shadows: { shadow: string; served: string }[];
}

/** Versions reported missing at most, so a flood of made-up versions cannot grow memory. */
const MAX_MISSING_REMEMBERED = 1_000;

/**
 * The drift monitor's core, without Kafka: feed it decoded records from the requests, predictions
 * and shadow-predictions topics, in any interleaving; it returns a DriftReport for every window
 * that closes. Records meet by request id in a bounded join: a request's features are counted for
 * every version that scored it (its prediction's version, and each shadow version), each output in
 * its own version's window, and each shadow record's two scores in the served version's window.
 *
 * Outcomes meet predictions (and shadow records, for the shadow version) by request id in a second
 * join, bounded by `outcomes`; each prediction's quality counts in its version's window open when it
 * met its outcome, or when its time ran out without one.
 *
 * Memory is bounded: per model version a count per reference bin, two CUSUM sums per feature and
 * output, one accumulator per shadow, and the window's matched (score, label) pairs;
 * the join holds at most join.maxEntries request ids, each for at most join.ttlMs, and the outcome
 * join at most outcomes.maxEntries, each for at most outcomes.ttlMs.
 */
export class DriftMonitor {
  readonly thresholds: DriftThresholds;
  readonly windowLimits: WindowLimits;
  readonly #profiles = new Map<string, VersionProfile>();
  readonly #windows = new Map<string, DriftWindow>();
  /** Each version's CUSUM sums, carried from one of its windows to the next. */
  readonly #cusums = new CusumMemory();
  /** Shadow versions compared with each served version in its previous window. */
  readonly #previousShadows = new Map<string, string[]>();
  readonly #join: ExpiringJoin<Pending>;
  readonly #clock: () => number;
  readonly #onSkip: DriftMonitorOptions['onSkip'];
  readonly #onMissingReference: DriftMonitorOptions['onMissingReference'];
  readonly #missingReported = new Set<string>();
  readonly #outcomes: OutcomeJoin;
  readonly #skipped: Record<SkipReason, number> = {
    UNDECODABLE: 0,
    NO_REFERENCE: 0,
    DUPLICATE: 0,
    NOT_A_LABEL: 0,
    NO_PREDICTION: 0,
  };
  #closed: DriftReport[] = [];

  constructor(options: DriftMonitorOptions) {
    this.thresholds = checkThresholds(options.thresholds ?? DEFAULT_THRESHOLDS);
    this.windowLimits = checkWindowLimits(options.window ?? DEFAULT_WINDOW_LIMITS);
    const join = options.join ?? DEFAULT_JOIN_LIMITS;
    this.#join = new ExpiringJoin<Pending>({
      ttlMs: join.ttlMs,
      maxEntries: join.maxEntries,
      onExpire: (_key, pending) => this.#settle(pending, false),
      onEvict: (_key, pending) => this.#settle(pending, true),
    });
    const outcomes = options.outcomes ?? DEFAULT_OUTCOME_JOIN_LIMITS;
    this.#outcomes = new OutcomeJoin({
      ttlMs: outcomes.ttlMs,
      maxEntries: outcomes.maxEntries,
      onMatch: (key, score, label) => this.#qualityOf(key).addMatched(score, label),
      onUnmatched: (key) => this.#qualityOf(key).addUnmatched(),
      onOrphan: (requestId) =>
        this.recordSkip('NO_PREDICTION', { message: 'outcome without a prediction', requestId }),
    });
    this.#clock = options.clock ?? Date.now;
    this.#onSkip = options.onSkip;
    this.#onMissingReference = options.onMissingReference;
    for (const profile of options.profiles) this.setProfile(profile);
  }

  /** Adds a version's profile (a version deployed while running); its windows start from now. */
  setProfile(profile: VersionProfile): void {
    const key = versionKey(profile.reference.name, profile.reference.version);
    this.#profiles.set(key, profile);
    this.#cusums.forget(key);
    this.#missingReported.delete(key);
  }

  /** A request's features; counted for the versions that scored it, now or when they do. */
  onRequest(record: RequestRecord): DriftReport[] {
    const now = this.#advance();
    const pending = this.#join.entry(record.request_id, now, newPending);
    if (pending.features !== undefined) {
      this.recordSkip('DUPLICATE', { message: 'request seen twice', requestId: record.request_id });
      return this.#drain();
    }
    pending.features = record.features;
    for (const key of pending.scorers) this.#window(key, now).observeFeatures(record.features);
    return this.#drain();
  }

  /** A published prediction: its outputs count in its version's window. */
  onPrediction(record: PredictionRecord): DriftReport[] {
    const now = this.#advance();
    const key = this.#known(record.model_name, record.model_version, record.request_id);
    if (key === undefined) return this.#drain();
    const pending = this.#join.entry(record.request_id, now, newPending);
    if (pending.predictions.includes(key)) {
      this.recordSkip('DUPLICATE', { ...describeRecord(record), message: 'prediction seen twice' });
      return this.#drain();
    }
    pending.predictions.push(key);
    this.#window(key, now).observeOutputs(record.outputs);
    this.#awaitOutcome(record, key, now);
    this.#addScorer(pending, key, now);
    this.#closeIfFull(key, now);
    return this.#drain();
  }

  /**
   * A shadow record: the shadow's outputs count in the shadow version's window, and the two scores
   * it carries are compared in the served version's window. A shadow of the served version itself
   * is only compared: its outputs are the prediction's, counted once already.
   */
  onShadow(record: ShadowRecord): DriftReport[] {
    const now = this.#advance();
    const shadowKey = this.#known(record.model_name, record.model_version, record.request_id);
    if (shadowKey === undefined) return this.#drain();
    const servedKey = this.#known(record.model_name, record.served_version, record.request_id);
    if (servedKey === undefined) return this.#drain();
    const pending = this.#join.entry(record.request_id, now, newPending);
    if (pending.shadows.some((s) => s.shadow === shadowKey && s.served === servedKey)) {
      this.recordSkip('DUPLICATE', { ...describeRecord(record), message: 'shadow record seen twice' });
      return this.#drain();
    }
    pending.shadows.push({ shadow: shadowKey, served: servedKey });
    if (shadowKey !== servedKey) {
      this.#window(shadowKey, now).observeOutputs(record.outputs);
      this.#awaitOutcome(record, shadowKey, now);
      this.#addScorer(pending, shadowKey, now);
    }
    const served = this.#profiles.get(servedKey)!;
    const shadow = this.#profiles.get(shadowKey)!;
    this.#window(servedKey, now)
      .comparison(record.model_version, shadow.threshold)
      .add(record.served_outputs[served.scoreOutput], record.outputs[shadow.scoreOutput]);
    this.#closeIfFull(shadowKey, now);
    return this.#drain();
  }

  /** An observed outcome: it settles the quality of the predictions of its request id. */
  onOutcome(record: OutcomeRecord): DriftReport[] {
    const now = this.#advance();
    const label = labelOf(record.observed);
    if (label === undefined) {
      this.recordSkip('NOT_A_LABEL', {
        message: `observed ${record.observed}, expected 0 or 1`,
        requestId: record.request_id,
      });
    } else if (!this.#outcomes.outcome(record.request_id, label, now)) {
      this.recordSkip('DUPLICATE', { message: 'outcome seen twice', requestId: record.request_id });
    }
    return this.#drain();
  }

  /** Closes the windows whose time is up; call it on a timer so quiet versions still report. */
  tick(): DriftReport[] {
    this.#advance();
    return this.#drain();
  }

  /** At shutdown: settles the join and closes every open window, however small. */
  flush(): DriftReport[] {
    const now = this.#clock();
    this.#join.expireAll();
    this.#outcomes.expireAll();
    for (const key of [...this.#windows.keys()]) this.#close(key, now, 'flush');
    return this.#drain();
  }

  /** Counts a skipped record; the caller reports its own (UNDECODABLE) through here too. */
  recordSkip(reason: SkipReason, detail: SkipDetail): void {
    this.#skipped[reason] += 1;
    this.#onSkip?.(reason, detail);
  }

  stats(): MonitorStats {
    return {
      openWindows: this.#windows.size,
      joinEntries: this.#join.size,
      joinEvictions: this.#join.evictions,
      outcomeEntries: this.#outcomes.size,
      outcomeEvictions: this.#outcomes.evictions,
      skipped: { ...this.#skipped },
    };
  }

  /** The version key when the version has a profile; otherwise counts the skip. */
  #known(model: string, version: string, requestId: string): string | undefined {
    const key = versionKey(model, version);
    if (this.#profiles.has(key)) return key;
    this.recordSkip('NO_REFERENCE', {
      message: `${key} has no reference profile`,
      model,
      version,
      requestId,
    });
    if (!this.#missingReported.has(key) && this.#missingReported.size < MAX_MISSING_REMEMBERED) {
      this.#missingReported.add(key);
      this.#onMissingReference?.(model, version);
    }
    return undefined;
  }

  /** The open window of a version, opened at now if there is none. */
  #window(key: string, now: number): DriftWindow {
    let window = this.#windows.get(key);
    if (window === undefined) {
      window = new DriftWindow(this.#profiles.get(key)!, this.windowLimits, now);
      this.#windows.set(key, window);
    }
    return window;
  }

  /** Time passes: join entries past their time are settled, windows past theirs close. */
  #advance(): number {
    const now = this.#clock();
    this.#join.expire(now);
    this.#outcomes.expire(now);
    // Deleting the visited key while iterating a Map is safe: iteration goes on with the next.
    for (const [key, window] of this.#windows) {
      const reason = window.dueReason(now);
      if (reason !== undefined) this.#close(key, now, reason);
    }
    return now;
  }

  /** Counts the request's features for a version that scored it: now if known, else on arrival. */
  #addScorer(pending: Pending, key: string, now: number): void {
    if (pending.scorers.includes(key)) return;
    pending.scorers.push(key);
    if (pending.features !== undefined) this.#window(key, now).observeFeatures(pending.features);
  }

  /** A version's score waits for its request's outcome; a score that is not a number cannot be judged. */
  #awaitOutcome(record: PredictionRecord, key: string, now: number): void {
    const score = record.outputs[this.#profiles.get(key)!.scoreOutput];
    if (typeof score === 'number' && Number.isFinite(score)) {
      this.#outcomes.prediction(record.request_id, key, score, now);
    }
  }

  /** The quality accumulator of a version's open window, opened now if there is none. */
  #qualityOf(key: string): DriftWindow['quality'] {
    return this.#window(key, this.#clock()).quality;
  }

  #closeIfFull(key: string, now: number): void {
    if (this.#windows.get(key)?.dueReason(now) === 'count') this.#close(key, now, 'count');
  }

  #close(key: string, now: number, reason: CloseReason): void {
    const window = this.#windows.get(key);
    if (window === undefined) return;
    this.#windows.delete(key);
    this.#previousShadows.set(key, window.shadowVersions());
    const report = buildReport(
      window.snapshot(now, reason),
      window.profile,
      this.thresholds,
      this.#cusums.of(key),
    );
    this.#cusums.set(key, cusumSums(report));
    this.#closed.push(report);
  }

  /**
   * A request id's time is up (or it was evicted): count what never came. A prediction with no
   * record from a shadow that is running for its version (compared in this or the previous window)
   * is served-only; a shadow record whose prediction never came is shadow-only. Evicted entries are
   * counted apart: their other side may still have been on its way.
   */
  #settle(pending: Pending, evicted: boolean): void {
    const now = this.#clock();
    for (const served of pending.predictions) {
      if (!this.#profiles.has(served)) continue;
      const open = this.#windows.get(served);
      const running = new Set([
        ...(this.#previousShadows.get(served) ?? []),
        ...(open?.shadowVersions() ?? []),
      ]);
      for (const shadowVersion of running) {
        const shadowKey = versionKey(this.#profiles.get(served)!.reference.name, shadowVersion);
        if (pending.shadows.some((s) => s.shadow === shadowKey && s.served === served)) continue;
        this.#countOneSide(served, shadowVersion, now, evicted ? 'evicted' : 'servedOnly');
      }
    }
    for (const { shadow, served: namedServed } of pending.shadows) {
      if (pending.predictions.includes(namedServed)) continue;
      const shadowProfile = this.#profiles.get(shadow);
      if (shadowProfile === undefined || !this.#profiles.has(namedServed)) continue;
      this.#countOneSide(
        namedServed,
        shadowProfile.reference.version,
        now,
        evicted ? 'evicted' : 'shadowOnly',
      );
    }
  }

  #countOneSide(
    servedKey: string,
    shadowVersion: string,
    now: number,
    what: 'servedOnly' | 'shadowOnly' | 'evicted',
  ): void {
    const shadowKey = versionKey(this.#profiles.get(servedKey)!.reference.name, shadowVersion);
    const threshold = this.#profiles.get(shadowKey)?.threshold ?? 0.5;
    const comparison = this.#window(servedKey, now).comparison(shadowVersion, threshold);
    if (what === 'servedOnly') comparison.countServedOnly();
    else if (what === 'shadowOnly') comparison.countShadowOnly();
    else comparison.countEvicted();
  }

  #drain(): DriftReport[] {
    if (this.#closed.length === 0) return [];
    const reports = this.#closed;
    this.#closed = [];
    return reports;
  }
}

function versionKey(model: string, version: string): string {
  return `${model}/${version}`;
}

function newPending(): Pending {
  return { scorers: [], predictions: [], shadows: [] };
}

function describeRecord(record: PredictionRecord): { model: string; version: string; requestId: string } {
  return { model: record.model_name, version: record.model_version, requestId: record.request_id };
}
