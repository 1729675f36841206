/**
 * `npm run bench:scale`'s result document (bench/results/scale*.json) and its table: each scale
 * scenario's windows, every quantity as the median and the worst over the scenario's repeats, and
 * each event's p99 and longest gap as a ratio to the same run's steady window.
 */
import type { Failed } from './attempt.js';
import type { MachineInfo } from './machine.js';
import { fmt, table } from './report.js';
import { spread, type Spread } from './scale-accounting.js';
import type { EventResult, RunResult, ScaleAction, WindowResult } from './scale-run.js';
import { round } from './stats.js';

export interface ScaleResult {
  generated_at: string;
  mode: 'full' | 'quick';
  seconds: number;
  infrastructure: string;
  machine: MachineInfo;
  load_average_at_end: number;
  method: Record<string, string>;
  settings: {
    model: string;
    version: string;
    rate: number;
    /** Where the rate came from: --rate, or half of a drain measured at the start of the run. */
    rate_from: string;
    client: string;
    delivery: string;
    /** serve's environment beyond the bench's own (what --client and --delivery set). */
    serve_env: Record<string, string>;
    batch_max_rows: number;
    linger_ms: number;
    threads: number;
    warmup_s: number;
    phase_s: number;
    lead_ms: number;
    after_join_ms: number;
    repeats: number;
  };
  scenarios: ScenarioSummary[];
}

export interface WindowSummary {
  replicas: string;
  longest_gap_ms: Spread;
  p99_ms: Spread;
  p99_from_send_ms: Spread;
  max_ms: Spread;
  repeats: Spread;
}

export interface EventSummary extends WindowSummary {
  action: ScaleAction;
  /** Per run, the event's value / the steady window's. */
  gap_vs_steady: Spread;
  p99_vs_steady: Spread;
  max_vs_steady: Spread;
  replica_done_ms: Spread;
  last_join_ms: Spread;
}

export interface ScenarioSummary {
  scenario: string;
  runs: (RunResult | Failed)[];
  steady: WindowSummary | null;
  events: EventSummary[];
}

function isRun(run: RunResult | Failed): run is RunResult {
  return !('error' in run);
}

const n = (value: number | null): number => value ?? Number.NaN;
const ratio = (a: number | null, b: number | null): number =>
  a === null || b === null || !(b > 0) ? Number.NaN : round(a / b, 2);

function windowSummary(windows: readonly WindowResult[], replicas: string): WindowSummary {
  return {
    replicas,
    longest_gap_ms: spread(windows.map((w) => n(w.longest_gap_ms))),
    p99_ms: spread(windows.map((w) => w.p99_ms)),
    p99_from_send_ms: spread(windows.map((w) => w.p99_from_send_ms)),
    max_ms: spread(windows.map((w) => w.max_ms)),
    repeats: spread(windows.map((w) => w.repeats)),
  };
}

export function summarize(scenario: string, runs: (RunResult | Failed)[]): ScenarioSummary {
  const done = runs.filter(isRun);
  if (done.length === 0) return { scenario, runs, steady: null, events: [] };
  const first = done[0]!;
  const events = first.events.map((event, k): EventSummary => {
    const pairs = done
      .map((run) => [run.events[k], run.steady] as const)
      .filter((pair): pair is readonly [EventResult, WindowResult] => pair[0] !== undefined);
    const after = event.replicas + (event.action === 'add' ? 1 : -1);
    return {
      action: event.action,
      ...windowSummary(
        pairs.map(([e]) => e),
        `${event.replicas} -> ${after}`,
      ),
      gap_vs_steady: spread(pairs.map(([e, s]) => ratio(e.longest_gap_ms, s.longest_gap_ms))),
      p99_vs_steady: spread(pairs.map(([e, s]) => ratio(e.p99_ms, s.p99_ms))),
      max_vs_steady: spread(pairs.map(([e, s]) => ratio(e.max_ms, s.max_ms))),
      replica_done_ms: spread(pairs.map(([e]) => n(e.replica_done_ms))),
      last_join_ms: spread(pairs.map(([e]) => n(e.last_join_ms))),
    };
  });
  return {
    scenario,
    runs,
    steady: windowSummary(
      done.map((run) => run.steady),
      String(first.steady.replicas),
    ),
    events,
  };
}

