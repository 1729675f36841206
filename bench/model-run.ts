/**
 * Everything measured for one model, in the order that lets each step use the one before: the
 * model ceiling picks the thread count serve gets, each grid point's drain sets its paced rate.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { drain, paced, type DrainResult, type PacedResult } from './cases.js';
import type { BenchClients } from './kafka.js';
import { THREAD_COUNTS, measureModelCeiling } from './model-ceiling.js';
import type { GridPoint, Plan } from './plan.js';
import { summarizeProfile } from './profile.js';
import {
  fastestPoint,
  summarize,
  type BestDrain,
  type Failed,
  type GridResult,
  type ModelResult,
} from './summary.js';
import { startBackfill, startRelay, startServe } from './targets.js';
import { loadWorkload } from './workload.js';

export async function runModel(
  clients: BenchClients,
  plan: Plan,
  model: string,
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
  say(`${model}: transport ceiling (relay, ${counts.drainEvents} events, best of ${repeats})`);
  const transport = await bestOf(repeats, () =>
    drain(
      clients,
      workload,
      `${model}-transport`,
      counts.drainEvents,
      (t) => startRelay(endpoints, t, workload),
      plan.drainTimeoutMs,
    ),
  );
  say(`  ${describeDrain(transport)}`);

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

  const result = summarize(model, workload.version, ceiling, transport, baseline, grid);

  if (result.best !== null) {
    const rate = Math.max(1, Math.round(result.best.events_per_s / 2));
    say(`${model}: relay latency with no model (paced at ${rate}/s, the best serve point's paced rate)`);
    const relayPaced = await attempt(() =>
      paced(
        clients,
        workload,
        `${model}-transport-paced`,
        rate,
        plan.pacedWarmupSeconds,
        plan.pacedMeasureSeconds,
        (t) => startRelay(endpoints, t, workload),
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

  if (result.best !== null) {
    const settings = {
      batchMaxRows: result.best.batch,
      lingerMs: result.best.linger_ms,
      threads: result.best.threads,
    };
    say(
      `${model}: backfill vs serve drain at batch ${settings.batchMaxRows}, linger ${settings.lingerMs} ms (${counts.drainEvents} events, alternated, best of ${repeats})`,
    );
    const runs: { serve: DrainResult[]; backfill: DrainResult[] } = { serve: [], backfill: [] };
    const failures: { serve?: Failed; backfill?: Failed } = {};
    for (let i = 0; i < repeats; i += 1) {
      for (const kind of ['serve', 'backfill'] as const) {
        const outcome = await attempt(() =>
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
        if ('error' in outcome) failures[kind] = outcome;
        else runs[kind].push(outcome);
      }
    }
    const best = (kind: 'serve' | 'backfill'): BestDrain | Failed =>
      runs[kind].length === 0
        ? failures[kind]!
        : {
            ...runs[kind].reduce((a, b) => (b.events_per_s > a.events_per_s ? b : a)),
            repeats_events_per_s: runs[kind].map((run) => run.events_per_s),
          };
    const serveBest = best('serve');
    const backfillBest = best('backfill');
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
  return result;
}

/** A failed case is reported, not fatal: the other cases of the run still mean something. */
async function attempt<T>(work: () => Promise<T>): Promise<T | Failed> {
  try {
    return await work();
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
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
  if (runs.length === 0) return failure!;
  const best = runs.reduce((a, b) => (b.events_per_s > a.events_per_s ? b : a));
  return { ...best, repeats_events_per_s: runs.map((run) => run.events_per_s) };
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

function describePaced(result: PacedResult | Failed): string {
  if ('error' in result) return `failed: ${firstLine(result.error)}`;
  return `p50 ${result.p50_ms} ms, p95 ${result.p95_ms} ms, p99 ${result.p99_ms} ms over ${result.measured} events`;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}
