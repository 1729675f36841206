/**
 * The two kinds of measurement, each on fresh topics that it deletes afterwards:
 *
 * - drain: the requests topic is pre-filled with N events before the process under test starts.
 *   Throughput = N / (arrival of the N-th output at a consumer - the process's group join). The
 *   join (its own log line's timestamp) is when consumption can begin, so model loading and
 *   connecting are left out, while the first fetch and the ramp-up are in.
 * - paced: the process runs first, then events are written at a steady rate. Latency of an event
 *   = arrival of its output at a consumer - its event_time, which is the moment it was due to be
 *   sent (see prepareSchedule).
 */
import { sleep, type ChildUnderTest } from './child.js';
import { cpuBetween, cpuMicrosPerEvent, cpuSnapshot, type CpuUse } from './cpu.js';
import { ArrivalRecorder, type Arrival } from './arrivals.js';
import {
  connectProducer,
  createCaseTopics,
  registerFeatureSchema,
  removeCaseTopics,
  type BenchClients,
  type CaseTopics,
} from './kafka.js';
import { pace, prefill, prepareSchedule } from './load.js';
import { histogramByLabel, metricSum, percentile, round } from './stats.js';
import type { Workload } from './workload.js';

export type Start = (topics: CaseTopics) => ChildUnderTest;

/** What serve's own /metrics said at the end of a case. */
export interface ServeView {
  avg_batch_rows: number | undefined;
  inference_s: number | undefined;
  backpressure_s: number | undefined;
  dead_letters: number | undefined;
  /** streamscore_stage_seconds per stage: observations, mean ms, and the bucket bound of its p99. */
  stages?: Record<string, { count: number; mean_ms: number; p99_le_ms: number }>;
}

export interface DrainResult {
  events: number;
  events_per_s: number;
  /** (N - 1) / (last arrival - first arrival): the steady rate, without the first fetch. */
  first_to_last_events_per_s: number;
  seconds: number;
  /** Group join to the first output's arrival, ms. */
  first_output_ms: number;
  fill_events_per_s: number;
  rss_mb: number | undefined;
  duplicates: number;
  /** From the join to the N-th arrival. */
  cpu: CpuUse;
  /** The process's CPU per event over the drain, µs: cpu.process_cores / events_per_s * 1e6. */
  cpu_us_per_event: number | null;
  serve: ServeView | undefined;
}

export interface PacedResult {
  rate: number;
  sent: number;
  /** Events after the warm-up, the ones the percentiles are over. */
  measured: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
  /**
   * The same events' latency from the moment their send was issued rather than from their
   * event_time: the difference is the load generator falling behind its schedule.
   */
  from_send: { p50_ms: number; p95_ms: number; p99_ms: number };
  producer_max_lag_ms: number;
  /** The bench process's event-loop delay while sending (see PaceResult.loopDelay). */
  bench_loop_delay_ms: { max_ms: number; p99_ms: number };
  rss_mb: number | undefined;
  /** While the events were being sent. */
  cpu: CpuUse;
  /** The measured process's CPU per event while they were sent, µs: cpu.process_cores / rate * 1e6. */
  cpu_us_per_event: number | null;
  serve: ServeView | undefined;
}

/** How long a process may take from spawn to joining its group (model load included). */
const JOIN_TIMEOUT_MS = 60_000;
/** After the last paced event was sent, how long its output may take to arrive. */
const PACED_DRAIN_TIMEOUT_MS = 60_000;

