import { StreamscoreError } from '../errors.js';
import type { CusumState } from './accumulation.js';
import type { FeatureRole } from './reference.js';

/** How far a distribution or a shadow has moved, in three steps. */
export type DriftStatus = 'ok' | 'warn' | 'alert';

const RANK: Readonly<Record<DriftStatus, number>> = { ok: 0, warn: 1, alert: 2 };

/** Numeric form for gauges: 0 ok, 1 warn, 2 alert. */
export function statusRank(status: DriftStatus): number {
  return RANK[status];
}

export function worstStatus(statuses: Iterable<DriftStatus>): DriftStatus {
  let worst: DriftStatus = 'ok';
  for (const status of statuses) if (RANK[status] > RANK[worst]) worst = status;
  return worst;
}

export interface DriftThresholds {
  /** PSI at or above which a significant change is a warning. */
  psiWarn: number;
  /** PSI at or above which a significant change is an alert. */
  psiAlert: number;
  /**
   * Family-wise significance level: a change is significant when its Holm-adjusted chi-square
   * p-value is below this, across all features and outputs of one model version in one window.
   */
  pValue: number;
  /** A chi-square test needs this many expected live events in every bin; fewer and it is not run. */
  minExpectedCount: number;
  /**
   * A categorical feature with a category whose rate moved by at least this factor, up or down, with
   * 95 % confidence, in a significant change, is a warning; by rateAlert, an alert.
   */
  rateWarn: number;
  rateAlert: number;
  /** CUSUM allowance k: standard errors of location shift each window may show and add nothing. */
  cusumAllowance: number;
  /** CUSUM limit h, in standard errors: above it a numeric subject's accumulated shift is a warning. */
  cusumLimit: number;
  /**
   * ...provided the window's own location shift is at least this (about 0.09 standard deviations of
   * a normal feature), so a negligible but persistent shift in very large windows stays ok.
   */
  shiftMin: number;
  /** Share of a cyclical feature's values outside the reference's range that is a warning. */
  outsideWarn: number;
  /** Decision agreement with a shadow below this is a warning. */
  agreementWarn: number;
  /** Decision agreement with a shadow below this is an alert. */
  agreementAlert: number;
  /** Agreement gets a status only once this many records were compared in the window. */
  agreementMinCompared: number;
}

export const DEFAULT_THRESHOLDS: Readonly<DriftThresholds> = Object.freeze({
  psiWarn: 0.1,
  psiAlert: 0.25,
  pValue: 0.05,
  minExpectedCount: 5,
  rateWarn: 1.25,
  rateAlert: 1.5,
  cusumAllowance: 1,
  cusumLimit: 4,
  shiftMin: 0.025,
  outsideWarn: 0.01,
  agreementWarn: 0.95,
  agreementAlert: 0.9,
  agreementMinCompared: 100,
});

/** Checks thresholds once, where they are configured; every problem in one error. */
export function checkThresholds(thresholds: DriftThresholds): DriftThresholds {
  const problems: string[] = [];
  const t = thresholds;
  if (!(t.psiWarn > 0)) problems.push(`psiWarn must be > 0, got ${t.psiWarn}`);
  if (!(t.psiAlert >= t.psiWarn)) problems.push(`psiAlert (${t.psiAlert}) must be >= psiWarn (${t.psiWarn})`);
  if (!(t.pValue > 0 && t.pValue < 1)) problems.push(`pValue must be in (0, 1), got ${t.pValue}`);
  if (!(t.minExpectedCount > 0)) problems.push(`minExpectedCount must be > 0, got ${t.minExpectedCount}`);
  if (!(t.rateWarn > 1)) problems.push(`rateWarn must be > 1, got ${t.rateWarn}`);
  if (!(t.rateAlert >= t.rateWarn))
    problems.push(`rateAlert (${t.rateAlert}) must be >= rateWarn (${t.rateWarn})`);
  if (!(t.cusumAllowance >= 0)) problems.push(`cusumAllowance must be >= 0, got ${t.cusumAllowance}`);
  if (!(t.cusumLimit > 0)) problems.push(`cusumLimit must be > 0, got ${t.cusumLimit}`);
  if (!(t.shiftMin >= 0 && t.shiftMin < 0.5))
    problems.push(`shiftMin must be in [0, 0.5), got ${t.shiftMin}`);
  if (!(t.outsideWarn > 0 && t.outsideWarn <= 1)) {
    problems.push(`outsideWarn must be in (0, 1], got ${t.outsideWarn}`);
  }
  if (!(t.agreementWarn > 0 && t.agreementWarn <= 1)) {
    problems.push(`agreementWarn must be in (0, 1], got ${t.agreementWarn}`);
  }
  if (!(t.agreementAlert >= 0 && t.agreementAlert <= t.agreementWarn)) {
    problems.push(`agreementAlert (${t.agreementAlert}) must be in [0, agreementWarn]`);
  }
  if (!(Number.isInteger(t.agreementMinCompared) && t.agreementMinCompared >= 1)) {
    problems.push(`agreementMinCompared must be an integer >= 1, got ${t.agreementMinCompared}`);
  }
  if (problems.length > 0) {
    throw new StreamscoreError('CONFIG_INVALID', `Invalid drift thresholds: ${problems.join('; ')}`);
  }
  return Object.freeze({ ...t });
}

/** What a window measured of one feature or output, for its status. */
export interface Evidence {
  /** Outputs are judged as numeric. */
  role: FeatureRole;
  /** Cyclical features are not compared with the whole-cycle reference; only their range is checked. */
  excluded: boolean;
  psi: number | null;
  /** Holm-adjusted chi-square p-value. */
  pAdjusted: number | null;
  /** Categorical: the factor the most changed category's rate moved by at least (95 % bound, >= 1). */
  rateBound: number | null;
  /** Numeric: the window's location shift and the CUSUM sums after it. */
  shift: number | null;
  cusum: CusumState | null;
  /** Share of the values outside the reference's [min, max]. */
  outsideShare: number | null;
}

