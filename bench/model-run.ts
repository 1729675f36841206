/**
 * Everything measured for one model, in the order that lets each step use the one before: the
 * model ceiling picks the thread count serve gets, each grid point's drain sets its paced rate.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { attempt, type Failed } from './attempt.js';
import { drain, paced, type DrainResult, type PacedResult } from './cases.js';
import { runJavaReference, type JavaReference } from './java-perf.js';
import type { BenchClients, CaseTopics } from './kafka.js';
import { THREAD_COUNTS, measureModelCeiling } from './model-ceiling.js';
import { KAFKA_CLIENTS, type GridPoint, type KafkaClientName, type Plan } from './plan.js';
import { summarizeProfile } from './profile.js';
import {
  fastestPoint,
  fastestRelay,
  summarize,
  type BestDrain,
  addLaterTargets,
  type ClientRun,
  type GridResult,
  type ModelResult,
} from './summary.js';
import {
  kafkaClientEnv,
  serveClientProblem,
  startBackfill,
  startRelay,
  startServe,
  type ServeSettings,
} from './targets.js';
import { loadWorkload, type Workload } from './workload.js';

export async function runModel(
  clients: BenchClients,
  plan: Plan,
  model: string,
  kafkaRelease: string,
  say: (line: string) => void,
): Promise<ModelResult> {
  const workload = await loadWorkload(model);
  const counts = plan.perModel[model] ?? plan.perModel.heavy!;
  const { endpoints } = clients;

  say(`${model}/${workload.version}: model ceiling (ONNX Runtime in-process, batches x threads)`);
  const ceiling = await measureModelCeiling(workload, plan.modelSecondsPerPoint);
  const { best: top } = ceiling;
  say(`  best ${top.rows_per_s} rows/s at batch ${top.batch}, ${top.threads} thread(s)`);

  const repeats = plan.drainRepeats;
  say(
    `${model}: transport ceiling (relays on ${KAFKA_CLIENTS.join(', ')}, ${counts.drainEvents} events, alternated, best of ${repeats})`,
  );
  const transports = await alternated(repeats, KAFKA_CLIENTS, (client) =>
    drain(
      clients,
      workload,
      `${model}-relay-${client}`,
      counts.drainEvents,
      (t) => startRelay(endpoints, t, workload, client),
      plan.drainTimeoutMs,
    ),
  );
  for (const client of KAFKA_CLIENTS) say(`  ${client}: ${describeDrain(transports[client])}`);

  let javaReference: JavaReference | Failed | undefined;
  if (plan.javaReference) {
    const records = plan.javaRecords[model] ?? plan.javaRecords.heavy!;
    say(`${model}: reference, Kafka ${kafkaRelease}'s Java perf tools on the same broker`);
    javaReference = await attempt(() => runJavaReference(clients, workload, kafkaRelease, records, say));
    say(`  ${describeJava(javaReference)}`);
  }

  const measure = async (point: GridPoint, threads: number): Promise<GridResult> => {
    const settings = { ...point, threads };
    const name = `${model}-b${point.batchMaxRows}-l${point.lingerMs}-t${threads}`;
    say(
      `${model}: serve batch ${point.batchMaxRows}, linger ${point.lingerMs} ms, ${threads} thread(s): drain ${counts.drainEvents}`,
    );
    const saturation = await bestOf(repeats, () =>
      drain(
        clients,
        workload,
        name,
        counts.drainEvents,
        (t) => startServe(endpoints, t, workload, settings),
        plan.drainTimeoutMs,
      ),
    );
    say(`  ${describeDrain(saturation)}`);
    if ('error' in saturation) return { ...point, threads, saturation, paced: undefined };
    const rate = Math.max(1, Math.round(saturation.events_per_s / 2));
    say(`  paced at ${rate}/s for ${plan.pacedWarmupSeconds}+${plan.pacedMeasureSeconds} s`);
    const pacedResult = await attempt(() =>
      paced(
        clients,
        workload,
        `${name}-paced`,
        rate,
        plan.pacedWarmupSeconds,
        plan.pacedMeasureSeconds,
        (t) => startServe(endpoints, t, workload, settings),
      ),
    );
    say(`  ${describePaced(pacedResult)}`);
    return { ...point, threads, saturation, paced: pacedResult };
  };

  const grid: GridResult[] = [];
  for (const point of plan.grid) grid.push(await measure(point, ceiling.best.threads));
  // The ceiling's best thread count was found with the machine to itself; under Kafka load a
  // second intra-op thread may cost more than it gives, so the best point is tried with the other.
  const leader = fastestPoint(grid);
  const otherThreads = THREAD_COUNTS.find((t) => t !== ceiling.best.threads);
  if (leader !== undefined && otherThreads !== undefined) grid.push(await measure(leader, otherThreads));
  const threads = fastestPoint(grid)?.threads ?? ceiling.best.threads;

  say(
    `${model}: per-event baseline (serve, batch 1, ${threads} thread(s), ${counts.baselineEvents} events, best of ${repeats})`,
  );
  const baseline = await bestOf(repeats, () =>
    drain(
      clients,
      workload,
      `${model}-baseline`,
      counts.baselineEvents,
      (t) => startServe(endpoints, t, workload, { batchMaxRows: 1, lingerMs: 0, threads }),
      plan.drainTimeoutMs,
    ),
  );
  say(`  ${describeDrain(baseline)}`);

  const result = summarize(model, workload.version, ceiling, transports, baseline, grid);
  if (javaReference !== undefined) result.details.java_reference = javaReference;

  const relay = fastestRelay(transports);
  if (result.best !== null && relay !== undefined) {
    const relayClient = relay.client as KafkaClientName;
    const rate = Math.max(1, Math.round(result.best.events_per_s / 2));
    say(
      `${model}: relay latency with no model (${relayClient}, the fastest relay; paced at ${rate}/s, the best serve point's paced rate)`,
    );
    const relayPaced = await attempt(() =>
      paced(
        clients,
        workload,
        `${model}-transport-paced`,
        rate,
        plan.pacedWarmupSeconds,
        plan.pacedMeasureSeconds,
        (t) => startRelay(endpoints, t, workload, relayClient),
      ),
    );
    say(`  ${describePaced(relayPaced)}`);
    result.details.transport_paced = relayPaced;
    say(`${model}: one Kafka hop (load generator -> requests topic -> consumer, paced at ${rate}/s)`);
    const hop = await attempt(() =>
      paced(
        clients,
        workload,
        `${model}-hop`,
        rate,
        plan.pacedWarmupSeconds,
        plan.pacedMeasureSeconds,
        undefined,
      ),
    );
    say(`  ${describePaced(hop)}`);
    result.details.hop_paced = hop;
  }

  if (result.best !== null && plan.clients.length > 0) {
    const settings = {
      batchMaxRows: result.best.batch,
      lingerMs: result.best.linger_ms,
      threads: result.best.threads,
    };
    const rate = Math.max(1, Math.round(result.best.events_per_s / 2));
    say(
      `${model}: serve on each Kafka client (${plan.clients.join(', ')}) at batch ${settings.batchMaxRows}, linger ${settings.lingerMs} ms: drains alternated, best of ${repeats}, then paced at ${rate}/s`,
    );
    result.details.clients = {
      batch: settings.batchMaxRows,
      linger_ms: settings.lingerMs,
      threads: settings.threads,
      paced_rate: rate,
      runs: await compareClients(clients, workload, plan, settings, rate, say),
    };
  }

  if (result.best !== null) {
    const settings = {
      batchMaxRows: result.best.batch,
      lingerMs: result.best.linger_ms,
      threads: result.best.threads,
    };
    say(
      `${model}: backfill vs serve drain at batch ${settings.batchMaxRows}, linger ${settings.lingerMs} ms (${counts.drainEvents} events, alternated, best of ${repeats})`,
    );
    const runs = await alternated(repeats, ['serve', 'backfill'] as const, (kind) =>
      drain(
        clients,
        workload,
        `${model}-${kind}-drain`,
        counts.drainEvents,
        (t) =>
          kind === 'serve'
            ? startServe(endpoints, t, workload, settings)
            : startBackfill(endpoints, t, workload, settings),
        plan.drainTimeoutMs,
      ),
    );
    const { serve: serveBest, backfill: backfillBest } = runs;
    const ratio =
      'error' in serveBest || 'error' in backfillBest
        ? null
        : Math.round((backfillBest.events_per_s / serveBest.events_per_s) * 100) / 100;
    say(
      `  serve ${describeDrain(serveBest)}; backfill ${describeDrain(backfillBest)}; ratio ${ratio ?? '-'}`,
    );
    result.details.backfill = {
      batch: settings.batchMaxRows,
      linger_ms: settings.lingerMs,
      threads: settings.threads,
      serve: serveBest,
      backfill: backfillBest,
      ratio,
    };
  }

  if (plan.profile && result.best !== null) {
    const settings = {
      batchMaxRows: result.best.batch,
      lingerMs: result.best.linger_ms,
      threads: result.best.threads,
    };
    const name = `serve-${model}-b${settings.batchMaxRows}-l${settings.lingerMs}-t${settings.threads}.cpuprofile`;
    const dir = join('bench', 'results');
    say(
      `${model}: profiled drain (node --cpu-prof) at batch ${settings.batchMaxRows}, linger ${settings.lingerMs} ms`,
    );
    result.details.profile = await attempt(async () => {
      await mkdir(dir, { recursive: true });
      await drain(
        clients,
        workload,
        `${model}-profile`,
        counts.drainEvents,
        (t) => startServe(endpoints, t, workload, settings, { dir, name }),
        plan.drainTimeoutMs,
      );
      return summarizeProfile(join(dir, name));
    });
  }
  addLaterTargets(result);
  return result;
}

/**
 * Drains `repeats` times and keeps the fastest. Ceilings, baseline and serve all get the same
 * number of tries, so noise from other work on the machine cannot favour one side of a ratio.
 */
