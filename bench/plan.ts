/**
 * What one `npm run bench` measures, from its flags. The full plan is sized to finish well under 20
 * minutes on a 2-core machine (about 16), --quick in about 3 (stack start and build included).
 * Event counts are per model because a heavy event is ~15 times the bytes and ~7 times the work of
 * a fraud event.
 */
import { parseArgs } from 'node:util';

/** The Kafka clients the bench runs a relay on, and serve on (STREAMSCORE_KAFKA_CLIENT). */
export const KAFKA_CLIENTS = ['kafkajs', 'platformatic'] as const;
export type KafkaClientName = (typeof KAFKA_CLIENTS)[number];

export interface GridPoint {
  batchMaxRows: number;
  lingerMs: number;
}

export interface ModelPlan {
  /** Events pre-filled for each transport and serve drain. */
  drainEvents: number;
  /** Events for the per-event baseline, which is much slower. */
  baselineEvents: number;
}

export interface Plan {
  mode: 'full' | 'quick';
  models: string[];
  /**
   * Clients serve's best setting of each model is run on, side by side (the grid runs on serve's
   * default client only). Transport relays run on every client whatever this says.
   */
  clients: KafkaClientName[];
  /**
   * A built checkout of earlier code (its dist/ and node_modules/) whose serve runs beside this
   * one's at the same setting, on its default client: "today's drain" for a ratio from one run.
   */
  reference: string | undefined;
  /** Whether Kafka's own Java perf tools run as the machine's reference. */
  javaReference: boolean;
  profile: boolean;
  out: string;
  /** Seconds of timed calls per (threads, batch) point of the model ceiling. */
  modelSecondsPerPoint: number;
  grid: GridPoint[];
  perModel: Record<string, ModelPlan>;
  pacedWarmupSeconds: number;
  pacedMeasureSeconds: number;
  /** Drains per transport, baseline and serve case; the fastest counts. */
  drainRepeats: number;
  /** The most a drain may take before the case is reported as failed. */
  drainTimeoutMs: number;
  /** Records each Java perf tool writes or reads, per model. */
  javaRecords: Record<string, number>;
}

export const USAGE = `Usage: npm run bench -- [--quick] [--profile] [--models fraud,heavy] [--clients kafkajs,platformatic]
                       [--no-java] [--reference DIR] [--repeats N] [--out FILE]

  --quick      smoke run (~4 min): one serve setting, fewer events, shorter paced runs
  --profile    also drain once per model under node --cpu-prof at the best setting, write
               bench/results/serve-<model>-*.cpuprofile and print the top self-time functions
               (the profiled drain is not used for any number)
  --models     comma-separated models to run (default fraud,heavy)
  --clients    Kafka clients to run serve's best setting on, side by side, with
               STREAMSCORE_KAFKA_CLIENT set (default kafkajs,platformatic); the grid runs on
               serve's default client. The transport relays always run on every client.
               With platformatic, also its variant with the producer on the main thread
               (STREAMSCORE_PRODUCER_THREAD=false).
  --reference DIR  also run, beside them, serve from DIR: a built checkout of earlier code
               (e.g. \`git worktree add DIR <commit> && cd DIR && npm ci && npm run build\`)
  --no-java    skip Kafka's own Java perf tools (the reference; fetched with mvn on first use)
  --repeats N  drains per case, the best kept (default 2, --quick: 1); relays, serve per client,
               and serve and backfill alternate N times
  --out FILE   result JSON (default bench/results/latest.json, --quick: latest-quick.json)

KAFKA_BROKERS and SCHEMA_REGISTRY_URL select a broker and registry; without them the local JVM
stack (scripts/stack.sh) is used, and started and stopped if it is not running.`;

const FULL_GRID: GridPoint[] = [
  { batchMaxRows: 1024, lingerMs: 0 },
  { batchMaxRows: 64, lingerMs: 2 },
  { batchMaxRows: 256, lingerMs: 5 },
  { batchMaxRows: 1024, lingerMs: 5 },
  { batchMaxRows: 1024, lingerMs: 20 },
];

export function parsePlan(argv: string[]): Plan | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      models: { type: 'string', default: 'fraud,heavy' },
      clients: { type: 'string', default: KAFKA_CLIENTS.join(',') },
      'no-java': { type: 'boolean', default: false },
      reference: { type: 'string' },
      out: { type: 'string' },
      repeats: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const quick = values.quick;
  const models = values.models
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  return {
    mode: quick ? 'quick' : 'full',
    models,
    clients: clientsOf(values.clients),
    reference: values.reference,
    javaReference: !values['no-java'],
    profile: values.profile,
    out: values.out ?? (quick ? 'bench/results/latest-quick.json' : 'bench/results/latest.json'),
    modelSecondsPerPoint: quick ? 0.25 : 1,
    grid: quick ? [{ batchMaxRows: 256, lingerMs: 5 }] : FULL_GRID,
    perModel: quick
      ? {
          fraud: { drainEvents: 40_000, baselineEvents: 2_000 },
          heavy: { drainEvents: 10_000, baselineEvents: 1_000 },
        }
      : {
          fraud: { drainEvents: 200_000, baselineEvents: 10_000 },
          heavy: { drainEvents: 40_000, baselineEvents: 5_000 },
        },
    pacedWarmupSeconds: quick ? 2 : 3,
    pacedMeasureSeconds: quick ? 5 : 15,
    drainRepeats: repeatsOf(values.repeats, quick ? 1 : 2),
    drainTimeoutMs: quick ? 90_000 : 300_000,
    // Java's tools take a few seconds to start and warm up; more records than a drain so that
    // start-up is a small part of their time.
    javaRecords: quick ? { fraud: 200_000, heavy: 20_000 } : { fraud: 1_000_000, heavy: 100_000 },
  };
}

function clientsOf(text: string): KafkaClientName[] {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unknown = names.filter((name) => !(KAFKA_CLIENTS as readonly string[]).includes(name));
  if (names.length === 0 || unknown.length > 0)
    throw Object.assign(
      new Error(
        `--clients: ${JSON.stringify(text)} names ${unknown.length > 0 ? `an unknown client (${unknown.join(', ')})` : 'no client'}; expected a comma-separated list of ${KAFKA_CLIENTS.join(', ')}`,
      ),
      { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' },
    );
  return [...new Set(names)] as KafkaClientName[];
}

function repeatsOf(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const repeats = Number(text);
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 20)
    throw Object.assign(new Error(`--repeats: ${JSON.stringify(text)} is not a whole number from 1 to 20`), {
      code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
    });
  return repeats;
}
