/** The run's result document (bench/results/*.json) and its text tables for stdout and BENCHMARKS.md. */
import type { CpuUse } from './cpu.js';
import type { MachineInfo } from './machine.js';
import type { ModelResult } from './summary.js';
import type { Plan } from './plan.js';

export interface BenchResult {
  generated_at: string;
  mode: Plan['mode'];
  seconds: number;
  infrastructure: string;
  machine: MachineInfo;
  /** 1-minute load average when the run ended (the one at its start is in machine). */
  load_average_at_end: number;
  method: Record<string, string>;
  event_counts: Record<string, { transport: number; baseline: number; drain: number; paced_seconds: string }>;
  grid: Plan['grid'];
  models: Record<string, ModelResult>;
}

export function formatReport(result: BenchResult): string {
  const models = Object.values(result.models);
  const { machine } = result;
  const out: string[] = [];
  out.push(
    `streamscore bench (${result.mode}) ${result.generated_at}: ${machine.cores} cores (${machine.cpu_model}), ` +
      `${machine.memory_gb} GB, load ${machine.load_average_at_start} at start, ${result.load_average_at_end} at end; node ${machine.versions.node}, ` +
      `onnxruntime-node ${machine.versions['onnxruntime-node']}, kafkajs ${machine.versions.kafkajs}, ${machine.versions.kafka_broker}; ` +
      (machine.source
        ? `commit ${machine.source.commit.slice(0, 10)}${machine.source.src_modified ? ' (src/ modified)' : ''}`
        : 'commit unknown'),
  );
  out.push('');
  out.push(
    table(
      [
        'model',
        'model ceiling rows/s',
        'transport ceiling ev/s',
        'baseline ev/s',
        'best (rows, linger, threads)',
        'best ev/s',
        'p50/p95/p99 ms',
        'RSS MB',
        'vs ceiling',
        'vs baseline',
      ],
      models.map((m) => [
        `${m.model}/${m.version}`,
        `${fmt(m.ceiling_model_rows_per_s)} (b${m.ceiling_model_best.batch}, t${m.ceiling_model_best.threads})`,
        fmt(m.ceiling_transport_events_per_s),
        fmt(m.baseline_events_per_s),
        m.best ? `${m.best.batch}, ${m.best.linger_ms} ms, t${m.best.threads}` : '-',
        fmt(m.best?.events_per_s ?? null),
        m.best ? `${fmt(m.best.p50_ms)}/${fmt(m.best.p95_ms)}/${fmt(m.best.p99_ms)}` : '-',
        fmt(m.best?.rss_mb ?? null),
        fmt(m.ratio_vs_ceiling),
        fmt(m.ratio_vs_baseline),
      ]),
    ),
  );
  for (const m of models) {
    out.push('');
    out.push(`${m.model}/${m.version}: serve at saturation (drain) and at half of it (paced)`);
    out.push(
      table(
        [
          'rows',
          'linger ms',
          'threads',
          'drain ev/s',
          'avg batch',
          'CPU serve/machine',
          'backpressure s',
          'paced ev/s',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'max ms',
          'p99 from send ms',
          'paced CPU serve/machine',
          'RSS MB',
        ],
        m.details.grid.map((g) => {
          const s = 'error' in g.saturation ? undefined : g.saturation;
          const p = g.paced === undefined || 'error' in g.paced ? undefined : g.paced;
          return [
            String(g.batchMaxRows),
            String(g.lingerMs),
            String(g.threads),
            s ? fmt(s.events_per_s) : 'failed',
            fmt(s?.serve?.avg_batch_rows ?? null),
            cpu(s?.cpu),
            fmt(s?.serve?.backpressure_s ?? null),
            p ? fmt(p.rate) : g.paced ? 'failed' : '-',
            fmt(p?.p50_ms ?? null),
            fmt(p?.p95_ms ?? null),
            fmt(p?.p99_ms ?? null),
            fmt(p?.max_ms ?? null),
            fmt(p?.from_send.p99_ms ?? null),
            cpu(p?.cpu),
            fmt(Math.max(s?.rss_mb ?? 0, p?.rss_mb ?? 0) || null),
          ];
        }),
      ),
    );
    out.push(contextLine(m));
    const backfill = m.details.backfill;
    if (backfill !== undefined) {
      const drainOf = (r: typeof backfill.serve) =>
        'error' in r
          ? 'failed'
          : `${fmt(r.events_per_s)} ev/s (repeats ${r.repeats_events_per_s.map(fmt).join(', ')}; CPU ${cpu(r.cpu)}; RSS ${fmt(r.rss_mb)} MB)`;
      out.push(
        `backfill vs serve drain at batch ${backfill.batch}, linger ${backfill.linger_ms} ms, ${backfill.threads} thread(s), alternated: ` +
          `serve ${drainOf(backfill.serve)}; backfill ${drainOf(backfill.backfill)}; ratio ${fmt(backfill.ratio)}`,
      );
    }
    const targets = Object.entries(m.targets).map(
      ([name, t]) => `${name} ${t.target}: ${fmt(t.value)} ${t.met ? 'met' : 'NOT met'}`,
    );
    out.push(`targets: ${targets.join('; ')}`);
    const failures = collectErrors(m);
    for (const failure of failures) out.push(`failed: ${failure}`);
    const profile = m.details.profile;
    if (profile !== undefined) {
      out.push('');
      if ('error' in profile) {
        out.push(`profile failed: ${profile.error.split('\n')[0]}`);
      } else {
        out.push(
          `serve CPU profile, self time over the drain (${profile.total_ms} of ${profile.profile_ms} ms sampled; ${profile.file})`,
        );
        out.push(
          table(
            ['package', 'ms', '%'],
            profile.packages.map((p) => [p.name, fmt(p.ms), fmt(p.share)]),
          ),
        );
        out.push(
          table(
            ['function', 'ms', '%'],
            profile.functions.map((f) => [f.name, fmt(f.ms), fmt(f.share)]),
          ),
        );
      }
    }
  }
  return out.join('\n');
}

