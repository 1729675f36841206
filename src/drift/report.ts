import { CUSUM_START, accumulate, type CusumState } from './accumulation.js';
import type { AgreementSnapshot } from './agreement.js';
import type { HistogramSnapshot } from './histogram.js';
import type { QualitySnapshot } from './quality.js';
import type { DistributionProfile, FeatureRole } from './reference.js';
import {
  PSI_FLOOR,
  chiSquareHomogeneity,
  holmAdjust,
  largestRateChange,
  locationShift,
  psi,
  sliceMixture,
  type ChiSquareResult,
  type RateChange,
} from './statistics.js';
import {
  agreementStatus,
  judgeDistribution,
  worstStatus,
  type DriftRule,
  type DriftStatus,
  type DriftThresholds,
  type StatusSummary,
} from './status.js';
import type { CloseReason, VersionProfile, WindowSnapshot } from './window.js';

/** The second test's name in reports. */
export const DRIFT_TEST = 'chi_square';

/** The DriftReport record, as in schemas/drift-report.avsc. */
export interface DriftReport {
  model_name: string;
  model_version: string;
  window_start: number;
  window_end: number;
  closed_by: CloseReason;
  event_count: number;
  status: DriftStatus;
  features: DistributionDrift[];
  outputs: DistributionDrift[];
  shadows: ShadowComparison[];
  thresholds: ReportedThresholds;
  /** Realised quality from outcomes; null when no prediction of the version settled in the window. */
  quality: ReportedQuality | null;
}

/** The DriftQuality record: a QualitySnapshot as reports write it. */
export interface ReportedQuality {
  settled: number;
  matched: number;
  outcome_share: number | null;
  positives: number;
  auc: number | null;
  log_loss: number | null;
  threshold: number;
  precision: number | null;
  recall: number | null;
  ece: number | null;
}

export interface DistributionDrift {
  name: string;
  /** numeric, categorical or cyclical; outputs are numeric. */
  role: FeatureRole;
  /** Why this subject was not compared with the reference (a cyclical feature); null when it was. */
  excluded: string | null;
  /** The cyclical feature whose time slices the reference was matched to; null: the whole reference. */
  conditioned_on: string | null;
  count: number;
  missing: number;
  /** Values outside the reference's [min, max]. */
  outside_range: number;
  psi: number | null;
  test: string;
  statistic: number | null;
  degrees_of_freedom: number | null;
  p_value: number | null;
  p_adjusted: number | null;
  /** Categorical: live / reference rate of the category that changed most, and the factor it moved by at least (95 %). */
  rate_change: number | null;
  rate_change_bound: number | null;
  /** Numeric: mean ridit of the window against the reference, minus 1/2; and it standardized. */
  location_shift: number | null;
  location_z: number | null;
  /** Numeric: the CUSUM sums of the location z after this window (evidence of a move up, down). */
  cusum_up: number | null;
  cusum_down: number | null;
  status: DriftStatus;
  /** The rules that set a status other than ok: psi, rate, cusum, range. */
  flagged_by: DriftRule[];
  live_mean: number | null;
  live_std: number | null;
  reference_mean: number;
  reference_std: number;
  live_counts: number[];
  reference_counts: number[];
}

export interface ShadowComparison {
  shadow_version: string;
  output: string;
  compared: number;
  agreed: number;
  agreement: number | null;
  mean_abs_diff: number | null;
  correlation: number | null;
  missing: number;
  served_only: number;
  shadow_only: number;
  evicted: number;
  served_threshold: number;
  shadow_threshold: number;
  status: DriftStatus;
}

export interface ReportedThresholds {
  psi_warn: number;
  psi_alert: number;
  p_value: number;
  min_expected_count: number;
  psi_floor: number;
  rate_warn: number;
  rate_alert: number;
  cusum_allowance: number;
  cusum_limit: number;
  shift_min: number;
  outside_warn: number;
  agreement_warn: number;
  agreement_alert: number;
  agreement_min_compared: number;
}

/** Why a cyclical feature is not compared with its reference, as reports give it. */
export const CYCLICAL_EXCLUDED =
  'cyclical: in time-ordered traffic a window holds a slice of the cycle, never the whole reference; only its range is checked';

