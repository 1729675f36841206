/**
 * `npm run bench:scale`: what a scale event of serve costs. Replicas of serve share one consumer
 * group on the requests topic; under a paced load at half of one replica's saturation, a replica is
 * added (1 -> 2 -> 3) or stopped with SIGTERM (3 -> 2 -> 1), and each event is measured against the
 * steady window before the first: the longest time a requests partition went without a new
 * prediction, p99 and max end-to-end latency, and repeated predictions. Scenarios alternate, each
 * repeated; the table gives the median and the worst. See BENCHMARKS.md, "Scale events".
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { attempt, type Failed } from './attempt.js';
import { drain } from './cases.js';
import { chooseInfrastructure } from './infrastructure.js';
import { createClients } from './kafka.js';
import { describeMachine } from './machine.js';
import { KAFKA_CLIENTS, type KafkaClientName } from './plan.js';
import { formatScale, summarize, type ScaleResult } from './scale-report.js';
import { writeJson } from './report.js';
import {
  AFTER_JOIN_MS,
  LEAD_MS,
  SCENARIOS,
  runScenario,
  type RunResult,
  type ScaleSettings,
} from './scale-run.js';
import {
  kafkaClientEnv,
  serveClientProblem,
  serveSetting,
  serveSettingProblem,
  startServe,
} from './targets.js';
import { loadWorkload } from './workload.js';

const USAGE = `Usage: npm run bench:scale -- [options]

  --quick             smoke run (~3 min): one repeat, 6 s windows, a shorter drain
  --rate N            events per second (default: half of a drain of serve measured first)
  --drain N           events of that drain (default 200000; quick 50000)
  --repeats N         runs of each scenario, alternated (default 3; quick 1)
  --phase S           seconds of each window and between events (default 10; quick 6); an added
                      replica's window lasts until 5 s after its join at least
  --scenarios LIST    scale-up,scale-down (default both)
  --client NAME       serve's Kafka client (STREAMSCORE_KAFKA_CLIENT): platformatic (default) or kafkajs
  --delivery MODE     serve's STREAMSCORE_DELIVERY: at-least-once (default) or exactly-once
  --model NAME        fraud (default) or heavy
  --out FILE          result JSON (default bench/results/scale.json; quick: scale-quick.json)`;

const DELIVERIES = ['at-least-once', 'exactly-once'] as const;
const DELIVERY_SETTING = 'STREAMSCORE_DELIVERY';
/** fraud's best setting in BENCHMARKS.md (1024 rows, 20 ms linger, one runtime thread). */
const SERVE = { batchMaxRows: 1_024, lingerMs: 20, threads: 1 };
const WARMUP_SECONDS = 3;

const METHOD: Record<string, string> = {
  load: 'pre-encoded events paced at a fixed rate for warm-up + (events + 1) windows, event_time = the moment each was due (bench/load.ts), to a fresh 6-partition requests topic',
  rate: 'half of one replica draining a pre-filled topic (bench/cases.ts drain), measured at the start of the run at the same setting and environment, unless --rate',
  replicas:
    'serve processes (dist/src/cli.js with its launcher flags) in one group; the initial ones started together and their group settled (their latest assignments divide the partitions) before the load; add = spawn one more, SIGTERM = stop the newest',
  windows:
    "steady: phase_s before the first event's window; each event: from lead_ms before it, phase_s long, an add's until at least after_join_ms after the new replica's first join; the next event waits for the window's end, so windows do not overlap",
  longest_partition_gap:
    "per requests partition (the event's key hashed as Java's partitioner), the longest time it had a request waiting (sent, not yet predicted) and no new prediction arrived at the consumer of the predictions topic, over the gaps that overlap the window: before each first prediction, from the later of the previous first prediction and that event's send; a repeat does not end a gap, a sender behind its schedule does not open one",
  latency:
    "arrival of an event's first prediction at a consumer of the predictions topic (read_committed, its own thread) - event_time, over the events due in the window; nearest-rank p99 and max. 'from send': the same from the moment its send was issued, without the load generator's lag",
  repeats: 'predictions of a request id after its first, counted in the window where they arrived',
  replica_done:
    "add: the new replica's first `joined consumer group` log line; SIGTERM: the process's exit; ms after the event. last join: the last `joined consumer group` line of any replica in the window",
};

function say(line: string): void {
  process.stderr.write(`[bench:scale] ${line}\n`);
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!(number > 0) || !Number.isFinite(number))
    throw new Error(`--${name}: ${value}; expected a positive number`);
  return number;
}

