/**
 * Turns one model's cases into the headline numbers: the best serve setting, its ratios to the
 * ceilings and the baseline, and the targets, each marked met or not.
 */
import type { DrainResult, PacedResult } from './cases.js';
import type { JavaReference } from './java-perf.js';
import type { GridPoint } from './plan.js';
import type { ModelCeiling } from './model-ceiling.js';
import type { ProfileSummary } from './profile.js';
import type { Failed } from './attempt.js';
import { round } from './stats.js';

export type { Failed } from './attempt.js';

/** The best of a case's repeated drains, with every repeat's rate so the spread is visible. */
export type BestDrain = DrainResult & { repeats_events_per_s: number[] };

export interface GridResult extends GridPoint {
  /** ONNX Runtime intra-op threads serve ran with. */
  threads: number;
  saturation: BestDrain | Failed;
  paced: PacedResult | Failed | undefined;
}

export interface Best {
  batch: number;
  linger_ms: number;
  threads: number;
  events_per_s: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  rss_mb: number | null;
  /** serve's CPU per event over the best drain, µs. */
  cpu_us_per_event: number | null;
}

/**
 * serve at one setting on one Kafka client (STREAMSCORE_KAFKA_CLIENT; serve refuses a value it does
 * not know, so a run is a run on that client).
 */
export interface ClientRun {
  /** The client, or a variant of one: `platformatic, main-thread producer`, `reference <dir>`. */
  client: string;
  drain: BestDrain | Failed;
  paced: PacedResult | Failed | undefined;
}

/** serve's best setting on each client, drains alternated, every client paced at the same rate. */
export interface ClientComparison {
  batch: number;
  linger_ms: number;
  threads: number;
  /** Half of the best grid point's drain: the rate of the headline latency. */
  paced_rate: number;
  runs: ClientRun[];
}

export interface Target {
  target: string;
  value: number | null;
  met: boolean;
}

export interface ModelResult {
  model: string;
  version: string;
  ceiling_model_rows_per_s: number;
  ceiling_model_best: { batch: number; threads: number };
  /** The fastest relay's drain rate. */
  ceiling_transport_events_per_s: number | null;
  /** The client of the fastest relay. */
  ceiling_transport_client: string | null;
  baseline_events_per_s: number | null;
  best: Best | null;
  ratio_vs_ceiling: number | null;
  ratio_vs_baseline: number | null;
  targets: Record<string, Target>;
  details: {
    model_ceiling: ModelCeiling['points'];
    /** The transport relay on each Kafka client, drains alternated. */
    transports: Record<string, BestDrain | Failed>;
    /** Kafka's Java perf tools on the same broker: the machine's reference, not a ceiling. */
    java_reference?: JavaReference | Failed;
    baseline: BestDrain | Failed;
    grid: GridResult[];
    /**
     * The fastest relay at the best point's paced rate: the latency of the same transport with no
     * model (not a lower bound).
     */
    transport_paced?: PacedResult | Failed;
    /**
     * One hop at the same rate: the bench's own events read back from the requests topic, no
     * process in between. A prediction makes two such hops, so this is a floor under serve's latency.
     */
    hop_paced?: PacedResult | Failed;
    profile?: ProfileSummary | Failed;
    /** Backfill against serve's drain at the best serve point, alternated in one run. */
    backfill?: BackfillComparison;
    /** serve's best point on each Kafka client of --clients. */
    clients?: ClientComparison;
  };
}

/** Backfill's drain of a pre-filled topic beside serve's, same model and settings, runs alternated. */
export interface BackfillComparison {
  batch: number;
  linger_ms: number;
  threads: number;
  serve: BestDrain | Failed;
  backfill: BestDrain | Failed;
  /** backfill / serve, best against best. */
  ratio: number | null;
}

/** Targets from the issues: what "good" means for each model. */
const RATIO_CEILING_TARGET: Record<string, number> = { fraud: 0.8, heavy: 0.75 };
const RATIO_BASELINE_TARGET: Record<string, number> = { heavy: 3 };
/** CPU of the serve process per event at saturation (all its threads), µs. */
const CPU_PER_EVENT_TARGET_US: Record<string, number> = { fraud: 15 };
/** p99 at half of saturation <= HOP_FACTOR x the one-hop p99 at the same rate + linger + slack. */
const P99_HOP_FACTOR = 2;
const P99_SLACK_MS = 10;
const RSS_TARGET_MB = 300;
/** Best drain against the --reference build's ("today's code") at the same setting, same run. */
const REFERENCE_SPEEDUP_TARGET: Record<string, number> = { fraud: 1.5 };

/** The fastest of the relays, by drain rate; undefined when every one failed. */
export function fastestRelay(
  transports: Record<string, BestDrain | Failed>,
): { client: string; drain: BestDrain } | undefined {
  let fastest: { client: string; drain: BestDrain } | undefined;
  for (const [client, drain] of Object.entries(transports)) {
    if ('error' in drain) continue;
    if (fastest === undefined || drain.events_per_s > fastest.drain.events_per_s) fastest = { client, drain };
  }
  return fastest;
}