export async function drain(
  clients: BenchClients,
  workload: Workload,
  label: string,
  count: number,
  start: Start,
  timeoutMs: number,
): Promise<DrainResult> {
  const topics = await createCaseTopics(clients.kafka, label);
  const recorder = new ArrivalRecorder(clients.endpoints.brokers.split(','));
  let child: ChildUnderTest | undefined;
  let stage = 'pre-fill';
  try {
    const schemaId = await registerFeatureSchema(clients, topics.requests);
    const producer = await connectProducer(clients.kafka);
    let fill;
    try {
      const generator = workload.generator(1, topics.requests);
      fill = await prefill(producer, clients.registry, schemaId, topics.requests, generator, count);
    } finally {
      await producer.disconnect();
    }
    stage = 'start';
    await recorder.start(topics.predictions);
    const running = start(topics);
    child = running;
    const joinedAt = await running.joined(JOIN_TIMEOUT_MS);
    const cpuFrom = await cpuSnapshot(running.child.pid);
    stage = 'drain';
    const complete = await recorder.waitFor(count, timeoutMs, () => !running.running);
    const cpu = cpuBetween(cpuFrom, await cpuSnapshot(running.child.pid));
    const rss = await running.peakRssMb();
    const serve = await serveView(running);
    if (!complete) {
      throw new Error(
        `${recorder.count} of ${count} outputs arrived within ${timeoutMs} ms ` +
          `(process ${running.running ? 'still running' : 'exited'}):\n${running.output()}`,
      );
    }
    const arrivals = (await recorder.arrivals()).slice(0, count);
    const first = arrivals[0]!.at;
    const last = arrivals[count - 1]!.at;
    const seconds = Math.max(1, last - joinedAt) / 1_000;
    const ids = new Set(await decodeAll(clients, arrivals, (record) => String(record.request_id)));
    const eventsPerSecond = Math.round(count / seconds);
    return {
      events: count,
      events_per_s: eventsPerSecond,
      first_to_last_events_per_s: Math.round((count - 1) / (Math.max(1, last - first) / 1_000)),
      seconds: round(seconds, 2),
      first_output_ms: first - joinedAt,
      fill_events_per_s: Math.round(fill.count / fill.seconds),
      rss_mb: rss === undefined ? undefined : round(rss, 1),
      duplicates: count - ids.size,
      cpu,
      cpu_us_per_event: cpuMicrosPerEvent(cpu, eventsPerSecond),
      serve,
    };
  } catch (error) {
    throw inStage(label, stage, error);
  } finally {
    await finish(clients, topics, recorder, child);
  }
}

/**
 * A paced run. With `start`, the process it starts is timed from event_time to its output's
 * arrival. Without, the arrivals are the requests themselves: one Kafka hop (load generator ->
 * broker -> consumer) at the same rate, with the same clients, which is the floor under the two
 * hops every prediction makes. The CPU reported is then the bench process's own (load generator
 * and arrival consumer).
 */
export async function paced(
  clients: BenchClients,
  workload: Workload,
  label: string,
  rate: number,
  warmupSeconds: number,
  measureSeconds: number,
  start: Start | undefined,
): Promise<PacedResult> {
  const topics = await createCaseTopics(clients.kafka, label);
  const recorder = new ArrivalRecorder(clients.endpoints.brokers.split(','));
  let child: ChildUnderTest | undefined;
  let stage = 'start';
  try {
    const schemaId = await registerFeatureSchema(clients, topics.requests);
    await recorder.start(start === undefined ? topics.requests : topics.predictions);
    const running = start?.(topics);
    child = running;
    await running?.joined(JOIN_TIMEOUT_MS);
    const measuredPid = running === undefined ? process.pid : running.child.pid;
    stage = 'paced load';
    const generator = workload.generator(2, topics.requests);
    const total = warmupSeconds + measureSeconds;
    const schedule = await prepareSchedule(clients.registry, schemaId, generator, rate, total);
    const producer = await connectProducer(clients.kafka);
    let load;
    let cpu;
    try {
      await sleep(Math.max(0, schedule.startsAt - Date.now()));
      const cpuFrom = await cpuSnapshot(measuredPid);
      load = await pace(producer, topics.requests, schedule);
      cpu = cpuBetween(cpuFrom, await cpuSnapshot(measuredPid));
    } finally {
      await producer.disconnect();
    }
    stage = 'drain';
    const waitFrom = performance.now();
    const complete = await recorder.waitFor(
      load.sent,
      PACED_DRAIN_TIMEOUT_MS,
      () => running?.running === false,
    );
    const rss = await running?.peakRssMb();
    const serve = running === undefined ? undefined : await serveView(running);
    if (!complete) {
      const state = running === undefined ? '' : `; process ${running.running ? 'running' : 'exited'}`;
      throw new Error(
        `${recorder.count} of ${load.sent} outputs arrived (sent over ${round(load.seconds, 1)} s, ` +
          `then waited ${Math.round(performance.now() - waitFrom)} ms${state})` +
          (running === undefined ? '' : `:\n${running.output()}`),
      );
    }
    const measureFrom = load.startedAt + warmupSeconds * 1_000;
    const index = new Map(schedule.ids.map((id, i) => [id, i]));
    const latencies: number[] = [];
    const fromSend: number[] = [];
    const timed = await decodeAll(clients, await recorder.arrivals(), (record, arrival) => ({
      eventTime: epochMs(record.event_time),
      sentAt: load.sentAt[index.get(String(record.request_id)) ?? -1],
      at: arrival.at,
    }));
    for (const { eventTime, sentAt, at } of timed) {
      if (eventTime < measureFrom) continue;
      latencies.push(at - eventTime);
      if (sentAt !== undefined) fromSend.push(at - sentAt);
    }
    latencies.sort((a, b) => a - b);
    fromSend.sort((a, b) => a - b);
    return {
      rate,
      sent: load.sent,
      measured: latencies.length,
      p50_ms: percentile(latencies, 50),
      p95_ms: percentile(latencies, 95),
      p99_ms: percentile(latencies, 99),
      max_ms: latencies[latencies.length - 1] ?? Number.NaN,
      from_send: {
        p50_ms: percentile(fromSend, 50),
        p95_ms: percentile(fromSend, 95),
        p99_ms: percentile(fromSend, 99),
      },
      producer_max_lag_ms: round(load.maxLagMs, 1),
      bench_loop_delay_ms: load.loopDelay,
      rss_mb: rss === undefined ? undefined : round(rss, 1),
      cpu,
      cpu_us_per_event: cpuMicrosPerEvent(cpu, load.sent / load.seconds),
      serve,
    };
  } catch (error) {
    throw inStage(label, stage, error);
  } finally {
    await finish(clients, topics, recorder, child);
  }
}

