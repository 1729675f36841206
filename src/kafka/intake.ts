import { setImmediate } from 'node:timers/promises';
import type { PendingLimit } from '../batching/capacity.js';
import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';
import { Committer } from './committer.js';
import type { FetchedBatch, GroupConsumer, GroupMembership } from './group-consumer.js';
import {
  OffsetLedger,
  type Assignment,
  type Committable,
  type OffsetEntry,
  type PartitionLease,
  type PartitionRange,
} from './offsets.js';
import type { ConsumedRecord } from './records.js';
import type { TransactionSource } from './transactional-publisher.js';

/** Who commits the ledger's offsets: the Committer, or (exactly-once) the transactional publisher. */
export interface CommitScheduler {
  /** Asks for a commit of what is finished, soon. */
  schedule(): void;
  /** Stops committing, without a last commit. */
  abandon(): void;
  /** Commits what is finished now and waits for it; later schedule() calls are ignored. */
  close(): Promise<void>;
}

export interface IntakeSettings {
  topic: string;
  commitIntervalMs: number;
}

/** One consumed record on its way in. */
export interface TakeContext {
  readonly topic: string;
  readonly partition: number;
  /** The record being taken; intake moves the context to the next record once take() settles. */
  readonly message: ConsumedRecord;
  /**
   * Gives the record its place in the partition's ledger; called once, when the record's outcome
   * is decided (scored or dead-lettered later). A record given up is never tracked.
   */
  track(): { lease: PartitionLease; entry: OffsetEntry };
  /** Keeps the group membership alive while taking the record waits (a registry outage). */
  heartbeat(): Promise<void>;
  /** False once the record should be given up: stopping, or the partition is no longer ours. */
  live(): boolean;
}

/**
 * Takes one record in: true when it was tracked, false when it was given up (it is read again by
 * whoever owns the partition next). Must not throw.
 */
export type Take = (context: TakeContext) => boolean | Promise<boolean>;

export interface IntakeEvents {
  /** The group was joined (again); `revoked` are the leases of partitions this replica lost. */
  joined(assignment: Assignment, revoked: readonly PartitionLease[]): void;
  /** The broker answered (a fetch, a heartbeat, a join, a commit). */
  contact(): void;
  /** The consumer failed; with restart true, it goes on by itself. */
  crashed(error: unknown, restart: boolean): void;
}

/** Where a bounded replay reads a partition: its range, and where its committed progress stands. */
export interface ReplayPosition {
  range: PartitionRange;
  /** The partition's committed offset, if any; reading resumes there (or at range.start without). */
  committed: bigint | undefined;
}

/**
 * Makes intake a bounded replay (backfill): each partition is read over a fixed range of offsets,
 * from its committed progress (or the range's start) up to the range's end, and then left alone.
 */
export interface ReplayBounds {
  /**
   * Where each newly assigned partition is read, decided after the join and before anything of it
   * is fetched. A rejection stops the intake (crashed, without restart).
   */
  resolve(partitions: readonly number[]): Promise<ReadonlyMap<number, ReplayPosition>>;
  /**
   * The same, at once, when the answer is already known (the first join, from what was read at
   * start-up), so the partitions need not be held back at all; undefined to ask resolve().
   */
  resolveNow?(partitions: readonly number[]): ReadonlyMap<number, ReplayPosition> | undefined;
  /** Each join's assignment: the partitions of the topic this process reads now. */
  assigned(partitions: readonly number[]): void;
  /** Stored with every commit of the partition, so a later run finds the same range. */
  metadata(partition: number): string;
  /** Every record of the partition's range is finished and committed (said once per lease). */
  finished(partition: number): void;
}

/** The longest a fetch is decoded before other events (inference results, acks) get a turn, ms. */
const DECODE_SLICE_MS = 2;
/** Between heartbeats while taking records in waits (backpressure, registry outage), ms. */
const HEARTBEAT_WAIT_MS = 1_000;

/**
 * The Kafka side of intake: one consumer in the serving group (a GroupConsumer of the configured
 * client), fetching the requests topic and
 * handing each record to `take` in partition order, and committing what the ledger says is done.
 *
 * Backpressure: before each record, intake waits while the pending limit is reached (heartbeats
 * continue, so the replica keeps its partitions). A rebalance revokes the leases of lost partitions
 * (their waiting records are dropped by scoring, and their commits stop) and keeps the rest; the
 * records the group hands out again for kept partitions are skipped, since they are in flight here.
 */
