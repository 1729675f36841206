/**
 * What a scale event costs, from the arrivals of one paced run (bench/scale.ts): per source
 * partition, the longest stretch without a new prediction; end-to-end latency of the events due in
 * a window; and repeats, request ids predicted more than once. Pure functions over plain arrays, so
 * the accounting is tested with hand-made inputs (test/bench/scale-accounting.test.ts).
 *
 * Times are epoch ms. Events are numbered by their place in the paced schedule.
 */
import { percentile } from './stats.js';

/** One prediction as it arrived at the consumer of the predictions topic. */
export interface Delivery {
  /** The event's place in the schedule. */
  event: number;
  /** Epoch ms of arrival. */
  at: number;
}

/** [from, to) in epoch ms. */
export interface Window {
  from: number;
  to: number;
}

export interface Tally {
  /** Per event, the epoch ms of its first prediction; NaN for an event never predicted. */
  first: Float64Array;
  /** Every prediction after an event's first, in arrival order. */
  repeats: Delivery[];
  /** Events with no prediction at all. */
  missing: number;
}

/** Sorts the deliveries into each event's first prediction and the repeats after it. */
export function tally(deliveries: readonly Delivery[], events: number): Tally {
  const first = new Float64Array(events).fill(Number.NaN);
  const repeats: Delivery[] = [];
  for (const delivery of deliveries) {
    const { event, at } = delivery;
    if (!(event >= 0 && event < events))
      throw new RangeError(`delivery of event ${event}; expected 0..${events - 1}`);
    const seen = first[event]!;
    if (Number.isNaN(seen)) first[event] = at;
    else if (at < seen) {
      // Arrival stamps are per fetch, and fetches of two partitions can be handed over out of
      // order: the earlier stamp is the first prediction, the other the repeat.
      first[event] = at;
      repeats.push({ event, at: seen });
    } else repeats.push(delivery);
  }
  let missing = 0;
  for (const at of first) if (Number.isNaN(at)) missing += 1;
  return { first, repeats, missing };
}

export interface Gap {
  ms: number;
  partition: number;
  /** Epoch ms of the last new prediction of the partition before the gap (or the window's start). */
  from: number;
  /** Epoch ms of the first new prediction after it (or the window's end). */
  to: number;
}

/**
 * The longest time any partition went without a new prediction, over the gaps that overlap the
 * window. A gap is the time between two consecutive first predictions of a partition's events
 * (a repeat is no progress, so it does not end one), taken whole even where it reaches past the
 * window. A partition with no prediction before the window's start (or after its end) counts from
 * the start (up to the end). Undefined when no partition has any prediction at all.
 */
export function longestGap(
  first: Float64Array,
  partitionOf: ArrayLike<number>,
  partitions: number,
  window: Window,
): Gap | undefined {
  const times: number[][] = Array.from({ length: partitions }, () => []);
  for (let event = 0; event < first.length; event += 1) {
    const at = first[event]!;
    if (!Number.isNaN(at)) times[partitionOf[event]!]!.push(at);
  }
  let longest: Gap | undefined;
  const consider = (partition: number, from: number, to: number) => {
    if (to <= window.from || from >= window.to) return;
    if (longest === undefined || to - from > longest.ms) longest = { ms: to - from, partition, from, to };
  };
  for (let partition = 0; partition < partitions; partition += 1) {
    const list = times[partition]!.sort((a, b) => a - b);
    if (list.length === 0) {
      consider(partition, window.from, window.to);
      continue;
    }
    if (list[0]! > window.from) consider(partition, window.from, list[0]!);
    for (let i = 1; i < list.length; i += 1) consider(partition, list[i - 1]!, list[i]!);
    if (list[list.length - 1]! < window.to) consider(partition, list[list.length - 1]!, window.to);
  }
  return longest;
}

export interface LatencyWindow {
  /** Events due in the window that were predicted. */
  events: number;
  /** Events due in the window never predicted (not in the percentiles). */
  missing: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

/**
 * End-to-end latency (first prediction's arrival - event_time) of the events whose event_time is
 * in the window. Percentiles are nearest-rank; NaN when no event of the window was predicted.
 */
export function latencyIn(first: Float64Array, eventTime: ArrayLike<number>, window: Window): LatencyWindow {
  const latencies: number[] = [];
  let missing = 0;
  for (let event = 0; event < first.length; event += 1) {
    const due = eventTime[event]!;
    if (due < window.from || due >= window.to) continue;
    const at = first[event]!;
    if (Number.isNaN(at)) missing += 1;
    else latencies.push(at - due);
  }
  latencies.sort((a, b) => a - b);
  return {
    events: latencies.length,
    missing,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    max_ms: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1]!,
  };
}

/** Repeats that arrived in the window: the predictions a scale event there made twice. */
export function repeatsIn(repeats: readonly Delivery[], window: Window): number {
  let count = 0;
  for (const { at } of repeats) if (at >= window.from && at < window.to) count += 1;
  return count;
}

export interface Spread {
  median: number;
  worst: number;
  /** Every repeat's value, in run order. */
  runs: number[];
}

/**
 * Median and worst (largest: every quantity here is better smaller) of one quantity over a
 * scenario's repeats; NaN values (nothing to measure in that run) are left out of both.
 */
export function spread(values: readonly number[]): Spread {
  const known = values.filter((value) => !Number.isNaN(value)).sort((a, b) => a - b);
  if (known.length === 0) return { median: Number.NaN, worst: Number.NaN, runs: [...values] };
  const middle = Math.floor(known.length / 2);
  const median = known.length % 2 === 1 ? known[middle]! : (known[middle - 1]! + known[middle]!) / 2;
  return { median, worst: known[known.length - 1]!, runs: [...values] };
}