async function bestOf(repeats: number, work: () => Promise<DrainResult>): Promise<BestDrain | Failed> {
  const runs: DrainResult[] = [];
  let failure: Failed | undefined;
  for (let i = 0; i < repeats; i += 1) {
    const outcome = await attempt(work);
    if ('error' in outcome) failure = outcome;
    else runs.push(outcome);
  }
  return bestRun(runs, failure);
}

/**
 * Drains each kind `repeats` times, taking the kinds in turn (a, b, a, b), and keeps each kind's
 * fastest: a slow spell of the machine then falls on every kind alike.
 */
async function alternated<K extends string>(
  repeats: number,
  kinds: readonly K[],
  work: (kind: K) => Promise<DrainResult>,
): Promise<Record<K, BestDrain | Failed>> {
  const runs = new Map<K, DrainResult[]>(kinds.map((kind) => [kind, []]));
  const failures = new Map<K, Failed>();
  for (let i = 0; i < repeats; i += 1) {
    for (const kind of kinds) {
      const outcome = await attempt(() => work(kind));
      if ('error' in outcome) failures.set(kind, outcome);
      else runs.get(kind)!.push(outcome);
    }
  }
  return Object.fromEntries(
    kinds.map((kind) => [kind, bestRun(runs.get(kind)!, failures.get(kind))]),
  ) as Record<K, BestDrain | Failed>;
}

