/**
 * One run of a scale scenario (bench/scale.ts): serve replicas in one consumer group on fresh
 * topics, a paced load from before the first scale event to a phase after the last, a replica added
 * or stopped with SIGTERM at fixed moments while it runs, and every prediction's arrival stamped by
 * a consumer of the predictions topic. The arrivals are then accounted per window
 * (scale-accounting.ts): a steady window before the first event, and one window per event.
 */
import { javaKeyHash } from '../src/kafka/platformatic-producer.js';
import { ArrivalRecorder } from './arrivals.js';
import { sleep, type ChildUnderTest } from './child.js';
import { cpuBetween, cpuSnapshot } from './cpu.js';
import {
  PARTITIONS,
  connectProducer,
  createCaseTopics,
  registerFeatureSchema,
  removeCaseTopics,
  type BenchClients,
} from './kafka.js';
import { dueAt, pace, prepareSchedule, type PackedMessages, type PaceResult } from './load.js';
import {
  latencyIn,
  longestGap,
  repeatsIn,
  tally,
  type Delivery,
  type Tally,
  type Window,
} from './scale-accounting.js';
import { round } from './stats.js';
import { startServe, type ServeSettings } from './targets.js';
import type { Workload } from './workload.js';

export type ScaleAction = 'add' | 'remove';

export interface Scenario {
  name: string;
  /** Replicas running, their group settled, before the load starts. */
  initial: number;
  /** One action per scale event, in order, a phase apart. */
  actions: ScaleAction[];
}

export const SCENARIOS: readonly Scenario[] = [
  { name: 'scale-up', initial: 1, actions: ['add', 'add'] },
  { name: 'scale-down', initial: 3, actions: ['remove', 'remove'] },
];

export interface ScaleSettings {
  /** Events per second, constant over the whole run. */
  rate: number;
  /** Load before the steady window, in no number. */
  warmupSeconds: number;
  /** The length of every window, and the time between events. */
  phaseSeconds: number;
  serve: ServeSettings;
  /** serve's extra environment: its Kafka client and delivery guarantee. */
  env: Record<string, string>;
}

/**
 * A window starts this long before its event: records a replica holds at the moment of the event
 * were sent up to a batch and a fetch earlier, and what happens to them is the event's doing.
 */
export const LEAD_MS = 1_000;
/**
 * An added replica's window runs on to at least this long after its first join, however late that
 * join came (a busy machine can take seconds to start a process and load a model): the partitions
 * it takes over are read from their committed offsets, and their backlog drains, after the join.
 */
export const AFTER_JOIN_MS = 5_000;

export interface WindowResult {
  /** Replicas in the group at the window's start. */
  replicas: number;
  /** Longest time any requests partition had a request waiting and no new prediction (see longestGap). */
  longest_gap_ms: number | null;
  gap_partition: number | null;
  /** When that gap began, ms after the event (negative: before it). */
  gap_began_ms: number | null;
  /** Events due in the window, predicted; those never predicted are `missing`. */
  events: number;
  missing: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** p99 from each event's send rather than its event_time: the load generator's lag left out. */
  p99_from_send_ms: number;
  /** Repeated predictions that arrived in the window. */
  repeats: number;
}

export interface EventResult extends WindowResult {
  action: ScaleAction;
  /** Seconds after the load's first event. */
  at_s: number;
  /** The window's length: the phase, or longer for an add whose replica joined late. */
  window_s: number;
  /**
   * add: the new replica's first `joined consumer group` line (its start, model load and join);
   * remove: the stopped replica's exit; ms after the event.
   */
  replica_done_ms: number | null;
  /** The last `joined consumer group` line of any replica in the window, ms after the event. */
  last_join_ms: number | null;
}

