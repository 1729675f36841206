import { StreamscoreError } from '../errors.js';

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

/**
 * A feature's or output's status: it takes both a large enough PSI (the change matters) and a
 * significant Holm-adjusted chi-square p-value (the change is not this window's sampling noise).
 * PSI alone flags noise in small windows; the test alone flags harmless changes in large ones.
 * Without a test result (too few events) the status is ok: the report's null p-value says why.
 */
export function distributionStatus(
  psi: number | null,
  pAdjusted: number | null,
  thresholds: DriftThresholds,
): DriftStatus {
  if (psi === null || pAdjusted === null || !(pAdjusted < thresholds.pValue)) return 'ok';
  if (psi >= thresholds.psiAlert) return 'alert';
  if (psi >= thresholds.psiWarn) return 'warn';
  return 'ok';
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
