/**
 * What a scale event costs, from the arrivals of one paced run (bench/scale.ts): per source
 * partition, the longest stretch with a request waiting and no new prediction; end-to-end latency
 * of the events due in a window; and repeats, request ids predicted more than once. Pure functions over plain arrays, so
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
  /** Epoch ms the gap began: a new prediction of the partition, or the send of a request it waited for. */
  from: number;
  /** Epoch ms of the next new prediction (or the window's end, for a request never predicted). */
  to: number;
}

/**
 * The longest time any partition had a request waiting and no new prediction published, over the
 * gaps that overlap the window. Per partition, events are taken in the order of their first
 * predictions; before each one the partition waited from the later of the previous first
 * prediction and the event's send (a load generator that fell behind does not open a gap; a
 * repeat is no progress, so it does not close one). Requests never predicted wait from their send
 * to the window's end. A gap is taken whole even where it reaches past the window.
 */
export function longestGap(
  first: Float64Array,
  sentAt: ArrayLike<number>,
  partitionOf: ArrayLike<number>,
  partitions: number,
  window: Window,
): Gap | undefined {
  const predicted: number[][] = Array.from({ length: partitions }, () => []);
  const waitingSince = new Float64Array(partitions).fill(Number.POSITIVE_INFINITY);
  for (let event = 0; event < first.length; event += 1) {
    const partition = partitionOf[event]!;
    if (Number.isNaN(first[event]!))
      waitingSince[partition] = Math.min(waitingSince[partition]!, sentAt[event]!);
    else predicted[partition]!.push(event);
  }
  let longest: Gap | undefined;
  const consider = (partition: number, from: number, to: number) => {
    if (to <= from || to <= window.from || from >= window.to) return;
    if (longest === undefined || to - from > longest.ms) longest = { ms: to - from, partition, from, to };
  };
  for (let partition = 0; partition < partitions; partition += 1) {
    // Predictions handed over in one fetch share a stamp: the earliest sent of them opens the wait.
    const events = predicted[partition]!.sort((a, b) => first[a]! - first[b]! || sentAt[a]! - sentAt[b]!);
    let previous = Number.NEGATIVE_INFINITY;
    for (const event of events) {
      consider(partition, Math.max(previous, sentAt[event]!), first[event]!);
      previous = first[event]!;
    }
    if (waitingSince[partition]! < Number.POSITIVE_INFINITY)
      consider(partition, Math.max(previous, waitingSince[partition]!), window.to);
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
 * Latency of the events due in the window (`due`, their event_time): first prediction's arrival -
 * `from` (event_time for end-to-end latency; the send, to leave out a load generator's lag).
 * Percentiles are nearest-rank; NaN when no event of the window was predicted.
 */
export function latencyIn(
  first: Float64Array,
  from: ArrayLike<number>,
  due: ArrayLike<number>,
  window: Window,
): LatencyWindow {
  const latencies: number[] = [];
  let missing = 0;
  for (let event = 0; event < first.length; event += 1) {
    const at = due[event]!;
    if (at < window.from || at >= window.to) continue;
    const arrived = first[event]!;
    if (Number.isNaN(arrived)) missing += 1;
    else latencies.push(arrived - from[event]!);
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