export interface RunResult {
  scenario: string;
  sent: number;
  /** Events never predicted. */
  missing: number;
  /** Predictions beyond each event's first, over the whole run. */
  repeats: number;
  steady: WindowResult;
  events: EventResult[];
  producer_max_lag_ms: number;
  bench_loop_delay_ms: PaceResult['loopDelay'];
  /** Cores busy on the whole machine while the load ran (of os.availableParallelism()). */
  machine_busy_cores: number;
  /** Distinct warn-or-worse log messages of the replicas. */
  warnings: string[];
}

/** How long a replica may take from spawn to its first join (model load included). */
const JOIN_TIMEOUT_MS = 60_000;
/** How long the initial replicas' group may take to settle on one assignment. */
const SETTLE_TIMEOUT_MS = 60_000;
/** After the last event was sent, how long its prediction may take to arrive. */
const DRAIN_TIMEOUT_MS = 60_000;
/** After every event has a prediction, how long late repeats are waited for. */
const TAIL_MS = 1_500;
const MAX_WARNINGS = 12;

interface Performed {
  action: ScaleAction;
  at: number;
  child: ChildUnderTest;
  /** add: the new replica's first join. */
  joinedAt?: number;
  exitedAt?: number;
}

export async function runScenario(
  clients: BenchClients,
  workload: Workload,
  scenario: Scenario,
  settings: ScaleSettings,
): Promise<RunResult> {
  const topics = await createCaseTopics(clients.kafka, scenario.name).catch((error: unknown) => {
    throw new Error(`${scenario.name} (topics): ${messageOf(error)}`, { cause: error });
  });
  const recorder = new ArrivalRecorder(clients.endpoints.brokers.split(','));
  const replicas: ChildUnderTest[] = [];
  const stops: Promise<unknown>[] = [];
  const start = () => {
    const child = startServe(clients.endpoints, topics, workload, settings.serve, undefined, settings.env);
    replicas.push(child);
    return child;
  };
  let stage = 'start';
  try {
    const schemaId = await registerFeatureSchema(clients, topics.requests);
    await recorder.start(topics.predictions);
    for (let i = 0; i < scenario.initial; i += 1) start();
    await Promise.all(replicas.map((replica) => replica.joined(JOIN_TIMEOUT_MS)));
    await settled(replicas, topics.requests);

    stage = 'paced load';
    const { warmupSeconds, phaseSeconds, rate } = settings;
    // One phase more than the windows need: room for events put off by a late join.
    const seconds = warmupSeconds + phaseSeconds * (scenario.actions.length + 2);
    const phaseMs = phaseSeconds * 1_000;
    const schedule = await prepareSchedule(
      clients.registry,
      schemaId,
      workload.generator(3, topics.requests),
      rate,
      seconds,
    );
    const partitionOf = partitionsOf(schedule.messages);
    const loadEnd = dueAt(schedule.startsAt, rate, schedule.messages.length - 1) + 1;
    const planned = scenario.actions.map(
      (_, k) => schedule.startsAt + warmupSeconds * 1_000 + phaseMs * (k + 1),
    );
    // Where an event's window ends: a phase after it starts, or for an add, once the replica has
    // been in the group for AFTER_JOIN_MS; never past the load.
    const windowEnd = (event: Performed) =>
      Math.min(
        loadEnd,
        Math.max(event.at - LEAD_MS + phaseMs, (event.joinedAt ?? -Infinity) + AFTER_JOIN_MS),
      );
    const live = [...replicas];
    const performed: Performed[] = [];
    const scale = async () => {
      for (const [k, action] of scenario.actions.entries()) {
        const previous = performed.at(-1);
        if (previous?.action === 'add') previous.joinedAt = await previous.child.joined(JOIN_TIMEOUT_MS);
        // Windows do not overlap: the next event waits for the previous window's end.
        const next = Math.max(planned[k]!, previous === undefined ? 0 : windowEnd(previous) + LEAD_MS);
        await sleep(Math.max(0, next - Date.now()));
        if (action === 'add') {
          const child = start();
          live.push(child);
          performed.push({ action, at: Date.now(), child });
        } else {
          const child = live.pop()!;
          const event: Performed = { action, at: Date.now(), child };
          performed.push(event);
          stops.push(child.stop().then(() => (event.exitedAt = Date.now())));
        }
      }
    };
    const producer = await connectProducer(clients.kafka);
    let load: PaceResult;
    let busy: number;
    try {
      const cpuFrom = await cpuSnapshot(undefined);
      const [paced, scaled] = await Promise.allSettled([pace(producer, topics.requests, schedule), scale()]);
      if (paced.status === 'rejected') throw paced.reason;
      if (scaled.status === 'rejected') throw scaled.reason;
      load = paced.value;
      busy = cpuBetween(cpuFrom, await cpuSnapshot(undefined)).machine_busy_cores;
    } finally {
      await producer.disconnect();
    }

    stage = 'drain';
    const running = () => live.some((child) => child.running);
    const complete = await recorder.waitFor(load.sent, DRAIN_TIMEOUT_MS, () => !running());
    const dead = live.filter((child) => !child.running);
    if (dead.length > 0 || !complete) {
      throw new Error(
        `${recorder.count} of ${load.sent} predictions arrived; ${dead.length} replica(s) exited:\n` +
          (dead[0] ?? live[0])?.output(),
      );
    }
    await sleep(TAIL_MS);
    const arrivals = await recorder.arrivals();

    stage = 'accounting';
    const index = new Map<string, number>();
    schedule.ids.forEach((id, i) => index.set(id, i));
    const deliveries: Delivery[] = [];
    for (const arrival of arrivals) {
      if (arrival.value === null) throw new Error('a prediction has no value');
      const record = (await clients.registry.decode(arrival.value)) as { request_id?: unknown };
      const event = index.get(String(record.request_id));
      if (event === undefined)
        throw new Error(`a prediction for unknown request ${String(record.request_id)}`);
      deliveries.push({ event, at: arrival.at });
    }
    const counted = tally(deliveries, load.sent);
    const eventTime = Float64Array.from({ length: load.sent }, (_, i) => dueAt(schedule.startsAt, rate, i));
    const measure = (window: Window, replicasThen: number, anchor: number): WindowResult =>
      windowResult(counted, partitionOf, eventTime, load.sentAt, window, replicasThen, anchor);
    const steadyAt = planned[0]! - phaseMs;
    const joins = replicas.flatMap((child) => joinLines(child, topics.requests)).map((join) => join.time);
    let count = scenario.initial;
    const events = performed.map((event): EventResult => {
      const before = count;
      count += event.action === 'add' ? 1 : -1;
      event.joinedAt ??= joinLines(event.child, topics.requests)[0]?.time;
      const window = { from: event.at - LEAD_MS, to: windowEnd(event) };
      const inWindow = joins.filter((time) => time >= event.at && time < window.to);
      const done = event.action === 'add' ? event.joinedAt : event.exitedAt;
      return {
        action: event.action,
        at_s: round((event.at - schedule.startsAt) / 1_000, 2),
        window_s: round((window.to - window.from) / 1_000, 2),
        ...measure(window, before, event.at),
        replica_done_ms: done === undefined ? null : done - event.at,
        last_join_ms: inWindow.length === 0 ? null : Math.max(...inWindow) - event.at,
      };
    });
    return {
      scenario: scenario.name,
      sent: load.sent,
      missing: counted.missing,
      repeats: counted.repeats.length,
      steady: measure(
        { from: steadyAt - LEAD_MS, to: steadyAt - LEAD_MS + phaseMs },
        scenario.initial,
        steadyAt,
      ),
      events,
      producer_max_lag_ms: round(load.maxLagMs, 1),
      bench_loop_delay_ms: load.loopDelay,
      machine_busy_cores: busy,
      warnings: warnings(replicas),
    };
  } catch (error) {
    throw new Error(`${scenario.name} (${stage}): ${messageOf(error)}`, { cause: error });
  } finally {
    await Promise.all([...stops, ...replicas.map((child) => child.stop())]);
    await recorder.stop();
    // A busy broker can refuse a delete of topics it has just created; the measurement stands,
    // and the names say which topics to look for.
    await removeCaseTopics(clients.kafka, topics, [recorder.group]).catch((error: unknown) =>
      process.stderr.write(
        `[bench:scale] ${scenario.name}: removing ${topics.requests} and its siblings failed: ${messageOf(error)}\n`,
      ),
    );
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function windowResult(
  counted: Tally,
  partitionOf: Uint8Array,
  eventTime: Float64Array,
  sentAt: Float64Array,
  window: Window,
  replicas: number,
  anchor: number,
): WindowResult {
  const gap = longestGap(counted.first, sentAt, partitionOf, PARTITIONS, window);
  const latency = latencyIn(counted.first, eventTime, eventTime, window);
  const fromSend = latencyIn(counted.first, sentAt, eventTime, window);
  return {
    replicas,
    longest_gap_ms: gap === undefined ? null : Math.round(gap.ms),
    gap_partition: gap?.partition ?? null,
    gap_began_ms: gap === undefined ? null : Math.round(gap.from - anchor),
    events: latency.events,
    missing: latency.missing,
    p50_ms: latency.p50_ms,
    p99_ms: latency.p99_ms,
    max_ms: latency.max_ms,
    p99_from_send_ms: fromSend.p99_ms,
    repeats: repeatsIn(counted.repeats, window),
  };
}

/**
 * The requests partition of every scheduled event: its key hashed as the Java client's partitioner
 * does (the load generator's kafkajs DefaultPartitioner is the same murmur2).
 */
function partitionsOf(messages: PackedMessages): Uint8Array {
  const partitions = new Uint8Array(messages.length);
  const byKey = new Map<string, number>();
  const chunk = 10_000;
  for (let from = 0; from < messages.length; from += chunk) {
    messages.slice(from, from + chunk).forEach((message, i) => {
      const key = message.key as Buffer;
      const text = key.toString('latin1');
      let partition = byKey.get(text);
      if (partition === undefined) byKey.set(text, (partition = javaKeyHash(key) % PARTITIONS));
      partitions[from + i] = partition;
    });
  }
  return partitions;
}

interface JoinLine {
  time: number;
  partitions: number[];
}

/** A replica's `joined consumer group` lines: when, and its partitions of the topic. */
function joinLines(child: ChildUnderTest, topic: string): JoinLine[] {
  return child.lines
    .filter((line) => line.msg === 'joined consumer group' && typeof line.time === 'number')
    .map((line) => ({
      time: line.time as number,
      partitions: (line.assignment as Record<string, number[]> | undefined)?.[topic] ?? [],
    }));
}

/** Waits until the replicas' latest assignments divide the topic's partitions among them exactly. */
async function settled(replicas: readonly ChildUnderTest[], topic: string): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  let latest: (number[] | undefined)[] = [];
  while (performance.now() < deadline) {
    latest = replicas.map((child) => joinLines(child, topic).at(-1)?.partitions);
    const all = latest.flatMap((partitions) => partitions ?? []);
    if (latest.every((partitions) => partitions !== undefined) && all.length === PARTITIONS) {
      if (new Set(all).size === PARTITIONS) return;
    }
    await sleep(50);
  }
  throw new Error(
    `the group did not settle within ${SETTLE_TIMEOUT_MS} ms: latest assignments ${JSON.stringify(latest)}`,
  );
}

function warnings(replicas: readonly ChildUnderTest[]): string[] {
  const seen = new Set<string>();
  for (const child of replicas) {
    for (const line of child.problems()) {
      seen.add(String(line.msg));
      if (seen.size >= MAX_WARNINGS) return [...seen];
    }
  }
  return [...seen];
}
