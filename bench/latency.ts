/**
 * `npm run bench:latency`: end-to-end latency of serve (and, with --relay, of the no-model transport
 * relay) at one batch setting and one paced rate, without the full bench. For tuning a setting
 * before a full run, or checking what a change does to the tail. Same method as the full bench's
 * paced case (see BENCHMARKS.md); nothing is written unless --out is given.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarizeProfile } from './profile.js';
import { paced, type PacedResult } from './cases.js';
import { chooseInfrastructure } from './infrastructure.js';
import { createClients } from './kafka.js';
import { startRelay, startServe } from './targets.js';
import { loadWorkload } from './workload.js';

const USAGE = `Usage: npm run bench:latency -- --rate EVENTS_PER_S [options]

  --model NAME        fraud (default) or heavy
  --rate N            events per second to send (required)
  --rows N            STREAMSCORE_BATCH_MAX_ROWS (default 1024)
  --linger MS         STREAMSCORE_BATCH_LINGER_MS (default 20)
  --threads N         STREAMSCORE_INFERENCE_THREADS (default 1)
  --seconds N         measured seconds after a 3 s warm-up (default 15)
  --repeat N          paced runs of serve (default 1)
  --profile           run serve under node --cpu-prof and print where it spent time
  --relay             also pace the no-model transport relay at the same rate
  --env KEY=VALUE     extra environment for serve (repeatable)
  --out FILE          write the results as JSON`;

function say(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function describe(result: PacedResult): string {
  return (
    `p50/p95/p99/max ${result.p50_ms}/${result.p95_ms}/${result.p99_ms}/${result.max_ms} ms ` +
    `(from send p99 ${result.from_send.p99_ms} ms, sender lag max ${result.producer_max_lag_ms} ms), ` +
    `${result.measured} events, CPU ${result.cpu.process_cores}/${result.cpu.machine_busy_cores}` +
    (result.serve?.avg_batch_rows !== undefined ? `, avg batch ${result.serve.avg_batch_rows}` : '') +
    (result.rss_mb !== undefined ? `, RSS ${result.rss_mb} MB` : '') +
    Object.entries(result.serve?.stages ?? {})
      .map(([stage, s]) => `\n  ${stage}: mean ${s.mean_ms} ms, p99 <= ${s.p99_le_ms} ms (${s.count})`)
      .join('')
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'fraud' },
      rate: { type: 'string' },
      rows: { type: 'string', default: '1024' },
      linger: { type: 'string', default: '20' },
      threads: { type: 'string', default: '1' },
      seconds: { type: 'string', default: '15' },
      repeat: { type: 'string', default: '1' },
      relay: { type: 'boolean', default: false },
      env: { type: 'string', multiple: true, default: [] },
      out: { type: 'string' },
      profile: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const rate = Number(values.rate);
  if (values.help || !(rate > 0)) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const settings = {
    batchMaxRows: Number(values.rows),
    lingerMs: Number(values.linger),
    threads: Number(values.threads),
  };
  const extraEnv: Record<string, string> = {};
  for (const pair of values.env) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--env wants KEY=VALUE, got ${pair}`);
    extraEnv[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const seconds = Number(values.seconds);
  const infrastructure = chooseInfrastructure(say);
  try {
    const clients = createClients(infrastructure);
    const workload = await loadWorkload(values.model);
    const results: Record<string, PacedResult[]> = { serve: [], relay: [] };
    const name = `latency-${values.model}-b${settings.batchMaxRows}-l${settings.lingerMs}.cpuprofile`;
    const profiling = values.profile ? { dir: join('bench', 'results'), name } : undefined;
    for (let i = 0; i < Number(values.repeat); i += 1) {
      const result = await paced(clients, workload, `${values.model}-latency`, rate, 3, seconds, (t) =>
        startServe(clients.endpoints, t, workload, settings, profiling, extraEnv),
      );
      say(`serve ${settings.batchMaxRows}/${settings.lingerMs} ms/t${settings.threads}: ${describe(result)}`);
      results.serve!.push(result);
    }
    if (values.relay) {
      const result = await paced(clients, workload, `${values.model}-relay`, rate, 3, seconds, (t) =>
        startRelay(clients.endpoints, t, workload),
      );
      say(`relay: ${describe(result)}`);
      results.relay!.push(result);
    }
    if (profiling !== undefined) {
      const summary = await summarizeProfile(join(profiling.dir, profiling.name));
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    }
    if (values.out !== undefined) {
      const report = { model: values.model, rate, settings, env: extraEnv, results };
      await writeFile(values.out, `${JSON.stringify(report, null, 2)}\n`);
    }
    return 0;
  } finally {
    infrastructure.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `[bench] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
