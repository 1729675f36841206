import type { Assignment } from './offsets.js';
import type { ConsumedRecord } from './records.js';

/**
 * What intake needs of a Kafka consumer in a group, whichever client implements it
 * (STREAMSCORE_KAFKA_CLIENT): kafkajs (kafkajs-consumer.ts) or @platformatic/kafka
 * (platformatic-consumer.ts). Intake keeps everything else: the ledger of offsets, commits,
 * backpressure, bounded replays.
 */
export interface GroupConsumer {
  /** Connects, joins the group and starts fetching; resolves once fetching has started. */
  start(handlers: GroupConsumerHandlers): Promise<void>;
  /** Stops fetching the partitions (all of the topic's without a list) until resume(). */
  pause(partitions?: readonly number[]): void;
  resume(partitions: readonly number[]): void;
  /** The partition's next fetch starts at `offset`; batches of it fetched before are no longer current. */
  seek(partition: number, offset: bigint): void;
  /** Commits offsets (the next record to read) in the group, each with its metadata string if any. */
  commit(offsets: readonly CommitOffset[]): Promise<void>;
  /** The last connection or request failure the client saw, if any (for readiness). */
  trouble(): string | undefined;
  /** Leaves the group and closes the connections. */
  disconnect(): Promise<void>;
  /**
   * The group membership a transaction's offsets are committed under (KIP-447: the coordinator
   * refuses them once the group moved on); undefined while not a member. Only consumers that
   * support exactly-once delivery have it.
   */
  group?(): GroupMembership | undefined;
}

/** A member's place in its group: what a transactional offset commit carries. */
export interface GroupMembership {
  groupId: string;
  generationId: number;
  memberId: string;
  /** The broker coordinating the group. */
  coordinatorId: number;
}

export interface GroupConsumerSettings {
  topic: string;
  groupId: string;
  sessionTimeoutMs: number;
  /** Where a partition without a committed offset is read from: its first record, or its end. */
  fromBeginning: boolean;
  /**
   * Exactly-once delivery: every join starts every partition again from the group's committed
   * offset, read once no transaction is still committing to it (what was in flight under the last
   * generation is dropped, and its outputs are never committed).
   */
  exactlyOnce?: boolean;
}

export interface CommitOffset {
  topic: string;
  partition: number;
  offset: string;
  metadata?: string;
}

export interface GroupConsumerHandlers {
  /** The group was joined (again): this member's id and its partitions. */
  joined(memberId: string, assignment: Assignment): void;
  /** Records of one partition, in offset order (never none); the next batch of it waits for this one. */
  batch(batch: FetchedBatch): Promise<void>;
  /**
   * A fetch of the partition held no records to hand out up to `lastOffset` (transaction markers,
   * aborted records): its position moved past them all the same.
   */
  skipped(topic: string, partition: number, lastOffset: bigint): void;
  /** The broker answered (a fetch, a heartbeat, a join, a commit). */
  contact(): void;
  /** The consumer failed; with restart true it goes on by itself (retrying, or started again). */
  crashed(error: unknown, restart: boolean): void;
}

export interface FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly ConsumedRecord[];
  /** Records the partition held after this batch's last one when it was fetched. */
  readonly lag: number;
  /** Keeps the group membership alive while the batch waits (backpressure, a registry outage). */
  heartbeat(): Promise<void>;
  /**
   * False once records of the batch may no longer be taken: the consumer is stopping, the
   * partition went to another member, or was sought elsewhere.
   */
  current(): boolean;
  /** Records up to and including `offset` are done with here: the next fetch starts after it. */
  resolve(offset: string): void;
}

/** Kafka's rule of thumb: heartbeats at most a third of the session timeout apart (3 s at most). */
export function heartbeatIntervalMs(sessionTimeoutMs: number): number {
  return Math.min(3_000, Math.floor(sessionTimeoutMs / 3));
}
