/**
 * A backfill job's identity and progress, kept in Kafka only: the job's own consumer group holds a
 * committed offset per partition, and each commit's metadata holds the partition's range. A job
 * started again (here or on another machine) with the same id finds both there, so it resumes
 * where it stopped and reads the same range, even if the topic grew meanwhile.
 */
import { createHash } from 'node:crypto';
import { StreamscoreError } from '../errors.js';
import type { ReplayBounds, ReplayPosition } from '../kafka/intake.js';
import type { PartitionRange } from '../kafka/offsets.js';

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** The consumer group of a job: never serve's, so a backfill cannot move serve's offsets. */
export function jobGroupId(job: string): string {
  return `streamscore-backfill.${job}`;
}

export function checkJobName(job: string): string {
  if (!JOB_NAME.test(job)) {
    throw new StreamscoreError(
      'USAGE',
      `--job: ${JSON.stringify(job)} is not a job id (letters, digits, '.', '_' and '-', at most 200, starting with a letter or digit)`,
    );
  }
  return job;
}

/** The default job id: the model and version, and a digest of everything else that defines the job. */
export function defaultJobName(args: {
  topic: string;
  model: string;
  version: string;
  output: string;
  range: readonly (string | undefined)[];
}): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([args.topic, args.model, args.version, args.output, ...args.range]))
    .digest('hex')
    .slice(0, 10);
  const base = `${args.model}-v${args.version}`.replace(/[^A-Za-z0-9._-]/g, '_');
  return checkJobName(`${base}-${digest}`);
}

interface StoredRange {
  job: string;
  start: string;
  end: string;
}

/** Commit metadata for a partition of a job (well under the broker's 4,096-byte default limit). */
export function encodeRange(job: string, range: PartitionRange): string {
  const stored: StoredRange = { job, start: range.start.toString(), end: range.end.toString() };
  return JSON.stringify(stored);
}

/** The range stored by a commit of this job, or undefined for metadata that is not one. */
export function decodeRange(metadata: string | null | undefined, job: string): PartitionRange | undefined {
  if (typeof metadata !== 'string' || metadata.length === 0 || metadata.length > 4_096) return undefined;
  try {
    const stored = JSON.parse(metadata) as Partial<StoredRange>;
    if (stored.job !== job || typeof stored.start !== 'string' || typeof stored.end !== 'string')
      return undefined;
    if (!/^\d{1,19}$/.test(stored.start) || !/^\d{1,19}$/.test(stored.end)) return undefined;
    const start = BigInt(stored.start);
    const end = BigInt(stored.end);
    return end >= start ? { start, end } : undefined;
  } catch {
    return undefined;
  }
}

/** A partition's committed offset and its metadata, as the group coordinator keeps them. */
export interface CommittedOffset {
  offset: bigint | undefined;
  metadata: string | null;
}

/** Where one partition of a job stands. */
export interface PartitionState extends ReplayPosition {
  partition: number;
  /** Offsets of the range already behind the committed position. */
  done: bigint;
  finished: boolean;
}

/**
 * Each partition's range and progress: the range stored with its commits where there is one (the
 * job's first run fixed it), else the range this run resolved. A committed offset outside the
 * range is ignored (the range is read from its start).
 */
export function jobState(
  job: string,
  planned: ReadonlyMap<number, PartitionRange>,
  committed: ReadonlyMap<number, CommittedOffset>,
): PartitionState[] {
  const states: PartitionState[] = [];
  for (const [partition, plan] of planned) {
    const entry = committed.get(partition);
    const stored = decodeRange(entry?.metadata, job);
    const range = stored ?? plan;
    let offset = entry?.offset;
    if (offset !== undefined && (offset < range.start || offset > range.end)) offset = undefined;
    const done = (offset ?? range.start) - range.start;
    states.push({
      partition,
      range,
      committed: offset,
      done,
      finished: range.start >= range.end || offset === range.end,
    });
  }
  return states.sort((a, b) => a.partition - b.partition);
}

export interface JobTotals {
  partitions: number;
  finishedPartitions: number;
  /** Offsets in every partition's range. */
  total: bigint;
  /** Offsets behind the committed positions. */
  done: bigint;
  complete: boolean;
}