/** Names the case and the step that failed; the cause keeps the original stack. */
function inStage(label: string, stage: string, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`${label} (${stage}): ${message}`, { cause: error });
}

async function finish(
  clients: BenchClients,
  topics: CaseTopics,
  recorder: ArrivalRecorder,
  child: ChildUnderTest | undefined,
): Promise<void> {
  if (child !== undefined) {
    const exit = await child.stop();
    if (exit.code !== 0 && exit.signal === null) {
      process.stderr.write(`[bench] ${child.describe()} exited with ${exit.code}:\n${child.output()}\n`);
    }
  }
  await recorder.stop();
  await removeCaseTopics(clients.kafka, topics, [recorder.group]);
}

async function serveView(child: ChildUnderTest): Promise<ServeView | undefined> {
  const text = await child.metrics().catch(() => undefined);
  if (text === undefined) return undefined;
  const rowsSum = metricSum(text, 'streamscore_batch_rows_sum');
  const rowsCount = metricSum(text, 'streamscore_batch_rows_count');
  const inference = metricSum(text, 'streamscore_inference_seconds_sum');
  const backpressure = metricSum(text, 'streamscore_backpressure_seconds_total');
  return {
    avg_batch_rows: rowsSum !== undefined && rowsCount ? round(rowsSum / rowsCount, 1) : undefined,
    inference_s: inference === undefined ? undefined : round(inference, 2),
    backpressure_s: backpressure === undefined ? undefined : round(backpressure, 2),
    dead_letters: metricSum(text, 'streamscore_dead_letters_total') ?? 0,
    stages: Object.fromEntries(
      Object.entries(histogramByLabel(text, 'streamscore_stage_seconds', 'stage', 0.99)).map(
        ([stage, { count, mean, quantile_le }]) => [
          stage,
          { count, mean_ms: round(mean * 1_000, 1), p99_le_ms: quantile_le * 1_000 },
        ],
      ),
    ),
  };
}

type Decoded = Record<string, unknown>;

/** Decodes output records through the registry (after the measurement, so it costs nothing there). */
async function decodeAll<T>(
  clients: BenchClients,
  arrivals: readonly Arrival[],
  pick: (record: Decoded, arrival: Arrival) => T,
): Promise<T[]> {
  const picked: T[] = [];
  for (const arrival of arrivals) {
    if (arrival.value === null) throw new Error('an output record has no value');
    picked.push(pick((await clients.registry.decode(arrival.value)) as Decoded, arrival));
  }
  return picked;
}

/** Avro timestamp-millis may come back as a number, a bigint or a Date, by decoder settings. */
function epochMs(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  return Number(value);
}