/** The numbers behind the ratios: every repeat of the ceilings and baseline, the relay's and one hop's latency. */
function contextLine(m: ModelResult): string {
  const { transport, baseline, transport_paced: relayPaced, hop_paced: hop } = m.details;
  const repeats = (r: typeof transport) =>
    'error' in r ? 'failed' : `${r.repeats_events_per_s.map(fmt).join(', ')} (best: CPU ${cpu(r.cpu)})`;
  const parts = [
    `transport drains ev/s: ${repeats(transport)}`,
    `baseline drains ev/s: ${repeats(baseline)}`,
  ];
  if (relayPaced !== undefined) {
    parts.push(
      'error' in relayPaced
        ? 'relay paced: failed'
        : `relay paced at ${fmt(relayPaced.rate)}/s (no model): p50/p95/p99 ${fmt(relayPaced.p50_ms)}/${fmt(relayPaced.p95_ms)}/${fmt(relayPaced.p99_ms)} ms, p99 from send ${fmt(relayPaced.from_send.p99_ms)} ms (CPU ${cpu(relayPaced.cpu)})`,
    );
  }
  if (hop !== undefined) {
    parts.push(
      'error' in hop
        ? 'one hop: failed'
        : `one hop at ${fmt(hop.rate)}/s (generator -> broker -> consumer): p50/p95/p99 ${fmt(hop.p50_ms)}/${fmt(hop.p95_ms)}/${fmt(hop.p99_ms)} ms (CPU bench/machine ${cpu(hop.cpu)})`,
    );
  }
  return parts.join('; ');
}

function collectErrors(m: ModelResult): string[] {
  const errors: string[] = [];
  const { transport, baseline, grid } = m.details;
  if ('error' in transport) errors.push(`transport: ${transport.error.split('\n')[0]}`);
  const relayPaced = m.details.transport_paced;
  if (relayPaced !== undefined && 'error' in relayPaced)
    errors.push(`relay paced: ${relayPaced.error.split('\n')[0]}`);
  const hop = m.details.hop_paced;
  if (hop !== undefined && 'error' in hop) errors.push(`one hop: ${hop.error.split('\n')[0]}`);
  if ('error' in baseline) errors.push(`baseline: ${baseline.error.split('\n')[0]}`);
  const backfill = m.details.backfill;
  if (backfill !== undefined) {
    if ('error' in backfill.serve) errors.push(`serve drain: ${backfill.serve.error.split('\n')[0]}`);
    if ('error' in backfill.backfill) errors.push(`backfill: ${backfill.backfill.error.split('\n')[0]}`);
  }
  for (const g of grid) {
    if ('error' in g.saturation)
      errors.push(`drain ${g.batchMaxRows}/${g.lingerMs}: ${g.saturation.error.split('\n')[0]}`);
    if (g.paced !== undefined && 'error' in g.paced)
      errors.push(`paced ${g.batchMaxRows}/${g.lingerMs}: ${g.paced.error.split('\n')[0]}`);
  }
  return errors;
}

/** Cores used by the process / cores busy on the whole machine. */
function cpu(use: CpuUse | undefined): string {
  if (use === undefined) return '-';
  return `${fmt(use.process_cores)}/${fmt(use.machine_busy_cores)}`;
}

function fmt(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '-';
  return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
}

/** A Markdown table, so the same text pastes into BENCHMARKS.md. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}
