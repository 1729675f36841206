import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { Backoff } from '../timers.js';
import { errorIds } from './error-ids.js';
import type { CommitOffset, GroupMembership } from './group-consumer.js';
import type { Committable, OffsetEntry, PartitionLease } from './offsets.js';
import {
  TransactionOutcomeUnknown,
  type TransactionBatch,
  type TransactionalProducer,
} from './platformatic-producer.js';
import { recordBytes, type Publisher, type PublisherEvents } from './publisher.js';
import type { OutRecord, TopicRecords } from './records.js';

/** What the transactional publisher needs of intake: the ledger's offsets and the group membership. */
export interface TransactionSource {
  /** Offsets that moved since the last commit (the ledger's), each with its metadata if any. */
  pending(): (Committable & { metadata?: string })[];
  /** Those offsets were committed in a transaction. */
  committed(commits: readonly Committable[]): void;
  /** The membership offsets are committed under now; undefined while not a member. */
  membership(): GroupMembership | undefined;
}

/** Errors that say the group has moved on: what was in flight under the old membership is dropped. */
const GROUP_MOVED_ON = new Set([
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'FENCED_INSTANCE_ID',
  'REBALANCE_IN_PROGRESS',
]);

const MAX_BACKOFF_MS = 5_000;
/** After the group moved on, a retry waits this long for the rejoin that revokes the old leases, ms. */
const REJOIN_WAIT_MS = 200;

interface Pending {
  topic: string;
  message: OutRecord;
  /** The consumed record it is the output of; without one it goes with the next transaction. */
  source: OffsetEntry | undefined;
  taken: boolean;
}

interface Send {
  records: Pending[];
  onAck: () => void;
}

/** One transaction's content, decided from the queue and the ledger before it is sent. */
interface Round {
  requests: TopicRecords[][];
  included: Pending[];
  dropped: Pending[];
  commits: (Committable & { metadata?: string })[];
  group: GroupMembership | undefined;
}

/**
 * Exactly-once delivery: outputs (predictions, dead letters) and the consumed offsets they
 * complete are committed in one Kafka transaction, so a read_committed consumer sees each
 * request's output once, whatever fails.
 *
 * A record's output may only be committed together with an offset past the record: otherwise a
 * restart would read the record again and write its output twice. So each transaction takes the
 * offsets the ledger can commit now (a consumed record counts as finished once its output is
 * handed here) and exactly the queued outputs of records below them. Outputs of records further
 * on (an earlier record of their partition is still being scored) wait for a later transaction.
 * Outputs of records whose lease was revoked (the group moved their partition, or this member
 * rejoined) are dropped: whoever reads the partition next writes them.
 *
 * The offsets are committed under the group membership they were consumed in (KIP-447); a member
 * the group has moved on from (a paused process, a lost session) has its transaction refused and
 * aborted. One transaction is in flight at a time; a failed one is aborted and the round is
 * decided again from the queue, so nothing of it is committed twice.
 */
export class TransactionalPublisher implements Publisher {
  readonly #producer: TransactionalProducer;
  readonly #sourceOf: () => TransactionSource;
  #source: TransactionSource | undefined;
  readonly #logger: Logger;
  readonly #events: PublisherEvents;
  readonly #maxRequestBytes: number;
  readonly #firstRetryMs: number;
  #waiting: Send[] = [];
  #sending: Promise<void> | undefined;
  #failing = false;
  /** A transaction was refused for a stale membership and none committed since (said once). */
  #refused = false;
  #stopped = false;
  readonly #backoff = new Backoff();

