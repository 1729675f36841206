import type { AgreementSnapshot } from './agreement.js';
import type { HistogramSnapshot } from './histogram.js';
import type { DistributionProfile } from './reference.js';
import { PSI_FLOOR, chiSquareHomogeneity, holmAdjust, psi, type ChiSquareResult } from './statistics.js';
import {
  agreementStatus,
  distributionStatus,
  worstStatus,
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
}

export interface DistributionDrift {
  name: string;
  count: number;
  missing: number;
  psi: number | null;
  test: string;
  statistic: number | null;
  degrees_of_freedom: number | null;
  p_value: number | null;
  p_adjusted: number | null;
  status: DriftStatus;
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
  agreement_warn: number;
  agreement_alert: number;
  agreement_min_compared: number;
}

/**
 * Turns a closed window into its report: PSI and the chi-square test per feature and output, Holm's
 * correction across all of them (one family per report), a status each, and the shadow comparisons.
 */
export function buildReport(
  window: WindowSnapshot,
  profile: VersionProfile,
  thresholds: DriftThresholds,
): DriftReport {
  const { reference } = profile;
  const subjects = [
    ...[...reference.features].map(([name, p]) => ({ name, reference: p, live: window.features.get(name) })),
    ...[...reference.outputs].map(([name, p]) => ({ name, reference: p, live: window.outputs.get(name) })),
  ];
  const measured = subjects.map(({ name, reference: p, live }) => {
    const histogram = live ?? emptyHistogram(p);
    return {
      name,
      p,
      histogram,
      psi: psi(histogram.counts, p.counts, PSI_FLOOR),
      test: chiSquareHomogeneity(histogram.counts, p.counts, thresholds.minExpectedCount),
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
      agreement_warn: thresholds.agreementWarn,
      agreement_alert: thresholds.agreementAlert,
      agreement_min_compared: thresholds.agreementMinCompared,
    },
  };
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
    histogram: HistogramSnapshot;
    psi: number | null;
    test: ChiSquareResult | null;
  },
  pAdjusted: number | null,
  thresholds: DriftThresholds,
): DistributionDrift {
  return {
    name: m.name,
    count: m.histogram.count,
    missing: m.histogram.missing,
    psi: m.psi,
    test: DRIFT_TEST,
    statistic: m.test?.statistic ?? null,
    degrees_of_freedom: m.test?.degreesOfFreedom ?? null,
    p_value: m.test?.pValue ?? null,
    p_adjusted: pAdjusted,
    status: distributionStatus(m.psi, pAdjusted, thresholds),
    live_mean: m.histogram.mean,
    live_std: m.histogram.std,
    reference_mean: m.p.mean,
    reference_std: m.p.std,
    live_counts: m.histogram.counts,
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
  return { counts: p.counts.map(() => 0), count: 0, missing: 0, mean: null, std: null };
}