/** The grid point with the highest drain rate. */
export function fastestPoint(grid: readonly GridResult[]): GridResult | undefined {
  let fastest: GridResult | undefined;
  let rate = -1;
  for (const point of grid) {
    if ('error' in point.saturation || point.saturation.events_per_s <= rate) continue;
    fastest = point;
    rate = point.saturation.events_per_s;
  }
  return fastest;
}

export function summarize(
  model: string,
  version: string,
  ceiling: ModelCeiling,
  transports: Record<string, BestDrain | Failed>,
  baseline: BestDrain | Failed,
  grid: GridResult[],
): ModelResult {
  const relay = fastestRelay(transports);
  const transportRate = relay?.drain.events_per_s ?? null;
  const baselineRate = 'error' in baseline ? null : baseline.events_per_s;
  const bestPoint = fastestPoint(grid);
  let best: Best | null = null;
  if (bestPoint !== undefined) {
    const saturation = bestPoint.saturation as DrainResult;
    const latency =
      bestPoint.paced !== undefined && !('error' in bestPoint.paced) ? bestPoint.paced : undefined;
    const peaks = [saturation.rss_mb, latency?.rss_mb].filter((v): v is number => v !== undefined);
    best = {
      batch: bestPoint.batchMaxRows,
      linger_ms: bestPoint.lingerMs,
      threads: bestPoint.threads,
      events_per_s: saturation.events_per_s,
      p50_ms: latency?.p50_ms ?? null,
      p95_ms: latency?.p95_ms ?? null,
      p99_ms: latency?.p99_ms ?? null,
      rss_mb: peaks.length > 0 ? Math.max(...peaks) : null,
      cpu_us_per_event: saturation.cpu_us_per_event,
    };
  }
  const lowerCeiling = transportRate === null ? null : Math.min(ceiling.best.rows_per_s, transportRate);
  const ratioCeiling = best && lowerCeiling ? round(best.events_per_s / lowerCeiling, 2) : null;
  const ratioBaseline = best && baselineRate ? round(best.events_per_s / baselineRate, 2) : null;
  const targets: Record<string, Target> = {};
  const ceilingTarget = RATIO_CEILING_TARGET[model];
  if (ceilingTarget !== undefined)
    targets.ratio_vs_ceiling = check(`>= ${ceilingTarget}`, ratioCeiling, (v) => v >= ceilingTarget);
  const baselineTarget = RATIO_BASELINE_TARGET[model];
  if (baselineTarget !== undefined)
    targets.ratio_vs_baseline = check(`>= ${baselineTarget}`, ratioBaseline, (v) => v >= baselineTarget);
  const cpuTarget = CPU_PER_EVENT_TARGET_US[model];
  if (cpuTarget !== undefined) {
    targets.cpu_us_per_event = check(
      `<= ${cpuTarget} µs`,
      best?.cpu_us_per_event ?? null,
      (v) => v <= cpuTarget,
    );
  }
  targets.serve_rss = check(`<= ${RSS_TARGET_MB} MB`, best?.rss_mb ?? null, (v) => v <= RSS_TARGET_MB);
  return {
    model,
    version,
    ceiling_model_rows_per_s: ceiling.best.rows_per_s,
    ceiling_model_best: { batch: ceiling.best.batch, threads: ceiling.best.threads },
    ceiling_transport_events_per_s: transportRate,
    ceiling_transport_client: relay?.client ?? null,
    baseline_events_per_s: baselineRate,
    best,
    ratio_vs_ceiling: ratioCeiling,
    ratio_vs_baseline: ratioBaseline,
    targets,
    details: { model_ceiling: ceiling.points, transports, baseline, grid },
  };
}

function check(target: string, value: number | null, ok: (value: number) => boolean): Target {
  return { target, value, met: value !== null && ok(value) };
}

/**
 * The targets that need cases run after the grid: p99 against the one hop measured at the best
 * point's paced rate, and the best drain against the --reference build's. Adds them to `result`.
 */
export function addLaterTargets(result: ModelResult): void {
  const { best, details } = result;
  if (best === null) return;
  const hop = details.hop_paced;
  const hopP99 = hop !== undefined && !('error' in hop) ? hop.p99_ms : null;
  if (hopP99 !== null) {
    const limit = P99_HOP_FACTOR * hopP99 + best.linger_ms + P99_SLACK_MS;
    result.targets.p99_at_half_saturation = check(
      `<= ${limit} ms (${P99_HOP_FACTOR} x one hop ${hopP99} + linger ${best.linger_ms} + ${P99_SLACK_MS})`,
      best.p99_ms,
      (v) => v <= limit,
    );
  }
  const speedup = REFERENCE_SPEEDUP_TARGET[result.model];
  const reference = details.clients?.runs.find((run) => run.client.startsWith('reference '));
  if (speedup !== undefined && reference !== undefined) {
    const rate = 'error' in reference.drain ? null : reference.drain.events_per_s;
    result.targets.vs_reference = check(
      `>= ${speedup}x ${reference.client}`,
      rate === null ? null : round(best.events_per_s / rate, 2),
      (v) => v >= speedup,
    );
  }
}
