/** The run's result document (bench/results/*.json) and its text tables for stdout and BENCHMARKS.md. */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
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
  event_counts: Record<
    string,
    { transport: number; baseline: number; drain: number; paced_seconds: string; java_records: number }
  >;
  grid: Plan['grid'];
  /** The Kafka clients serve's best setting ran on (--clients). */
  clients: Plan['clients'];
  models: Record<string, ModelResult>;
}

export function formatReport(result: BenchResult): string {
  const models = Object.values(result.models);
  const { machine } = result;
  const out: string[] = [];
  out.push(
    `streamscore bench (${result.mode}) ${result.generated_at}: ${machine.cores} cores (${machine.cpu_model}), ` +
      `${machine.memory_gb} GB, load ${machine.load_average_at_start} at start, ${result.load_average_at_end} at end; node ${machine.versions.node}, ` +
      `onnxruntime-node ${machine.versions['onnxruntime-node']}, kafkajs ${machine.versions.kafkajs}, ` +
      `@platformatic/kafka ${machine.versions['@platformatic/kafka']}, ${machine.versions.kafka_broker}; ` +
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
        'CPU µs/ev',
        'p50/p95/p99 ms',
        'RSS MB',
        'vs ceiling',
        'vs baseline',
      ],
      models.map((m) => [
        `${m.model}/${m.version}`,
        `${fmt(m.ceiling_model_rows_per_s)} (b${m.ceiling_model_best.batch}, t${m.ceiling_model_best.threads})`,
        m.ceiling_transport_client === null
          ? '-'
          : `${fmt(m.ceiling_transport_events_per_s)} (${m.ceiling_transport_client})`,
        fmt(m.baseline_events_per_s),
        m.best ? `${m.best.batch}, ${m.best.linger_ms} ms, t${m.best.threads}` : '-',
        fmt(m.best?.events_per_s ?? null),
        fmt(m.best?.cpu_us_per_event ?? null),
        m.best ? `${fmt(m.best.p50_ms)}/${fmt(m.best.p95_ms)}/${fmt(m.best.p99_ms)}` : '-',
        fmt(m.best?.rss_mb ?? null),
        fmt(m.ratio_vs_ceiling),
        fmt(m.ratio_vs_baseline),
      ]),
    ),
  );
  for (const m of models) {
    out.push('');
    out.push(
      `${m.model}/${m.version}: transport, each relay's drain (the fastest is the ceiling), and Kafka's Java perf tools on the same broker (the machine's reference, not a ceiling)`,
    );
    out.push(transportTable(m));
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
          'CPU µs/ev',
          'backpressure s',
          'paced ev/s',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'max ms',
          'p99 from send ms',
          'paced CPU serve/machine',
          'paced CPU µs/ev',
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
            fmt(s?.cpu_us_per_event ?? null),
            fmt(s?.serve?.backpressure_s ?? null),
            p ? fmt(p.rate) : g.paced ? 'failed' : '-',
            fmt(p?.p50_ms ?? null),
            fmt(p?.p95_ms ?? null),
            fmt(p?.p99_ms ?? null),
            fmt(p?.max_ms ?? null),
            fmt(p?.from_send.p99_ms ?? null),
            cpu(p?.cpu),
            fmt(p?.cpu_us_per_event ?? null),
            fmt(Math.max(s?.rss_mb ?? 0, p?.rss_mb ?? 0) || null),
          ];
        }),
      ),
    );
    out.push(contextLine(m));
    const comparison = m.details.clients;
    if (comparison !== undefined) {
      out.push('');
      out.push(
        `${m.model}/${m.version}: serve on each Kafka client (STREAMSCORE_KAFKA_CLIENT) at batch ${comparison.batch}, ` +
          `linger ${comparison.linger_ms} ms, ${comparison.threads} thread(s); drains alternated, paced at ${fmt(comparison.paced_rate)}/s`,
      );
      out.push(clientsTable(comparison));
    }
    const backfill = m.details.backfill;
    if (backfill !== undefined) {
      const drainOf = (r: typeof backfill.serve) =>
        'error' in r
          ? 'failed'
          : `${fmt(r.events_per_s)} ev/s (repeats ${r.repeats_events_per_s.map(fmt).join(', ')}; CPU ${cpu(r.cpu)}, ${fmt(r.cpu_us_per_event)} µs/ev; RSS ${fmt(r.rss_mb)} MB)`;
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

/** The numbers behind the ratios: every repeat of the baseline, the relay's and one hop's latency. */
function contextLine(m: ModelResult): string {
  const { baseline, transport_paced: relayPaced, hop_paced: hop } = m.details;
  const parts = [
    'error' in baseline
      ? 'baseline drains: failed'
      : `baseline drains ev/s: ${baseline.repeats_events_per_s.map(fmt).join(', ')} (best: CPU ${cpu(baseline.cpu)}, ${fmt(baseline.cpu_us_per_event)} µs/ev)`,
  ];
  if (relayPaced !== undefined) {
    parts.push(
      'error' in relayPaced
        ? 'relay paced: failed'
        : `relay paced (${m.ceiling_transport_client ?? '-'}) at ${fmt(relayPaced.rate)}/s (no model): p50/p95/p99 ${fmt(relayPaced.p50_ms)}/${fmt(relayPaced.p95_ms)}/${fmt(relayPaced.p99_ms)} ms, p99 from send ${fmt(relayPaced.from_send.p99_ms)} ms (CPU ${cpu(relayPaced.cpu)}, ${fmt(relayPaced.cpu_us_per_event)} µs/ev)`,
    );
  }
  if (hop !== undefined) {
    parts.push(
      'error' in hop
        ? 'one hop: failed'
        : `one hop at ${fmt(hop.rate)}/s (generator -> broker -> consumer): p50/p95/p99 ${fmt(hop.p50_ms)}/${fmt(hop.p95_ms)}/${fmt(hop.p99_ms)} ms (CPU bench/machine ${cpu(hop.cpu)}, bench ${fmt(hop.cpu_us_per_event)} µs/ev)`,
    );
  }
  return parts.join('; ');
}

/** Each relay's drain, then the Java tools' producer and consumer. */
function transportTable(m: ModelResult): string {
  const rows: string[][] = Object.entries(m.details.transports).map(([client, r]) =>
    'error' in r
      ? [`relay, ${client}`, 'failed', '-', '-', '-', '-']
      : [
          `relay, ${client}`,
          fmt(r.events_per_s),
          r.repeats_events_per_s.map(fmt).join(', '),
          cpu(r.cpu),
          fmt(r.cpu_us_per_event),
          client === m.ceiling_transport_client ? 'the ceiling' : '',
        ],
  );
  const java = m.details.java_reference;
  if (java !== undefined && 'error' in java) rows.push(['Java perf tools', 'failed', '-', '-', '-', '-']);
  if (java !== undefined && !('error' in java)) {
    const { producer, consumer } = java;
    const what = `${java.record_bytes} B records, keys from ${fmt(java.keys)}, Kafka ${java.version}`;
    rows.push(
      'error' in producer
        ? ['Java producer (reference)', 'failed', '-', '-', '-', '-']
        : [
            'Java producer (reference)',
            fmt(producer.records_per_s),
            producer.steady_records_per_s === null ? '-' : `steady ${fmt(producer.steady_records_per_s)}`,
            `${fmt(producer.cores)} (whole JVM)`,
            fmt(producer.cpu_us_per_record),
            `${what}, acks=all, p99 ${fmt(producer.p99_ms)} ms`,
          ],
      'error' in consumer
        ? ['Java consumer (reference)', 'failed', '-', '-', '-', '-']
        : [
            'Java consumer (reference)',
            fmt(consumer.records_per_s),
            `${fmt(consumer.records_per_s_with_join)} with join`,
            `${fmt(consumer.cores)} (whole JVM)`,
            fmt(consumer.cpu_us_per_record),
            'the same records read back',
          ],
    );
  }
  return table(['transport', 'ev/s', 'repeats ev/s', 'CPU process/machine', 'CPU µs/ev', 'note'], rows);
}

/** serve's best setting on each client. */
function clientsTable(comparison: NonNullable<ModelResult['details']['clients']>): string {
  return table(
    [
      'client',
      'drain ev/s',
      'repeats ev/s',
      'CPU serve/machine',
      'CPU µs/ev',
      'p50/p95/p99 ms',
      'paced CPU µs/ev',
      'RSS MB',
    ],
    comparison.runs.map((run) => {
      const d = 'error' in run.drain ? undefined : run.drain;
      const p = run.paced === undefined || 'error' in run.paced ? undefined : run.paced;
      return [
        run.client,
        d
          ? fmt(d.events_per_s)
          : 'error' in run.drain && run.drain.error.startsWith('skipped')
            ? 'skipped'
            : 'failed',
        d ? d.repeats_events_per_s.map(fmt).join(', ') : '-',
        cpu(d?.cpu),
        fmt(d?.cpu_us_per_event ?? null),
        p ? `${fmt(p.p50_ms)}/${fmt(p.p95_ms)}/${fmt(p.p99_ms)}` : run.paced ? 'failed' : '-',
        fmt(p?.cpu_us_per_event ?? null),
        fmt(Math.max(d?.rss_mb ?? 0, p?.rss_mb ?? 0) || null),
      ];
    }),
  );
}

function collectErrors(m: ModelResult): string[] {
  const errors: string[] = [];
  const { transports, baseline, grid } = m.details;
  for (const [client, relay] of Object.entries(transports))
    if ('error' in relay) errors.push(`relay ${client}: ${relay.error.split('\n')[0]}`);
  const java = m.details.java_reference;
  if (java !== undefined) {
    if ('error' in java) errors.push(`Java perf tools: ${java.error.split('\n')[0]}`);
    else {
      if ('error' in java.producer) errors.push(`Java producer: ${java.producer.error.split('\n')[0]}`);
      if ('error' in java.consumer) errors.push(`Java consumer: ${java.consumer.error.split('\n')[0]}`);
    }
  }
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
  for (const run of m.details.clients?.runs ?? []) {
    if ('error' in run.drain) errors.push(`serve on ${run.client}: ${run.drain.error.split('\n')[0]}`);
    if (run.paced !== undefined && 'error' in run.paced)
      errors.push(`serve on ${run.client}, paced: ${run.paced.error.split('\n')[0]}`);
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

export function fmt(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '-';
  return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
}

/** A Markdown table, so the same text pastes into BENCHMARKS.md. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** Written beside and renamed, so a reader never sees half a file (bench/results/*.tmp is ignored). */
export async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.tmp`;
  await writeFile(temporary, `${JSON.stringify(value, null, 2)}\n`);
  await rename(temporary, path);
}
