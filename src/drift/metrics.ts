import { Counter, Gauge, type Registry } from 'prom-client';
import type { DriftReport } from './report.js';
import { statusRank } from './status.js';

/**
 * The drift monitor's metrics, on a registry the caller owns. Gauges hold the last closed window's
 * values. Labels stay low-cardinality: model, version, kind (feature or output), and the feature or
 * output name from the reference profile (a fixed list per version), never a request or a value.
 */
export function createDriftMetrics(registry: Registry) {
  const registers = [registry];
  const distribution = ['model', 'version', 'kind', 'name'] as const;
  const shadow = ['model', 'version', 'shadow_version'] as const;
  const version = ['model', 'version'] as const;
  return {
    psi: new Gauge({
      name: 'streamscore_drift_psi',
      help: 'Population Stability Index against the reference bins, last window.',
      labelNames: distribution,
      registers,
    }),
    pValue: new Gauge({
      name: 'streamscore_drift_p_value',
      help: 'Holm-adjusted chi-square p-value against the reference bins, last window (absent when not tested).',
      labelNames: distribution,
      registers,
    }),
    cusum: new Gauge({
      name: 'streamscore_drift_cusum',
      help: 'CUSUM of the location shift of a numeric feature or output, carried across windows: side="up" or "down" (absent for other roles).',
      labelNames: [...distribution, 'side'] as const,
      registers,
    }),
    status: new Gauge({
      name: 'streamscore_drift_status',
      help: 'Drift status of a feature or output, last window: 0 ok, 1 warn, 2 alert.',
      labelNames: distribution,
      registers,
    }),
    versionStatus: new Gauge({
      name: 'streamscore_drift_version_status',
      help: 'Worst drift status of a model version, last window: 0 ok, 1 warn, 2 alert.',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    windowEvents: new Gauge({
      name: 'streamscore_drift_window_events',
      help: 'Events in the last closed window of a model version.',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    windows: new Counter({
      name: 'streamscore_drift_windows_total',
      help: 'Windows closed, by status.',
      labelNames: ['model', 'version', 'status'] as const,
      registers,
    }),
    shadowAgreement: new Gauge({
      name: 'streamscore_drift_shadow_agreement_ratio',
      help: 'Share of shadow records whose decision equals the served decision, last window.',
      labelNames: shadow,
      registers,
    }),
    shadowMeanAbsDiff: new Gauge({
      name: 'streamscore_drift_shadow_mean_abs_diff',
      help: 'Mean absolute difference of the served and shadow scores, last window.',
      labelNames: shadow,
      registers,
    }),
    shadowCorrelation: new Gauge({
      name: 'streamscore_drift_shadow_correlation',
      help: 'Pearson correlation of the served and shadow scores, last window.',
      labelNames: shadow,
      registers,
    }),
    shadowOneSided: new Gauge({
      name: 'streamscore_drift_shadow_unmatched_events',
      help: 'Events seen on one side only in the last window: side="served" (no shadow record) or "shadow" (no prediction).',
      labelNames: [...shadow, 'side'] as const,
      registers,
    }),
    qualityAuc: new Gauge({
      name: 'streamscore_drift_quality_auc',
      help: 'Realised AUC of predictions matched with outcomes, last window (absent without both labels).',
      labelNames: version,
      registers,
    }),
    qualityLogLoss: new Gauge({
      name: 'streamscore_drift_quality_log_loss',
      help: 'Realised log loss of predictions matched with outcomes, last window.',
      labelNames: version,
      registers,
    }),
    qualityPrecision: new Gauge({
      name: 'streamscore_drift_quality_precision',
      help: "Realised precision at the model's threshold, last window (absent without a positive decision).",
      labelNames: version,
      registers,
    }),
    qualityRecall: new Gauge({
      name: 'streamscore_drift_quality_recall',
      help: "Realised recall at the model's threshold, last window (absent without a positive outcome).",
      labelNames: version,
      registers,
    }),
    qualityEce: new Gauge({
      name: 'streamscore_drift_quality_ece',
      help: 'Expected calibration error (10 equal-width bins) of predictions matched with outcomes, last window.',
      labelNames: version,
      registers,
    }),
    qualityOutcomeShare: new Gauge({
      name: 'streamscore_drift_quality_outcome_ratio',
      help: 'Share of the predictions settled in the last window that got an outcome.',
      labelNames: version,
      registers,
    }),
    qualityMatched: new Gauge({
      name: 'streamscore_drift_quality_matched_events',
      help: 'Predictions matched with an outcome in the last window.',
      labelNames: version,
      registers,
    }),
    recordsRead: new Counter({
      name: 'streamscore_drift_records_read_total',
      help: 'Records the drift monitor read, by topic.',
      labelNames: ['topic'] as const,
      registers,
    }),
    skipped: new Counter({
      name: 'streamscore_drift_records_skipped_total',
      help: 'Records the drift monitor counted and skipped, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

export type DriftMetrics = ReturnType<typeof createDriftMetrics>;

/** Sets the gauges from one closed window's report. A statistic that could not be computed is removed. */
export function recordReport(metrics: DriftMetrics, report: DriftReport): void {
  const model = report.model_name;
  const version = report.model_version;
  for (const [kind, list] of [
    ['feature', report.features],
    ['output', report.outputs],
  ] as const) {
    for (const d of list) {
      const labels = { model, version, kind, name: d.name };
      setOrRemove(metrics.psi, labels, d.psi);
      setOrRemove(metrics.pValue, labels, d.p_adjusted);
      setOrRemove(metrics.cusum, { ...labels, side: 'up' }, d.cusum_up);
      setOrRemove(metrics.cusum, { ...labels, side: 'down' }, d.cusum_down);
      metrics.status.set(labels, statusRank(d.status));
    }
  }
  metrics.versionStatus.set({ model, version }, statusRank(report.status));
  metrics.windowEvents.set({ model, version }, report.event_count);
  metrics.windows.inc({ model, version, status: report.status });
  for (const s of report.shadows) {
    const labels = { model, version, shadow_version: s.shadow_version };
    setOrRemove(metrics.shadowAgreement, labels, s.agreement);
    setOrRemove(metrics.shadowMeanAbsDiff, labels, s.mean_abs_diff);
    setOrRemove(metrics.shadowCorrelation, labels, s.correlation);
    metrics.shadowOneSided.set({ ...labels, side: 'served' }, s.served_only);
    metrics.shadowOneSided.set({ ...labels, side: 'shadow' }, s.shadow_only);
  }
  // A window without settled predictions leaves the last quality figures standing: outcomes are
  // sparse, and a quiet window says nothing new about them.
  const q = report.quality;
  if (q !== null) {
    const labels = { model, version };
    setOrRemove(metrics.qualityAuc, labels, q.auc);
    setOrRemove(metrics.qualityLogLoss, labels, q.log_loss);
    setOrRemove(metrics.qualityPrecision, labels, q.precision);
    setOrRemove(metrics.qualityRecall, labels, q.recall);
    setOrRemove(metrics.qualityEce, labels, q.ece);
    setOrRemove(metrics.qualityOutcomeShare, labels, q.outcome_share);
    metrics.qualityMatched.set(labels, q.matched);
  }
}

function setOrRemove<L extends string>(
  gauge: Gauge<L>,
  labels: Partial<Record<L, string | number>>,
  value: number | null,
): void {
  if (value === null) gauge.remove(labels);
  else gauge.set(labels, value);
}