/** serve's environment for the delivery guarantee; serve before STREAMSCORE_DELIVERY delivers at least once. */
function deliveryEnv(delivery: string): Record<string, string> {
  if (!(DELIVERIES as readonly string[]).includes(delivery))
    throw new Error(`--delivery: ${JSON.stringify(delivery)}; expected one of ${DELIVERIES.join(', ')}`);
  if (serveSetting(DELIVERY_SETTING) === undefined && delivery === 'at-least-once') {
    say(`serve has no ${DELIVERY_SETTING} setting: it delivers at least once, and the variable is not set`);
    return {};
  }
  const problem = serveSettingProblem(DELIVERY_SETTING, delivery);
  if (problem !== undefined) throw new Error(`--delivery ${delivery}: ${problem}`);
  return { [DELIVERY_SETTING]: delivery };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rate: { type: 'string' },
      drain: { type: 'string' },
      repeats: { type: 'string' },
      phase: { type: 'string' },
      scenarios: { type: 'string', default: SCENARIOS.map((s) => s.name).join(',') },
      client: { type: 'string', default: 'platformatic' },
      delivery: { type: 'string', default: 'at-least-once' },
      model: { type: 'string', default: 'fraud' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const quick = values.quick;
  const repeats = Math.round(positive('repeats', values.repeats, quick ? 1 : 3));
  const phaseSeconds = positive('phase', values.phase, quick ? 6 : 10);
  const drainEvents = Math.round(positive('drain', values.drain, quick ? 50_000 : 200_000));
  const out = values.out ?? `bench/results/${quick ? 'scale-quick' : 'scale'}.json`;
  const scenarios = values.scenarios.split(',').map((name) => {
    const scenario = SCENARIOS.find((s) => s.name === name.trim());
    if (scenario === undefined)
      throw new Error(`--scenarios: ${name}; expected ${SCENARIOS.map((s) => s.name).join(', ')}`);
    return scenario;
  });
  if (!(KAFKA_CLIENTS as readonly string[]).includes(values.client))
    throw new Error(
      `--client: ${JSON.stringify(values.client)}; expected one of ${KAFKA_CLIENTS.join(', ')}`,
    );
  const client = values.client as KafkaClientName;
  const clientProblem = serveClientProblem(client);
  if (clientProblem !== undefined) throw new Error(`--client ${client}: ${clientProblem}`);
  const env = { ...kafkaClientEnv(client), ...deliveryEnv(values.delivery) };

  const started = Date.now();
  const infrastructure = chooseInfrastructure(say);
  say(`infrastructure: ${infrastructure.kind}: ${infrastructure.brokers}, ${infrastructure.registryUrl}`);
  try {
    const clients = createClients(infrastructure);
    const machine = describeMachine(infrastructure.kafkaVersion, infrastructure.registryVersion);
    const workload = await loadWorkload(values.model);
    let rate = values.rate === undefined ? undefined : Math.round(positive('rate', values.rate, 0));
    let rateFrom = '--rate';
    if (rate === undefined) {
      const drained = await drain(
        clients,
        workload,
        `scale-${values.model}-drain`,
        drainEvents,
        (topics) => startServe(clients.endpoints, topics, workload, SERVE, undefined, env),
        300_000,
      );
      rate = Math.round(drained.events_per_s / 2);
      rateFrom = `half of one replica's drain of ${drainEvents.toLocaleString('en-US')} events: ${drained.events_per_s.toLocaleString('en-US')}/s`;
      say(`drain: ${drained.events_per_s} events/s (${drained.seconds} s); pacing at ${rate}/s`);
    }
    const settings: ScaleSettings = { rate, warmupSeconds: WARMUP_SECONDS, phaseSeconds, serve: SERVE, env };
    const runs = new Map<string, (RunResult | Failed)[]>(scenarios.map((s) => [s.name, []]));
    for (let repeat = 0; repeat < repeats; repeat += 1) {
      for (const scenario of scenarios) {
        const result = await attempt(() => runScenario(clients, workload, scenario, settings));
        runs.get(scenario.name)!.push(result);
        say(`${scenario.name} ${repeat + 1}/${repeats}: ${describe(result)}`);
      }
    }
    const result: ScaleResult = {
      generated_at: new Date(started).toISOString(),
      mode: quick ? 'quick' : 'full',
      seconds: Math.round((Date.now() - started) / 1_000),
      infrastructure: infrastructure.kind,
      machine,
      load_average_at_end: Math.round(os.loadavg()[0]! * 100) / 100,
      method: METHOD,
      settings: {
        model: workload.model,
        version: workload.version,
        rate,
        rate_from: rateFrom,
        client,
        delivery: values.delivery,
        serve_env: env,
        batch_max_rows: SERVE.batchMaxRows,
        linger_ms: SERVE.lingerMs,
        threads: SERVE.threads,
        warmup_s: WARMUP_SECONDS,
        phase_s: phaseSeconds,
        lead_ms: LEAD_MS,
        after_join_ms: AFTER_JOIN_MS,
        repeats,
      },
      scenarios: [...runs].map(([name, list]) => summarize(name, list)),
    };
    process.stdout.write(`${formatScale(result)}\n`);
    await writeJson(out, result);
    say(`wrote ${out} (${result.seconds} s)`);
    return 0;
  } finally {
    infrastructure.stop();
  }
}

function describe(result: RunResult | Failed): string {
  if ('error' in result) return `failed: ${result.error}`;
  const events = result.events
    .map(
      (e) =>
        `${e.action} (${e.replicas} replicas): gap ${e.longest_gap_ms} ms, p99 ${e.p99_ms} ms, max ${e.max_ms} ms, ` +
        `${e.repeats} repeats`,
    )
    .join('; ');
  const s = result.steady;
  return (
    `steady gap ${s.longest_gap_ms} ms, p99 ${s.p99_ms} ms, max ${s.max_ms} ms; ${events}; ` +
    `${result.missing} never predicted`
  );
}

main().then(
  // Exit explicitly: kafkajs and ONNX Runtime may keep timers or threads alive after the run.
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `[bench:scale] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n${USAGE}\n`,
    );
    process.exit(1);
  },
);