export class KafkaIntake {
  readonly #settings: IntakeSettings;
  readonly #consumer: GroupConsumer;
  readonly #capacity: PendingLimit;
  readonly #take: Take;
  readonly #events: IntakeEvents;
  readonly #log: Logger;
  readonly #metrics: ServeMetrics;
  readonly #ledger = new OffsetLedger();
  readonly #committer: CommitScheduler;
  /** Exactly-once: every join revokes every lease, so nothing taken in before it is committed after it. */
  readonly #revokeOnJoin: boolean;
  readonly #handlers = new Set<Promise<void>>();
  readonly #bounds: ReplayBounds | undefined;
  /** Bounded leases already reported finished. */
  readonly #reported = new WeakSet<PartitionLease>();
  #memberId: string | undefined;
  #joined = false;
  #stopping = false;

  constructor(options: {
    consumer: GroupConsumer;
    settings: IntakeSettings;
    capacity: PendingLimit;
    take: Take;
    events: IntakeEvents;
    logger: Logger;
    metrics: ServeMetrics;
    /** A bounded replay instead of following the topic (see ReplayBounds). */
    bounds?: ReplayBounds;
    /**
     * Exactly-once: offsets are committed in the transactions that carry the outputs (see
     * transactionSource()); this schedules them instead of the consumer's own commits.
     */
    transactions?: CommitScheduler;
  }) {
    const { settings } = options;
    this.#settings = settings;
    this.#bounds = options.bounds;
    this.#capacity = options.capacity;
    this.#take = options.take;
    this.#events = options.events;
    this.#log = options.logger;
    this.#metrics = options.metrics;
    this.#consumer = options.consumer;
    this.#revokeOnJoin = options.transactions !== undefined;
    this.#committer =
      options.transactions ??
      new Committer({
        ledger: this.#ledger,
        commit: async (offsets) => {
          const bounds = this.#bounds;
          await this.#consumer.commit(
            bounds === undefined
              ? offsets
              : offsets.map((offset) => ({ ...offset, metadata: bounds.metadata(offset.partition) })),
          );
          this.#events.contact();
        },
        intervalMs: settings.commitIntervalMs,
        logger: this.#log,
        onResult: (ok) => {
          this.#metrics.commits.inc({ result: ok ? 'ok' : 'failed' });
          if (ok) this.#reportFinished();
        },
      });
  }

  /** The group was joined and the replica has not started stopping. */
  get joined(): boolean {
    return this.#joined && !this.#stopping;
  }

  async start(): Promise<void> {
    await this.#consumer.start({
      joined: (memberId, assignment) => {
        const keep = !this.#revokeOnJoin && this.#memberId !== undefined && this.#memberId === memberId;
        this.#memberId = memberId;
        const revoked = this.#ledger.assign(assignment, keep);
        this.#joined = true;
        this.#events.contact();
        this.#events.joined(assignment, revoked);
        if (this.#bounds !== undefined) {
          const partitions = assignment[this.#settings.topic] ?? [];
          this.#bounds.assigned(partitions);
          this.#position(partitions);
        }
        // Work held back for want of a membership (exactly-once) can go now.
        if (this.#revokeOnJoin) this.#committer.schedule();
      },
      skipped: (topic, partition, lastOffset) => {
        // A fetch of only transaction markers or aborted records: when it passes a range's end,
        // the range was read through all the same.
        const lease = this.#ledger.lease(topic, partition);
        const end = lease.range?.end;
        if (end !== undefined && lastOffset + 1n >= end) this.#readThrough(lease);
      },
      batch: (batch) => this.#track(this.#handle(batch)),
      contact: () => this.#events.contact(),
      crashed: (error, restart) => this.#events.crashed(error, restart),
    });
  }

  /**
   * Bounded replay: holds back the partitions just assigned (nothing of them is fetched), asks
   * where each is read, seeks there and lets the unfinished ones go. Partitions kept from the
   * previous generation keep their lease and their place.
   */
  #position(partitions: readonly number[]): void {
    const topic = this.#settings.topic;
    const fresh = partitions
      .map((partition) => this.#ledger.lease(topic, partition))
      .filter((lease) => lease.range === undefined);
    if (fresh.length === 0) return;
    const freshPartitions = fresh.map((lease) => lease.partition);
    const known = this.#bounds!.resolveNow?.(freshPartitions);
    if (known !== undefined) {
      // Positioned before the first fetch: nothing to hold back (a consumer would otherwise sleep
      // a whole fetch wait with every partition paused).
      this.#applyPositions(fresh, known, false);
      return;
    }
    this.#consumer.pause(freshPartitions);
    const work = (async () => {
      let positions: ReadonlyMap<number, ReplayPosition>;
      try {
        positions = await this.#bounds!.resolve(freshPartitions);
      } catch (error) {
        this.#events.crashed(error, false);
        return;
      }
      this.#applyPositions(fresh, positions, true);
    })();
    void this.#track(work);
  }

  /** Bounds each lease and seeks it to where it is read; `resume` lets held-back ones go. */
  #applyPositions(
    leases: readonly PartitionLease[],
    positions: ReadonlyMap<number, ReplayPosition>,
    resume: boolean,
  ): void {
    const go: number[] = [];
    const done: number[] = [];
    for (const lease of leases) {
      const position = positions.get(lease.partition);
      if (lease.revoked || position === undefined) continue;
      lease.bound(position.range, position.committed);
      if (lease.readThrough) {
        done.push(lease.partition);
        continue;
      }
      this.#consumer.seek(lease.partition, position.committed ?? position.range.start);
      go.push(lease.partition);
    }
    // A partition with nothing left to read is not fetched at all.
    if (done.length > 0 && !resume) this.#consumer.pause(done);
    if (resume && go.length > 0 && !this.#stopping) this.#consumer.resume(go);
    this.#reportFinished();
    // A range that is empty, or was read through before any commit, still commits its end.
    this.#committer.schedule();
  }

  /** No record at or past the lease's range end is taken any more: stop fetching the partition. */
  #readThrough(lease: PartitionLease): void {
    if (!lease.markReadThrough()) return;
    try {
      this.#consumer.pause([lease.partition]);
    } catch {
      // Stopped meanwhile: nothing is fetched any more anyway.
    }
    this.#committer.schedule();
  }

  #reportFinished(): void {
    if (this.#bounds === undefined) return;
    for (const lease of this.#ledger.leases()) {
      if (!lease.finished || this.#reported.has(lease)) continue;
      this.#reported.add(lease);
      this.#bounds.finished(lease.partition);
    }
  }

  /**
   * Exactly-once: the ledger's offsets, for the transactions that commit them with the outputs
   * they complete, under the group membership of the last join.
   */
  transactionSource(): TransactionSource {
    return {
      pending: () => {
        const bounds = this.#bounds;
        const commits = this.#ledger.committable();
        return bounds === undefined
          ? commits
          : commits.map((commit) => ({ ...commit, metadata: bounds.metadata(commit.partition) }));
      },
      committed: (commits: readonly Committable[]) => {
        this.#ledger.markCommitted(commits);
        if (commits.length > 0) this.#metrics.commits.inc({ result: 'ok' });
        this.#events.contact();
        this.#reportFinished();
      },
      membership: (): GroupMembership | undefined => (this.#joined ? this.#consumer.group?.() : undefined),
    };
  }

  /** Asks for a commit of what is finished, soon (at most one per commit interval). */
  commitSoon(): void {
    this.#committer.schedule();
  }

  /** Stops fetching and waits for the fetch handlers to return; records not taken stay unread. */
  async pause(): Promise<void> {
    this.#stopping = true;
    try {
      this.#consumer.pause();
    } catch {
      // Not running yet (stopped during start-up): there is nothing to pause.
    }
    this.#capacity.close();
    await Promise.all(this.#handlers);
  }

  /** Commits what is finished (unless told not to), then leaves the group. Never throws. */
  async close(commit: boolean): Promise<void> {
    this.#stopping = true;
    if (commit)
      await this.#committer.close().catch((error: unknown) => this.#log.warn({ err: error }, 'final commit'));
    else this.#committer.abandon();
    await this.#consumer
      .disconnect()
      .catch((error: unknown) =>
        this.#log.warn({ err: error }, `consumer disconnect: ${describeError(error)}`),
      );
  }

  #track(work: Promise<void>): Promise<void> {
    this.#handlers.add(work);
    return work.finally(() => this.#handlers.delete(work));
  }

  async #handle(batch: FetchedBatch): Promise<void> {
    const { topic, partition, records } = batch;
    if (this.#stopping || records.length === 0) return;
    const metrics = this.#metrics;
    const lease = this.#ledger.lease(topic, partition);
    const range = lease.range;
    // A bounded replay's lag is what is left of its range, not of the topic.
    const lag =
      range === undefined
        ? batch.lag
        : Math.max(0, Number(range.end - BigInt(records[records.length - 1]!.offset) - 1n));
    metrics.consumerLag.set({ topic, partition: String(partition) }, lag);
    const oldest = Number(records[0]!.timestamp);
    if (oldest > 0)
      metrics.stageSeconds.observe({ stage: 'fetch' }, Math.max(0, Date.now() - oldest) / 1_000);
    // A bounded lease not positioned yet: nothing is resolved, so the records are fetched again.
    if (this.#bounds !== undefined && (range === undefined || lease.readThrough)) return;
    // Whether records of this batch may still be taken. Only an await lets a rebalance, a seek or a
    // stop in, so the full check runs after each one and a cheap one per record.
    const live = () => !this.#stopping && !lease.revoked && batch.current();
    // One context for the batch, pointed at each record in turn: records are taken one at a time.
    const context: TakeContext & { message: ConsumedRecord } = {
      topic,
      partition,
      message: records[0]!,
      track: () => ({ lease, entry: lease.track(context.message.offset) }),
      heartbeat: () => batch.heartbeat(),
      live,
    };
    let taken = 0;
    /** The last offset done with here; the consumer fetches on from the one after it. */
    let resolved: string | undefined;
    // Offsets rise within a batch: once one is new to the lease, so are the rest.
    let handedOutAgain = true;
    let slice = performance.now();
    try {
      if (!live()) return;
      for (const message of records) {
        if (this.#stopping || lease.revoked) break;
        if (range !== undefined) {
          const offset = BigInt(message.offset);
          if (offset >= range.end) {
            this.#readThrough(lease);
            break;
          }
          if (offset < range.start) {
            resolved = message.offset;
            continue;
          }
        }
        if (handedOutAgain) {
          if (lease.alreadyTaken(message.offset)) {
            // Handed out again after a rebalance that left the partition here: it is in flight already.
            resolved = message.offset;
            continue;
          }
          handedOutAgain = false;
        }
        // A fetch can hold thousands of records; decoding them all in one go would hold back
        // inference results and produce acknowledgements (both arrive as events) until it ends.
        if ((taken & 15) === 15 && performance.now() - slice > DECODE_SLICE_MS) {
          await setImmediate();
          if (!live()) break;
          slice = performance.now();
        }
        if (!this.#capacity.hasCapacity()) {
          await this.#waitForCapacity(() => batch.heartbeat(), live);
          if (!live()) break;
        }
        context.message = message;
        const outcome = this.#take(context);
        if (typeof outcome !== 'boolean') {
          const tracked = await outcome;
          if (!tracked) break;
        } else if (!outcome) break;
        resolved = message.offset;
        taken += 1;
        if (range !== undefined && BigInt(message.offset) + 1n >= range.end) {
          this.#readThrough(lease);
          break;
        }
      }
    } finally {
      if (resolved !== undefined) batch.resolve(resolved);
    }
    metrics.eventsConsumed.inc({ topic }, taken);
  }

  async #waitForCapacity(heartbeat: () => Promise<void>, live: () => boolean): Promise<void> {
    const started = performance.now();
    this.#metrics.pendingEvents.set(this.#capacity.pending);
    while (!this.#capacity.hasCapacity() && live()) {
      await waitAtMost(this.#capacity.waitForCapacity(), HEARTBEAT_WAIT_MS);
      await heartbeat().catch(() => undefined);
    }
    this.#metrics.backpressureSeconds.inc((performance.now() - started) / 1_000);
  }
}

async function waitAtMost(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