  constructor(options: {
    producer: TransactionalProducer;
    /** Asked for once, at the first transaction (intake is made after the publisher). */
    source: () => TransactionSource;
    logger: Logger;
    events: PublisherEvents;
    maxRequestBytes: number;
    /** The first retry's wait after a failed transaction, ms (doubling to 5 s). */
    firstRetryMs?: number;
  }) {
    this.#producer = options.producer;
    this.#sourceOf = options.source;
    this.#logger = options.logger;
    this.#events = options.events;
    this.#maxRequestBytes = options.maxRequestBytes;
    this.#firstRetryMs = options.firstRetryMs ?? 100;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  publish(topicMessages: TopicRecords[], onAck: () => void, sources?: readonly OffsetEntry[]): void {
    if (this.#stopped) return;
    const records: Pending[] = [];
    let index = 0;
    for (const { topic, messages } of topicMessages) {
      for (const message of messages) {
        const source = sources?.[index++];
        // Handed over: as far as the ledger goes the record is finished, so its offset can go
        // into the transaction that carries this output.
        if (source !== undefined) source.done = true;
        records.push({ topic, message, source, taken: false });
      }
    }
    this.#waiting.push({ records, onAck });
    this.flush();
  }

  /** Starts a transaction soon if there is anything to commit (outputs or offsets alone). */
  flush(): void {
    if (this.#stopped) return;
    this.#sending ??= this.#run();
  }

  async idle(): Promise<void> {
    while (this.#sending !== undefined) await this.#sending;
  }

  stop(): void {
    this.#stopped = true;
    this.#waiting = [];
    this.#backoff.wake();
  }

  async #run(): Promise<void> {
    // Let the caller's turn finish first (and #sending be set before this can clear it).
    await Promise.resolve();
    let backoff = this.#firstRetryMs;
    try {
      while (!this.#stopped) {
        const round = this.#plan();
        if (round === undefined) break;
        if (round.included.length === 0 && round.commits.length === 0) {
          this.#apply(round);
          continue;
        }
        const batch = {
          requests: round.requests,
          offsets: round.commits.map(toCommitOffset),
          group: round.group!,
        };
        try {
          await this.#producer.commitTransaction(batch);
        } catch (error) {
          if (cannotSucceed(error)) throw error;
          if (error instanceof TransactionOutcomeUnknown && (await this.#committedAfterAll(batch))) {
            this.#succeeded(round);
            continue;
          }
          if (this.#stopped) break;
          const movedOn = errorIds(error).some((id) => GROUP_MOVED_ON.has(id));
          const wait = movedOn ? REJOIN_WAIT_MS : backoff;
          if (movedOn) {
            if (!this.#refused) {
              this.#refused = true;
              this.#logger.info(
                `transaction refused, the group moved on (${describeError(error)}): what was in flight is dropped once this member rejoins`,
              );
            }
          } else {
            if (!this.#failing) {
              this.#failing = true;
              this.#events.stalled(error, false);
            }
            this.#logger.debug(
              { err: error, records: round.included.length },
              `transaction failed and was aborted, trying again in ${wait} ms: ${describeError(error)}`,
            );
            backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          }
          await this.#backoff.wait(wait);
          continue;
        }
        backoff = this.#firstRetryMs;
        this.#succeeded(round);
      }
    } catch (error) {
      this.#stopped = true;
      this.#waiting = [];
      this.#events.fatal(error);
    } finally {
      this.#sending = undefined;
    }
  }

  #succeeded(round: Round): void {
    this.#refused = false;
    if (this.#failing) {
      this.#failing = false;
      this.#events.recovered();
    }
    this.#ledger().committed(round.commits);
    this.#apply(round);
  }

  /**
   * A commit that was not answered: asks the group's committed offsets until they say whether it
   * went through. Its records are not sent again before that is known.
   */
  async #committedAfterAll(batch: TransactionBatch): Promise<boolean> {
    for (let wait = this.#firstRetryMs; !this.#stopped; wait = Math.min(wait * 2, MAX_BACKOFF_MS)) {
      try {
        return await this.#producer.committed(batch);
      } catch (error) {
        this.#logger.debug(
          { err: error },
          `cannot tell yet whether a transaction committed: ${describeError(error)}`,
        );
        await this.#backoff.wait(wait);
      }
    }
    return false;
  }

  #ledger(): TransactionSource {
    return (this.#source ??= this.#sourceOf());
  }

  /**
   * The next transaction: the ledger's offsets, the queued outputs of records below them, and the
   * outputs of revoked leases to drop; undefined when there is nothing to do (or no membership).
   */
  #plan(): Round | undefined {
    const source = this.#ledger();
    const group = source.membership();
    const commits = group === undefined ? [] : source.pending();
    const target = new Map<PartitionLease, string>();
    for (const commit of commits) target.set(commit.lease, commit.offset);
    const included: Pending[] = [];
    const dropped: Pending[] = [];
    for (const send of this.#waiting) {
      for (const record of send.records) {
        if (record.taken) continue;
        const source = record.source;
        if (source?.lease.revoked === true) dropped.push(record);
        else if (group === undefined) continue;
        else if (source === undefined || below(source, target)) included.push(record);
      }
    }
    if (included.length === 0 && commits.length === 0 && dropped.length === 0) return undefined;
    return { requests: this.#requests(included), included, dropped, commits, group };
  }

  /** Records in produce requests within the byte limit, in queue order (per topic in one request). */
  #requests(records: readonly Pending[]): TopicRecords[][] {
    const requests: TopicRecords[][] = [];
    let byTopic = new Map<string, OutRecord[]>();
    let bytes = 0;
    for (const { topic, message } of records) {
      const size = recordBytes(message);
      if (bytes > 0 && bytes + size > this.#maxRequestBytes) {
        requests.push([...byTopic].map(([name, messages]) => ({ topic: name, messages })));
        byTopic = new Map();
        bytes = 0;
      }
      let list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, (list = []));
      list.push(message);
      bytes += size;
    }
    if (bytes > 0) requests.push([...byTopic].map(([name, messages]) => ({ topic: name, messages })));
    return requests;
  }

  /** Marks the round's records done with; sends with nothing left are acknowledged, in order. */
  #apply(round: Round): void {
    for (const record of round.included) record.taken = true;
    for (const record of round.dropped) record.taken = true;
    const finished: Send[] = [];
    const waiting: Send[] = [];
    for (const send of this.#waiting)
      (send.records.every((record) => record.taken) ? finished : waiting).push(send);
    this.#waiting = waiting;
    for (const send of finished) send.onAck();
  }
}

/** True when the record's offset lies below what its partition commits (in this round or before). */
function below(source: OffsetEntry, target: ReadonlyMap<PartitionLease, string>): boolean {
  const limit = target.get(source.lease) ?? source.lease.committedOffset;
  return limit !== undefined && offsetBelow(source.offset, limit);
}

/** a < b for non-negative offsets written in decimal (no leading zeros). */
export function offsetBelow(a: string, b: string): boolean {
  return a.length === b.length ? a < b : a.length < b.length;
}

function toCommitOffset({
  topic,
  partition,
  offset,
  metadata,
}: Committable & { metadata?: string }): CommitOffset {
  return metadata === undefined ? { topic, partition, offset } : { topic, partition, offset, metadata };
}

/** A programming error (a bad record, a non-transactional send): the same on every try. */
function cannotSucceed(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError;
}