/**
 * Turns a closed window into its report: per feature and output, PSI and the chi-square test on the
 * frozen bins, Holm's correction across all of them (one family per report), the rate change of
 * categorical features, the location shift and its CUSUM for numeric ones, a status each, and the
 * shadow comparisons. `accumulated` holds the CUSUM sums after the version's previous window, keyed
 * `feature:<name>` and `output:<name>`; the report carries the new ones (see cusumSums).
 *
 * When the version has time slices (a cyclical feature, such as the hour of day), every other
 * subject is compared with the reference drawn in the window's own mix of slices: traffic that
 * follows the clock is not drift, and a feature that depends on the hour is judged within its hour.
 */
export function buildReport(
  window: WindowSnapshot,
  profile: VersionProfile,
  thresholds: DriftThresholds,
  accumulated: ReadonlyMap<string, CusumState> = new Map(),
): DriftReport {
  const { reference, slices } = profile;
  const sliceCounts = slices === undefined ? undefined : window.features.get(slices.feature)?.counts;
  const subjects = [
    ...[...reference.features].map(([name, p]) => ({
      key: `feature:${name}`,
      name,
      p,
      role: profile.roles.get(name)?.role ?? p.role,
      table: slices?.features.get(name),
      live: window.features.get(name),
    })),
    ...[...reference.outputs].map(([name, p]) => ({
      key: `output:${name}`,
      name,
      p,
      role: 'numeric' as const,
      table: slices?.outputs.get(name),
      live: window.outputs.get(name),
    })),
  ];
  const measured = subjects.map((subject) => {
    const histogram = subject.live ?? emptyHistogram(subject.p);
    const excluded = subject.role === 'cyclical';
    const mixture =
      !excluded && subject.table !== undefined && sliceCounts !== undefined
        ? sliceMixture(subject.table, sliceCounts)
        : null;
    const expected = mixture ?? subject.p.counts;
    const test = excluded
      ? null
      : chiSquareHomogeneity(histogram.counts, expected, thresholds.minExpectedCount);
    const location = subject.role === 'numeric' ? locationShift(histogram.counts, expected) : null;
    return {
      ...subject,
      histogram,
      excluded,
      conditionedOn: mixture === null ? null : slices!.feature,
      psi: excluded ? null : psi(histogram.counts, expected, PSI_FLOOR),
      test,
      rateChange: subject.role === 'categorical' ? largestRateChange(histogram.counts, expected) : null,
      location,
      // Only windows large enough to test add to the sums: a tiny window's z is not normal.
      cusum:
        subject.role === 'numeric'
          ? accumulate(
              accumulated.get(subject.key) ?? CUSUM_START,
              test === null ? null : (location?.z ?? null),
              thresholds.cusumAllowance,
              thresholds.cusumLimit,
            )
          : null,
    };
  });
  const adjusted = holmAdjust(measured.map((m) => m.test?.pValue ?? null));
  const drifts = measured.map((m, i) => distributionDrift(m, adjusted[i] ?? null, thresholds));
  const features = drifts.slice(0, reference.features.size);
  const outputs = drifts.slice(reference.features.size);
  const shadows = [...window.shadows]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([version, snapshot]) => shadowComparison(version, profile.scoreOutput, snapshot, thresholds));
  const status = worstStatus([...drifts, ...shadows].map((d) => d.status));
  return {
    model_name: window.model,
    model_version: window.version,
    window_start: window.start,
    window_end: window.end,
    closed_by: window.closedBy,
    event_count: window.events,
    status,
    features,
    outputs,
    shadows,
    thresholds: {
      psi_warn: thresholds.psiWarn,
      psi_alert: thresholds.psiAlert,
      p_value: thresholds.pValue,
      min_expected_count: thresholds.minExpectedCount,
      psi_floor: PSI_FLOOR,
      rate_warn: thresholds.rateWarn,
      rate_alert: thresholds.rateAlert,
      cusum_allowance: thresholds.cusumAllowance,
      cusum_limit: thresholds.cusumLimit,
      shift_min: thresholds.shiftMin,
      outside_warn: thresholds.outsideWarn,
      agreement_warn: thresholds.agreementWarn,
      agreement_alert: thresholds.agreementAlert,
      agreement_min_compared: thresholds.agreementMinCompared,
    },
    quality: window.quality === null ? null : reportedQuality(window.quality),
  };
}

export function reportedQuality(q: QualitySnapshot): ReportedQuality {
  return {
    settled: q.settled,
    matched: q.matched,
    outcome_share: q.outcomeShare,
    positives: q.positives,
    auc: q.auc,
    log_loss: q.logLoss,
    threshold: q.threshold,
    precision: q.precision,
    recall: q.recall,
    ece: q.ece,
  };
}