function bestRun(runs: DrainResult[], failure: Failed | undefined): BestDrain | Failed {
  if (runs.length === 0) return failure ?? { error: 'no run' };
  const best = runs.reduce((a, b) => (b.events_per_s > a.events_per_s ? b : a));
  return { ...best, repeats_events_per_s: runs.map((run) => run.events_per_s) };
}

interface ServeVariant {
  name: string;
  client: KafkaClientName | undefined;
  env: Record<string, string>;
  script?: string;
}

/** Each client of --clients; platformatic also with its producer on the main thread; --reference. */
function serveVariants(plan: Plan): ServeVariant[] {
  const variants: ServeVariant[] = [];
  for (const client of plan.clients) {
    variants.push({ name: client, client, env: kafkaClientEnv(client) });
    if (client === 'platformatic') {
      variants.push({
        name: 'platformatic, main-thread producer',
        client,
        env: { ...kafkaClientEnv(client), STREAMSCORE_PRODUCER_THREAD: 'false' },
      });
    }
  }
  if (plan.reference !== undefined) {
    variants.push({
      name: `reference ${plan.reference}`,
      client: undefined,
      env: {},
      script: join(plan.reference, 'dist', 'src', 'cli.js'),
    });
  }
  return variants;
}

/**
 * serve at one setting on each client of --clients (STREAMSCORE_KAFKA_CLIENT): drains alternated,
 * then each paced at the same rate, so the clients' latencies compare at one load.
 */
