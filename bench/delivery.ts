/**
 * `npm run bench:delivery`: what exactly-once delivery costs, against at-least-once on the same
 * setting, in one run. For each model: drains of each variant taken in turn (a, b, c, a, b, c...;
 * the fastest of each is kept), then each paced at one rate (half the slowest drain), so the
 * latencies compare at one load. Variants: at-least-once (producer thread, the default),
 * at-least-once with the producer on the main thread (where exactly-once's producer runs), and
 * exactly-once. Arrivals are read with read_committed. Writes bench/results/delivery.json.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { drain, paced, type DrainResult, type PacedResult } from './cases.js';
import { chooseInfrastructure } from './infrastructure.js';
import { createClients, type CaseTopics } from './kafka.js';
import { kafkaClientEnv, serveClientProblem, startServe } from './targets.js';
import { writeJson } from './report.js';
import { loadWorkload } from './workload.js';

const USAGE = `Usage: npm run bench:delivery -- [options]

  --models LIST     models to run (default fraud,heavy)
  --repeats N       drains per variant, alternated; the fastest counts (default 3)
  --events N        events per drain (default 100000 fraud, 40000 heavy)
  --seconds N       paced seconds per variant, after a 3 s warm-up (default 15)
  --quick           1 drain each of 20000 events, 8 paced seconds
`;

/** serve's best setting per model in BENCHMARKS.md ("Last results"). */
const SETTINGS: Record<string, { batchMaxRows: number; lingerMs: number; threads: number }> = {
  fraud: { batchMaxRows: 1024, lingerMs: 20, threads: 1 },
  heavy: { batchMaxRows: 1024, lingerMs: 0, threads: 1 },
};

const VARIANTS = {
  'at-least-once': {},
  'at-least-once, main-thread producer': { STREAMSCORE_PRODUCER_THREAD: 'false' },
  'exactly-once': { STREAMSCORE_DELIVERY: 'exactly-once' },
} as const;
type Variant = keyof typeof VARIANTS;

interface VariantResult {
  variant: Variant;
  drains: DrainResult[];
  best: DrainResult | undefined;
  paced: PacedResult | undefined;
  error?: string;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      models: { type: 'string', default: 'fraud,heavy' },
      repeats: { type: 'string' },
      events: { type: 'string' },
      seconds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    say(USAGE);
    return 0;
  }
  const problem = serveClientProblem('platformatic');
  if (problem !== undefined) throw new Error(`exactly-once needs the platformatic client: ${problem}`);
  const models = values.models.split(',').map((model) => model.trim());
  for (const model of models)
    if (SETTINGS[model] === undefined) throw new Error(`--models: unknown ${model}`);
  const repeats = Number(values.repeats ?? (values.quick ? 1 : 3));
  const seconds = Number(values.seconds ?? (values.quick ? 8 : 15));
  const infrastructure = chooseInfrastructure(say);
  const report: Record<
    string,
    { setting: (typeof SETTINGS)[string]; rate: number; variants: VariantResult[] }
  > = {};
  try {
    const clients = createClients(infrastructure);
    for (const model of models) {
      const workload = await loadWorkload(model);
      const settings = SETTINGS[model]!;
      const events = Number(values.events ?? (values.quick ? 20_000 : model === 'fraud' ? 100_000 : 40_000));
      const start = (variant: Variant) => (topics: CaseTopics) =>
        startServe(clients.endpoints, topics, workload, settings, undefined, {
          ...kafkaClientEnv('platformatic'),
          ...VARIANTS[variant],
        });
      const results = new Map<Variant, VariantResult>(
        (Object.keys(VARIANTS) as Variant[]).map((variant) => [
          variant,
          { variant, drains: [], best: undefined, paced: undefined },
        ]),
      );
      for (let i = 0; i < repeats; i += 1) {
        for (const [variant, result] of results) {
          try {
            const run = await drain(
              clients,
              workload,
              `${model}-delivery-${variant.replace(/[^a-z0-9]+/gi, '-')}`,
              events,
              start(variant),
              300_000,
            );
            result.drains.push(run);
            say(
              `${model} ${variant} drain: ${run.events_per_s} ev/s, ${run.cpu_us_per_event} µs/ev, RSS ${run.rss_mb} MB`,
            );
          } catch (error) {
            result.error = error instanceof Error ? error.message : String(error);
            say(`${model} ${variant} drain failed: ${result.error}`);
          }
        }
      }
      for (const result of results.values()) {
        result.best = result.drains.reduce<DrainResult | undefined>(
          (a, b) => (a === undefined || b.events_per_s > a.events_per_s ? b : a),
          undefined,
        );
      }
      const drained = [...results.values()].flatMap((r) =>
        r.best === undefined ? [] : [r.best.events_per_s],
      );
      const rate = Math.max(1_000, Math.round(Math.min(...drained) / 2 / 1_000) * 1_000);
      for (const [variant, result] of results) {
        try {
          result.paced = await paced(
            clients,
            workload,
            `${model}-delivery-paced`,
            rate,
            3,
            seconds,
            start(variant),
          );
          say(
            `${model} ${variant} at ${rate} ev/s: p50/p99 ${result.paced.p50_ms}/${result.paced.p99_ms} ms`,
          );
        } catch (error) {
          result.error = error instanceof Error ? error.message : String(error);
          say(`${model} ${variant} paced failed: ${result.error}`);
        }
      }
      report[model] = { setting: settings, rate, variants: [...results.values()] };
    }
  } finally {
    infrastructure.stop();
  }
  say('');
  say(table(report));
  const file = join('bench', 'results', values.quick ? 'delivery-quick.json' : 'delivery.json');
  await writeJson(file, { at: new Date().toISOString(), report });
  say(`\nwritten: ${file}`);
  return 0;
}

/** One row per model and variant; ratios against at-least-once (the default) of the same run. */
function table(
  report: Record<
    string,
    { rate: number; variants: readonly Pick<VariantResult, 'variant' | 'best' | 'paced'>[] }
  >,
): string {
  const lines = [
    '| model | delivery | drain ev/s | vs at-least-once | CPU µs/ev | RSS MB | paced rate | p50 ms | p99 ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const [model, { rate, variants }] of Object.entries(report)) {
    const base = variants.find((v) => v.variant === 'at-least-once')?.best?.events_per_s;
    for (const { variant, best, paced: p } of variants) {
      const ratio = best !== undefined && base !== undefined ? (best.events_per_s / base).toFixed(2) : '–';
      lines.push(
        `| ${model} | ${variant} | ${best?.events_per_s.toLocaleString('en-US') ?? 'failed'} | ${ratio} | ` +
          `${best?.cpu_us_per_event ?? '–'} | ${best?.rss_mb ?? '–'} | ${rate.toLocaleString('en-US')} | ` +
          `${p?.p50_ms ?? '–'} | ${p?.p99_ms ?? '–'} |`,
      );
    }
  }
  return lines.join('\n');
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