/** A report's quality as the rollout gate reads it (evaluateQualityGate). */
export function qualitySnapshot(report: DriftReport): QualitySnapshot | null {
  const q = report.quality;
  if (q === null) return null;
  return {
    settled: q.settled,
    matched: q.matched,
    outcomeShare: q.outcome_share,
    positives: q.positives,
    auc: q.auc,
    logLoss: q.log_loss,
    threshold: q.threshold,
    precision: q.precision,
    recall: q.recall,
    ece: q.ece,
  };
}

/** The CUSUM sums a report ends with, keyed as buildReport takes them, for the version's next window. */
export function cusumSums(report: DriftReport): Map<string, CusumState> {
  const sums = new Map<string, CusumState>();
  for (const [kind, list] of [
    ['feature', report.features],
    ['output', report.outputs],
  ] as const) {
    for (const d of list) {
      if (d.cusum_up !== null && d.cusum_down !== null) {
        sums.set(`${kind}:${d.name}`, { up: d.cusum_up, down: d.cusum_down });
      }
    }
  }
  return sums;
}

/** Each subject's status, keyed `feature:<name>`, `output:<name>`, `shadow:<version>`, for the tracker. */
export function summarize(report: DriftReport): StatusSummary {
  const subjects = new Map<string, DriftStatus>();
  for (const f of report.features) subjects.set(`feature:${f.name}`, f.status);
  for (const o of report.outputs) subjects.set(`output:${o.name}`, o.status);
  for (const s of report.shadows) subjects.set(`shadow:${s.shadow_version}`, s.status);
  return { model: report.model_name, version: report.model_version, status: report.status, subjects };
}

function distributionDrift(
  m: {
    name: string;
    p: DistributionProfile;
    role: FeatureRole;
    excluded: boolean;
    conditionedOn: string | null;
    histogram: HistogramSnapshot;
    psi: number | null;
    test: ChiSquareResult | null;
    rateChange: RateChange | null;
    location: { shift: number; z: number } | null;
    cusum: CusumState | null;
  },
  pAdjusted: number | null,
  thresholds: DriftThresholds,
): DistributionDrift {
  const { histogram } = m;
  const judgement = judgeDistribution(
    {
      role: m.role,
      excluded: m.excluded,
      psi: m.psi,
      pAdjusted,
      rateBound: m.rateChange?.bound ?? null,
      shift: m.location?.shift ?? null,
      cusum: m.cusum,
      outsideShare: histogram.count > 0 ? histogram.outside / histogram.count : null,
    },
    thresholds,
  );
  return {
    name: m.name,
    role: m.role,
    excluded: m.excluded ? CYCLICAL_EXCLUDED : null,
    conditioned_on: m.conditionedOn,
    count: histogram.count,
    missing: histogram.missing,
    outside_range: histogram.outside,
    psi: m.psi,
    test: DRIFT_TEST,
    statistic: m.test?.statistic ?? null,
    degrees_of_freedom: m.test?.degreesOfFreedom ?? null,
    p_value: m.test?.pValue ?? null,
    p_adjusted: pAdjusted,
    rate_change: m.rateChange?.ratio ?? null,
    rate_change_bound: m.rateChange?.bound ?? null,
    location_shift: m.location?.shift ?? null,
    location_z: m.location?.z ?? null,
    cusum_up: m.cusum?.up ?? null,
    cusum_down: m.cusum?.down ?? null,
    status: judgement.status,
    flagged_by: judgement.flaggedBy,
    live_mean: histogram.mean,
    live_std: histogram.std,
    reference_mean: m.p.mean,
    reference_std: m.p.std,
    live_counts: histogram.counts,
    reference_counts: [...m.p.counts],
  };
}

function shadowComparison(
  version: string,
  output: string,
  s: AgreementSnapshot,
  thresholds: DriftThresholds,
): ShadowComparison {
  return {
    shadow_version: version,
    output,
    compared: s.compared,
    agreed: s.agreed,
    agreement: s.agreement,
    mean_abs_diff: s.meanAbsDiff,
    correlation: s.correlation,
    missing: s.missing,
    served_only: s.servedOnly,
    shadow_only: s.shadowOnly,
    evicted: s.evicted,
    served_threshold: s.servedThreshold,
    shadow_threshold: s.shadowThreshold,
    status: agreementStatus(s.agreement, s.compared, thresholds),
  };
}

function emptyHistogram(p: DistributionProfile): HistogramSnapshot {
  return { counts: p.counts.map(() => 0), count: 0, missing: 0, outside: 0, mean: null, std: null };
}
