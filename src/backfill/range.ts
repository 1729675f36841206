/**
 * A backfill's range, from the command line to offsets: `--from`/`--to` as timestamps (ISO-8601
 * with a zone, or epoch milliseconds), `beginning` and `now`, or per-partition offsets. Resolved
 * once, when the job starts, against the topic's offsets at that moment.
 */
import { StreamscoreError } from '../errors.js';
import type { PartitionRange } from '../kafka/offsets.js';

export type RangeStart =
  | { kind: 'beginning' }
  | { kind: 'time'; ms: number }
  | { kind: 'offsets'; offsets: ReadonlyMap<number, bigint> };

export type RangeEnd =
  { kind: 'now' } | { kind: 'time'; ms: number } | { kind: 'offsets'; offsets: ReadonlyMap<number, bigint> };

export interface RangeSpec {
  from: RangeStart;
  to: RangeEnd;
}

export interface RangeFlags {
  from?: string | undefined;
  to?: string | undefined;
  fromOffsets?: string | undefined;
  toOffsets?: string | undefined;
}

/** The latest instant JavaScript dates hold (year 275760); later timestamps are refused. */
const MAX_TIME_MS = 8.64e15;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

function usage(message: string): StreamscoreError {
  return new StreamscoreError('USAGE', message);
}

/** An instant: epoch milliseconds, or ISO-8601 (a date alone is midnight UTC; a time needs its zone). */
export function parseInstant(text: string, flag: string): number {
  const trimmed = text.trim();
  if (/^\d{1,16}$/.test(trimmed)) {
    const ms = Number(trimmed);
    if (ms <= MAX_TIME_MS) return ms;
  } else if (ISO_8601.test(trimmed)) {
    const ms = Date.parse(trimmed);
    if (Number.isFinite(ms) && ms >= 0) return ms;
  }
  throw usage(
    `${flag}: ${JSON.stringify(text)} is not a time; give ISO-8601 with a zone (2026-11-01T00:00:00Z), ` +
      `epoch milliseconds, or ${flag === '--from' ? 'beginning' : 'now'}`,
  );
}

/** PARTITION:OFFSET[,PARTITION:OFFSET...], each partition once. */
export function parseOffsets(text: string, flag: string): Map<number, bigint> {
  const offsets = new Map<number, bigint>();
  for (const part of text.split(',')) {
    const match = /^\s*(\d{1,9}):(\d{1,19})\s*$/.exec(part);
    if (match === null) {
      throw usage(`${flag}: ${JSON.stringify(part)} is not PARTITION:OFFSET (for example 0:1200,1:980)`);
    }
    const partition = Number(match[1]);
    if (offsets.has(partition)) throw usage(`${flag}: partition ${partition} is given twice`);
    offsets.set(partition, BigInt(match[2]!));
  }
  return offsets;
}

/** The range a user asked for; no broker needed, so mistakes are found before anything starts. */
export function parseRange(flags: RangeFlags): RangeSpec {
  if (flags.from !== undefined && flags.fromOffsets !== undefined)
    throw usage('give --from or --from-offsets, not both');
  if (flags.to !== undefined && flags.toOffsets !== undefined)
    throw usage('give --to or --to-offsets, not both');
  let from: RangeStart;
  if (flags.fromOffsets !== undefined) {
    from = { kind: 'offsets', offsets: parseOffsets(flags.fromOffsets, '--from-offsets') };
  } else if (flags.from === undefined) {
    throw usage('a backfill needs where to start: --from TIME|beginning or --from-offsets P:O,...');
  } else if (flags.from.trim() === 'beginning') {
    from = { kind: 'beginning' };
  } else {
    from = { kind: 'time', ms: parseInstant(flags.from, '--from') };
  }
  let to: RangeEnd;
  if (flags.toOffsets !== undefined) {
    to = { kind: 'offsets', offsets: parseOffsets(flags.toOffsets, '--to-offsets') };
  } else if (flags.to === undefined || flags.to.trim() === 'now') {
    to = { kind: 'now' };
  } else {
    to = { kind: 'time', ms: parseInstant(flags.to, '--to') };
  }
  if (from.kind === 'time' && to.kind === 'time' && from.ms > to.ms) {
    throw usage(`--from ${new Date(from.ms).toISOString()} is after --to ${new Date(to.ms).toISOString()}`);
  }
  return { from, to };
}

/** A partition's offsets as the broker reports them: the first kept and the next to be written. */
export interface PartitionOffsets {
  partition: number;
  low: bigint;
  high: bigint;
}

/**
 * Offsets per partition for the spec: a time becomes the first offset whose record timestamp is at
 * or after it (`offsetsAt`, the broker's offset-for-time lookup; a time past the last record gives
 * the partition's end), so the range holds the records from `from` up to but not including `to`.
 * Both ends are kept within what the partition holds. With --from-offsets, partitions not listed
 * are left out; with --to-offsets, partitions not listed are read to their end.
 */
export async function resolveRange(
  spec: RangeSpec,
  partitions: readonly PartitionOffsets[],
  offsetsAt: (ms: number) => Promise<ReadonlyMap<number, bigint>>,
): Promise<Map<number, PartitionRange>> {
  const known = new Set(partitions.map((p) => p.partition));
  for (const bound of [spec.from, spec.to]) {
    if (bound.kind !== 'offsets') continue;
    for (const partition of bound.offsets.keys()) {
      if (!known.has(partition)) {
        throw usage(
          `partition ${partition} does not exist; the topic has partitions 0-${partitions.length - 1}`,
        );
      }
    }
  }
  const startsAt = spec.from.kind === 'time' ? await offsetsAt(spec.from.ms) : undefined;
  const endsAt = spec.to.kind === 'time' ? await offsetsAt(spec.to.ms) : undefined;
  const ranges = new Map<number, PartitionRange>();
  for (const { partition, low, high } of partitions) {
    const clamp = (offset: bigint) => (offset < low ? low : offset > high ? high : offset);
    let start: bigint;
    if (spec.from.kind === 'beginning') start = low;
    else if (spec.from.kind === 'time') start = startsAt!.get(partition) ?? high;
    else start = spec.from.offsets.get(partition) ?? high;
    let end: bigint;
    if (spec.to.kind === 'now') end = high;
    else if (spec.to.kind === 'time') end = endsAt!.get(partition) ?? high;
    else end = spec.to.offsets.get(partition) ?? high;
    const bothGiven =
      spec.from.kind === 'offsets' &&
      spec.to.kind === 'offsets' &&
      spec.from.offsets.has(partition) &&
      spec.to.offsets.has(partition);
    if (bothGiven && start > end) {
      throw usage(`partition ${partition}: --from-offsets ${start} is after --to-offsets ${end}`);
    }
    start = clamp(start);
    end = clamp(end);
    ranges.set(partition, { start, end: end < start ? start : end });
  }
  return ranges;
}

/** Records a set of ranges spans (offsets; markers and compacted records count too). */
export function rangeSize(ranges: Iterable<PartitionRange>): bigint {
  let total = 0n;
  for (const { start, end } of ranges) total += end - start;
  return total;
}
