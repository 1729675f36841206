/**
 * `npm run bench:cost`: what makes a prediction cheaper, measured side by side in one run on the
 * heavy model.
 *   - precision: heavy/1 (float32) against heavy/2 (its int8 variant): the model ceiling (ONNX
 *     Runtime in this process) and serve's drain of a pre-filled topic, runs alternated; the
 *     accuracy delta on the variant check's reference rows.
 *   - cache: serve's drain of heavy/1 with the prediction cache off and on, with 0%, 30% and 90%
 *     of the events repeating an earlier event's features.
 * fraud's drain is measured too, for the cost of a prediction of each model. Each drain's CPU per
 * event gives the cost of a million predictions at BENCH_CORE_HOUR_PRICE (default 0.04).
 * Writes bench/results/cost.json and prints the tables.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { ModelRunner } from '../src/inference/runner.js';
import { ModelRepository } from '../src/models/repository.js';
import { checkVariant } from '../src/models/variant.js';
import { drain, type DrainResult } from './cases.js';
import { chooseInfrastructure } from './infrastructure.js';
import { createClients } from './kafka.js';
import { measureModelCeiling, type ModelPoint } from './model-ceiling.js';
import { startServe } from './targets.js';
import { loadWorkload } from './workload.js';

const quick = process.argv.includes('--quick');
const EVENTS = quick ? 6_000 : 20_000;
const REPEATS = quick ? 1 : 3;
const SETTINGS = { batchMaxRows: 256, lingerMs: 5, threads: 1 };
const CORE_HOUR_PRICE = Number(process.env.BENCH_CORE_HOUR_PRICE ?? '0.04');
const CACHE_ENV = { STREAMSCORE_CACHE_ENTRIES: '100000', STREAMSCORE_CACHE_MAX_MB: '256' };

function say(line: string): void {
  process.stderr.write(`[bench:cost] ${line}\n`);
}

interface DrainSummary {
  events_per_s: number;
  repeats_events_per_s: number[];
  cpu_us_per_event: number | null;
  cost_per_million: number | null;
  rss_mb: number | undefined;
}

function summarise(runs: DrainResult[]): DrainSummary {
  const best = runs.reduce((a, b) => (b.events_per_s > a.events_per_s ? b : a));
  const cores = best.cpu.process_cores;
  const cpuPerEvent = cores === null ? null : (cores / best.events_per_s) * 1e6;
  return {
    events_per_s: best.events_per_s,
    repeats_events_per_s: runs.map((r) => r.events_per_s),
    cpu_us_per_event: cpuPerEvent === null ? null : Math.round(cpuPerEvent * 10) / 10,
    cost_per_million:
      cpuPerEvent === null ? null : Math.round(((cpuPerEvent * CORE_HOUR_PRICE) / 3_600) * 1e6) / 1e6,
    rss_mb: best.rss_mb,
  };
}

async function main(): Promise<void> {
  const infrastructure = chooseInfrastructure(say);
  try {
    const clients = createClients(infrastructure);
    const fp32 = await loadWorkload('heavy', 'models', { version: '1' });
    const int8 = await loadWorkload('heavy', 'models', { version: '2' });

    say('model ceilings (in-process, batches x threads)');
    const ceilings: Record<string, ModelPoint> = {};
    for (const workload of [fp32, int8]) {
      ceilings[workload.version] = (await measureModelCeiling(workload, quick ? 0.25 : 1)).best;
      say(`  heavy/${workload.version}: ${ceilings[workload.version]!.rows_per_s} rows/s`);
    }
    const repository = new ModelRepository('models');
    const variant = await ModelRunner.load(int8.loaded, { executionProvider: 'cpu', threads: 1 });
    const accuracy = await checkVariant(repository, variant, { executionProvider: 'cpu', threads: 1 });
    await variant.release();

    const run = async (label: string, workload: typeof fp32, env: Record<string, string> = {}) =>
      drain(
        clients,
        workload,
        label,
        EVENTS,
        (topics) => startServe(infrastructure, topics, workload, SETTINGS, undefined, env),
        300_000,
      );
    say(`serve drains, fp32 and int8 alternated, then fraud (${EVENTS} events, best of ${REPEATS})`);
    const precision: Record<string, DrainResult[]> = { '1': [], '2': [] };
    for (let i = 0; i < REPEATS; i += 1) {
      for (const workload of [fp32, int8])
        precision[workload.version]!.push(await run(`heavy${workload.version}-drain`, workload));
    }
    const fraud = await loadWorkload('fraud');
    const fraudRuns: DrainResult[] = [];
    for (let i = 0; i < REPEATS; i += 1) fraudRuns.push(await run(`fraud${fraud.version}-drain`, fraud));
    const drains = {
      fp32: summarise(precision['1']!),
      int8: summarise(precision['2']!),
      fraud: summarise(fraudRuns),
    };
    say(`  fp32 ${drains.fp32.events_per_s}/s, int8 ${drains.int8.events_per_s}/s`);

    say('serve drains with the prediction cache off and on, by share of repeated rows');
    const cache: Record<string, { off: DrainSummary; on: DrainSummary }> = {};
    for (const share of [0, 0.3, 0.9]) {
      const workload = await loadWorkload('heavy', 'models', { version: '1', repeatShare: share });
      const runs = { off: [] as DrainResult[], on: [] as DrainResult[] };
      for (let i = 0; i < REPEATS; i += 1) {
        runs.off.push(await run(`heavy-cache-off-${share}`, workload));
        runs.on.push(await run(`heavy-cache-on-${share}`, workload, CACHE_ENV));
      }
      cache[String(share)] = { off: summarise(runs.off), on: summarise(runs.on) };
      say(
        `  ${share * 100}% repeats: off ${cache[String(share)]!.off.events_per_s}/s, on ${cache[String(share)]!.on.events_per_s}/s`,
      );
    }

    const result = {
      generated_at: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      events_per_drain: EVENTS,
      repeats: REPEATS,
      settings: SETTINGS,
      core_hour_price: CORE_HOUR_PRICE,
      model_ceiling_rows_per_s: { fp32: ceilings['1']!.rows_per_s, int8: ceilings['2']!.rows_per_s },
      model_ceiling_best: { fp32: ceilings['1'], int8: ceilings['2'] },
      accuracy: accuracy ?? null,
      drains,
      cache,
    };
    const fmt = (d: DrainSummary) =>
      `${d.events_per_s.toLocaleString('en-US')} | ${d.cpu_us_per_event ?? '-'} | ${d.cost_per_million ?? '-'}`;
    const lines = [
      `| heavy | model ceiling rows/s | serve drain ev/s | CPU µs/event | cost per 1M at ${CORE_HOUR_PRICE}/core-hour |`,
      '| --- | --- | --- | --- | --- |',
      `| 1 (fp32) | ${ceilings['1']!.rows_per_s.toLocaleString('en-US')} | ${fmt(drains.fp32)} |`,
      `| 2 (int8) | ${ceilings['2']!.rows_per_s.toLocaleString('en-US')} | ${fmt(drains.int8)} |`,
      `| fraud/${fraud.version} (fp32) | - | ${fmt(drains.fraud)} |`,
      '',
      `int8 against fp32 on ${accuracy?.rows ?? '-'} reference rows: max |diff| ${accuracy?.maxScoreDiff.toFixed(4) ?? '-'}, decision agreement ${accuracy?.agreement.toFixed(4) ?? '-'}`,
      '',
      '| repeated rows | cache off ev/s | cache on ev/s | on/off | CPU µs/event off | on |',
      '| --- | --- | --- | --- | --- | --- |',
      ...Object.entries(cache).map(
        ([share, { off, on }]) =>
          `| ${Number(share) * 100}% | ${off.events_per_s.toLocaleString('en-US')} | ${on.events_per_s.toLocaleString('en-US')} | ${(on.events_per_s / off.events_per_s).toFixed(2)} | ${off.cpu_us_per_event ?? '-'} | ${on.cpu_us_per_event ?? '-'} |`,
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    await mkdir('bench/results', { recursive: true });
    await writeFile('bench/results/cost.json', `${JSON.stringify(result, null, 2)}\n`);
    say('wrote bench/results/cost.json');
  } finally {
    infrastructure.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `[bench:cost] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