/** The rules that can flag a distribution, as reports name them in flagged_by. */
export type DriftRule = 'psi' | 'rate' | 'cusum' | 'range';

export interface Judgement {
  status: DriftStatus;
  /** The rules that fired, in this order: psi, rate, cusum, range. */
  flaggedBy: DriftRule[];
}

/**
 * A feature's or output's status, the worst of its rules:
 *   - psi (every role but cyclical): a large enough PSI and a significant Holm-adjusted chi-square
 *     p-value. PSI alone flags noise in small windows; the test alone flags harmless changes in
 *     large ones.
 *   - rate (categorical): a category whose rate moved by rateWarn (rateAlert) or more, either way,
 *     with 95 % confidence, in a significant change: PSI hardly sees a rare category double, a rate
 *     ratio does, and its confidence bound keeps a rare category's noise from passing for a change.
 *   - cusum (numeric and outputs): the accumulated location shift passed the limit, in the
 *     direction the current window still shows by at least shiftMin; a warning, never an alert.
 *   - range (cyclical): values outside the cycle the reference saw.
 * Without a test result (too few events) psi and rate say ok: the report's null p-value says why.
 */
export function judgeDistribution(e: Evidence, t: DriftThresholds): Judgement {
  const verdicts: [DriftRule, DriftStatus][] = [];
  const significant = e.pAdjusted !== null && e.pAdjusted < t.pValue;
  if (!e.excluded && significant && e.psi !== null) {
    verdicts.push(['psi', e.psi >= t.psiAlert ? 'alert' : e.psi >= t.psiWarn ? 'warn' : 'ok']);
  }
  if (e.role === 'categorical' && significant && e.rateBound !== null) {
    const bound = e.rateBound;
    verdicts.push(['rate', bound >= t.rateAlert ? 'alert' : bound >= t.rateWarn ? 'warn' : 'ok']);
  }
  if (e.role === 'numeric' && e.cusum !== null && e.shift !== null) {
    const up = e.cusum.up > t.cusumLimit && e.shift >= t.shiftMin;
    const down = e.cusum.down > t.cusumLimit && e.shift <= -t.shiftMin;
    verdicts.push(['cusum', up || down ? 'warn' : 'ok']);
  }
  if (e.excluded && e.outsideShare !== null) {
    verdicts.push(['range', e.outsideShare >= t.outsideWarn ? 'warn' : 'ok']);
  }
  return {
    status: worstStatus(verdicts.map(([, status]) => status)),
    flaggedBy: verdicts.filter(([, status]) => status !== 'ok').map(([rule]) => rule),
  };
}

export function agreementStatus(
  agreement: number | null,
  compared: number,
  thresholds: DriftThresholds,
): DriftStatus {
  if (agreement === null || compared < thresholds.agreementMinCompared) return 'ok';
  if (agreement < thresholds.agreementAlert) return 'alert';
  if (agreement < thresholds.agreementWarn) return 'warn';
  return 'ok';
}

/** One subject whose status changed: `feature:amount`, `output:score`, `shadow:2`. */
export interface SubjectChange {
  subject: string;
  from: DriftStatus;
  to: DriftStatus;
}

export interface StatusTransition {
  model: string;
  version: string;
  /** Overall status before and after this window. */
  from: DriftStatus;
  to: DriftStatus;
  /** Every subject whose status changed in this window. */
  changes: SubjectChange[];
  /** Subjects that are not ok after this window, worst first. */
  flagged: { subject: string; status: DriftStatus }[];
}

/** What the tracker needs of a report: its version and the status of each subject. */
export interface StatusSummary {
  model: string;
  version: string;
  status: DriftStatus;
  subjects: ReadonlyMap<string, DriftStatus>;
}

/**
 * Remembers the last status of each model version and its subjects, and says when something
 * changed, so the monitor logs one line per change (ok -> warn -> alert and back), not one per
 * window. A subject absent from a window (a shadow that stopped) counts as ok. Memory: one entry
 * per model version and subject seen.
 */
export class StatusTracker {
  readonly #last = new Map<string, { status: DriftStatus; subjects: Map<string, DriftStatus> }>();

  /** The transition this window made, or undefined when nothing changed. */
  observe(summary: StatusSummary): StatusTransition | undefined {
    const key = `${summary.model}/${summary.version}`;
    const previous = this.#last.get(key) ?? { status: 'ok', subjects: new Map<string, DriftStatus>() };
    const changes: SubjectChange[] = [];
    const names = new Set([...previous.subjects.keys(), ...summary.subjects.keys()]);
    for (const subject of names) {
      const from = previous.subjects.get(subject) ?? 'ok';
      const to = summary.subjects.get(subject) ?? 'ok';
      if (from !== to) changes.push({ subject, from, to });
    }
    const subjects = new Map([...summary.subjects].filter(([, status]) => status !== 'ok'));
    this.#last.set(key, { status: summary.status, subjects });
    if (changes.length === 0 && previous.status === summary.status) return undefined;
    const flagged = [...subjects]
      .map(([subject, status]) => ({ subject, status }))
      .sort((a, b) => RANK[b.status] - RANK[a.status] || a.subject.localeCompare(b.subject));
    return {
      model: summary.model,
      version: summary.version,
      from: previous.status,
      to: summary.status,
      changes,
      flagged,
    };
  }
}