/** "median (worst)", or the one value when there was one run; ms as whole numbers, ratios to 0.01. */
function cell(value: Spread, suffix = '', digits = 0): string {
  const known = value.runs.filter((v) => !Number.isNaN(v)).length;
  if (known === 0) return '-';
  const show = (v: number) => `${fmt(round(v, digits))}${suffix}`;
  return known === 1 ? show(value.median) : `${show(value.median)} (${show(value.worst)})`;
}

export function formatScale(result: ScaleResult): string {
  const { machine, settings } = result;
  const out: string[] = [];
  out.push(
    `streamscore bench:scale (${result.mode}) ${result.generated_at}: ${machine.cores} cores, load ` +
      `${machine.load_average_at_start} at start, ${result.load_average_at_end} at end; node ${machine.versions.node}, ` +
      `@platformatic/kafka ${machine.versions['@platformatic/kafka']}, kafkajs ${machine.versions.kafkajs}, ` +
      `${machine.versions.kafka_broker}; ` +
      (machine.source
        ? `commit ${machine.source.commit.slice(0, 10)}${machine.source.src_modified ? ' (src/ modified)' : ''}`
        : 'commit unknown'),
  );
  out.push(
    `${settings.model}/${settings.version} at ${fmt(settings.rate)} events/s (${settings.rate_from}); client ` +
      `${settings.client}, delivery ${settings.delivery}; serve ${settings.batch_max_rows} rows, ` +
      `${settings.linger_ms} ms linger, t${settings.threads}; windows of ${settings.phase_s} s from ` +
      `${settings.lead_ms} ms before each event (an add's to ${settings.after_join_ms} ms after its join at ` +
      `least); ${settings.repeats} repeat(s): median (worst)`,
  );
  out.push('');
  const rows: string[][] = [];
  for (const summary of result.scenarios) {
    if (summary.steady === null) {
      rows.push([summary.scenario, 'every run failed', '', '', '', '', '', '', '', '', '']);
      continue;
    }
    const s = summary.steady;
    rows.push([
      summary.scenario,
      'steady',
      s.replicas,
      cell(s.longest_gap_ms),
      '',
      cell(s.p99_ms),
      '',
      cell(s.p99_from_send_ms),
      cell(s.max_ms),
      cell(s.repeats),
      '',
    ]);
    for (const e of summary.events) {
      rows.push([
        summary.scenario,
        e.action === 'add' ? 'add a replica' : 'SIGTERM a replica',
        e.replicas,
        cell(e.longest_gap_ms),
        cell(e.gap_vs_steady, 'x', 2),
        cell(e.p99_ms),
        cell(e.p99_vs_steady, 'x', 2),
        cell(e.p99_from_send_ms),
        cell(e.max_ms),
        cell(e.repeats),
        `${cell(e.replica_done_ms)} / ${cell(e.last_join_ms)}`,
      ]);
    }
  }
  out.push(
    table(
      [
        'scenario',
        'window',
        'replicas',
        'longest partition gap ms',
        'gap vs steady',
        'p99 ms',
        'p99 vs steady',
        'p99 from send ms',
        'max ms',
        'repeats',
        'replica joined or exited / last join, ms after',
      ],
      rows,
    ),
  );
  const failures = result.scenarios.flatMap((summary) =>
    summary.runs.filter((run) => !isRun(run)).map((run) => `${summary.scenario}: ${(run as Failed).error}`),
  );
  const notes = result.scenarios.flatMap((summary) =>
    summary.runs
      .filter(isRun)
      .map(
        (run, i) =>
          `${summary.scenario} run ${i + 1}: ${fmt(run.sent)} sent, ${fmt(run.missing)} never predicted, ` +
          `${fmt(run.repeats)} repeats in all, sender lag max ${run.producer_max_lag_ms} ms, bench loop delay max ` +
          `${run.bench_loop_delay_ms.max_ms} ms, machine ${run.machine_busy_cores} cores busy` +
          (run.warnings.length > 0 ? `; replica warnings: ${run.warnings.join('; ')}` : ''),
      ),
  );
  out.push('');
  out.push(...notes.map((note) => `- ${note}`));
  if (failures.length > 0) out.push(...failures.map((failure) => `- failed: ${failure.split('\n')[0]}`));
  return out.join('\n');
}