export function totals(states: readonly PartitionState[]): JobTotals {
  let total = 0n;
  let done = 0n;
  let finished = 0;
  for (const state of states) {
    total += state.range.end - state.range.start;
    done += state.done;
    if (state.finished) finished += 1;
  }
  return {
    partitions: states.length,
    finishedPartitions: finished,
    total,
    done,
    complete: finished === states.length,
  };
}

/**
 * The intake's view of the job (ReplayBounds): where each assigned partition is read, the metadata
 * its commits carry, and which of this process's partitions are finished. `settled` resolves once
 * every partition assigned here is finished (never while the assignment is empty).
 */
export class JobBounds implements ReplayBounds {
  readonly job: string;
  readonly #planned: ReadonlyMap<number, PartitionRange>;
  readonly #readCommitted: () => Promise<ReadonlyMap<number, CommittedOffset>>;
  /** Ranges in use, by partition: what each commit's metadata says. */
  readonly #ranges = new Map<number, PartitionRange>();
  #assigned = new Set<number>();
  readonly #finished = new Set<number>();
  /** What start-up read, for the first join only (later joins read afresh). */
  #initial: ReadonlyMap<number, CommittedOffset> | undefined;
  #settle!: () => void;
  /** Every partition assigned here is finished. */
  readonly settled = new Promise<void>((resolve) => (this.#settle = resolve));

  constructor(
    job: string,
    planned: ReadonlyMap<number, PartitionRange>,
    readCommitted: () => Promise<ReadonlyMap<number, CommittedOffset>>,
    initial?: ReadonlyMap<number, CommittedOffset>,
  ) {
    this.job = job;
    this.#planned = planned;
    this.#readCommitted = readCommitted;
    this.#initial = initial;
  }

  /** Partitions of this process that finished, and those it holds now. */
  get progress(): { assigned: number; finished: number } {
    let finished = 0;
    for (const partition of this.#assigned) if (this.#finished.has(partition)) finished += 1;
    return { assigned: this.#assigned.size, finished };
  }

  assigned(partitions: readonly number[]): void {
    this.#assigned = new Set(partitions);
    for (const partition of this.#finished)
      if (!this.#assigned.has(partition)) this.#finished.delete(partition);
    this.#check();
  }

  /**
   * The first join is answered from what start-up read moments before: a commit made since by
   * another process of the job can only be later, so the worst case is events scored twice.
   */
  resolveNow(partitions: readonly number[]): ReadonlyMap<number, ReplayPosition> | undefined {
    const initial = this.#initial;
    this.#initial = undefined;
    return initial === undefined ? undefined : this.#positions(partitions, initial);
  }

  async resolve(partitions: readonly number[]): Promise<ReadonlyMap<number, ReplayPosition>> {
    this.#initial = undefined;
    return this.#positions(partitions, await this.#readCommitted());
  }

  #positions(
    partitions: readonly number[],
    committed: ReadonlyMap<number, CommittedOffset>,
  ): ReadonlyMap<number, ReplayPosition> {
    const wanted = new Set(partitions);
    const positions = new Map<number, ReplayPosition>();
    for (const state of jobState(this.job, this.#planned, committed)) {
      if (!wanted.has(state.partition)) continue;
      this.#ranges.set(state.partition, state.range);
      positions.set(state.partition, { range: state.range, committed: state.committed });
    }
    // A partition added to the topic after the job started lies outside its range: nothing to read.
    for (const partition of partitions) {
      if (positions.has(partition)) continue;
      const none = { start: 0n, end: 0n };
      this.#ranges.set(partition, none);
      positions.set(partition, { range: none, committed: undefined });
    }
    return positions;
  }

  metadata(partition: number): string {
    const range = this.#ranges.get(partition) ?? this.#planned.get(partition);
    return range === undefined ? '' : encodeRange(this.job, range);
  }

  finished(partition: number): void {
    this.#finished.add(partition);
    this.#check();
  }

  #check(): void {
    if (this.#assigned.size === 0) return;
    for (const partition of this.#assigned) if (!this.#finished.has(partition)) return;
    this.#settle();
  }
}