async function compareClients(
  clients: BenchClients,
  workload: Workload,
  plan: Plan,
  settings: ServeSettings,
  rate: number,
  say: (line: string) => void,
): Promise<ClientRun[]> {
  const { endpoints } = clients;
  const counts = plan.perModel[workload.model] ?? plan.perModel.heavy!;
  const variants = serveVariants(plan);
  const runnable = variants
    .filter((variant) => variant.client === undefined || serveClientProblem(variant.client) === undefined)
    .map((variant) => variant.name);
  const start = (name: string) => (topics: CaseTopics) => {
    const variant = variants.find((each) => each.name === name)!;
    return startServe(endpoints, topics, workload, settings, undefined, variant.env, variant.script);
  };
  const drains = await alternated(plan.drainRepeats, runnable, (client) =>
    drain(
      clients,
      workload,
      `${workload.model}-serve-${client.replace(/[^a-z0-9]+/gi, '-')}`,
      counts.drainEvents,
      start(client),
      plan.drainTimeoutMs,
    ),
  );
  const runs: ClientRun[] = [];
  for (const { name: client, client: kafkaClient } of variants) {
    const problem = kafkaClient === undefined ? undefined : serveClientProblem(kafkaClient);
    if (problem !== undefined) {
      say(`  ${client}: skipped: ${problem}`);
      runs.push({ client, drain: { error: `skipped: ${problem}` }, paced: undefined });
      continue;
    }
    const drained = drains[client] ?? { error: 'not run' };
    say(`  ${client} drain: ${describeDrain(drained)}`);
    const pacedResult =
      'error' in drained
        ? undefined
        : await attempt(() =>
            paced(
              clients,
              workload,
              `${workload.model}-serve-${client.replace(/[^a-z0-9]+/gi, '-')}-paced`,
              rate,
              plan.pacedWarmupSeconds,
              plan.pacedMeasureSeconds,
              start(client),
            ),
          );
    if (pacedResult !== undefined) say(`  ${client} paced: ${describePaced(pacedResult)}`);
    runs.push({ client, drain: drained, paced: pacedResult });
  }
  return runs;
}

function describeDrain(result: DrainResult | Failed): string {
  if ('error' in result) return `failed: ${firstLine(result.error)}`;
  const batch = result.serve?.avg_batch_rows;
  return (
    `${result.events_per_s} events/s (${result.seconds} s; steady ${result.first_to_last_events_per_s}/s)` +
    (batch !== undefined ? `, avg batch ${batch} rows` : '') +
    (result.rss_mb !== undefined ? `, peak RSS ${result.rss_mb} MB` : '')
  );
}

function describeJava(result: JavaReference | Failed): string {
  if ('error' in result) return `failed: ${firstLine(result.error)}`;
  const producer =
    'error' in result.producer
      ? `producer failed: ${firstLine(result.producer.error)}`
      : `producer ${result.producer.records_per_s} records/s (${result.producer.cores} cores)`;
  const consumer =
    'error' in result.consumer
      ? `consumer failed: ${firstLine(result.consumer.error)}`
      : `consumer ${result.consumer.records_per_s} records/s (${result.consumer.cores} cores)`;
  return `${producer}; ${consumer}`;
}

function describePaced(result: PacedResult | Failed): string {
  if ('error' in result) return `failed: ${firstLine(result.error)}`;
  return `p50 ${result.p50_ms} ms, p95 ${result.p95_ms} ms, p99 ${result.p99_ms} ms over ${result.measured} events`;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}
