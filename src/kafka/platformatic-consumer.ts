import { Consumer, FetchIsolationLevels, ListOffsetTimestamps } from '@platformatic/kafka';
import { describeError } from '../errors.js';
import { hasErrorId } from './error-ids.js';
import type { Logger } from '../telemetry/logger.js';
import type { KafkaSettings } from './client.js';
import {
  heartbeatIntervalMs,
  type CommitOffset,
  type FetchedBatch,
  type GroupConsumer,
  type GroupConsumerHandlers,
  type GroupConsumerSettings,
  type GroupMembership,
} from './group-consumer.js';
import { platformaticOptions } from './platformatic-options.js';
import { commitOn, commitTopics } from './platformatic-requests.js';
import { StableOffsetReader } from './stable-offsets.js';
import type { ConsumedRecord, RecordHeaders } from './records.js';

/** Per partition and per fetch; as kafkajs's consumer in serve (see kafkajs-consumer.ts). */
const PARTITION_MAX_BYTES = 262_144;
const FETCH_MAX_BYTES = 4_194_304;
/** How long the broker may hold a fetch that has nothing to return, ms. */
const FETCH_MAX_WAIT_MS = 250;
/** While every partition is paused or none is assigned, the loop looks again this often, ms. */
const IDLE_WAIT_MS = 100;
/** After a batch nothing of which was taken (it is fetched again), ms. */
const UNRESOLVED_WAIT_MS = 20;
const MAX_BACKOFF_MS = 1_000;
/** A record batch's attribute bit for transaction markers. */
const CONTROL_BATCH = 0x20;

type PlatformaticConsumer = Consumer<Buffer, Buffer, Buffer, Buffer>;
type FetchResponse = Awaited<ReturnType<PlatformaticConsumer['fetch']>>;

/**
 * serve's group consumer on @platformatic/kafka. The library's group membership (join, sync,
 * heartbeats on its own timer, rejoin on a rebalance) and its fetch requests are used; the fetch
 * loop is our own, so that partitions are paused, resumed and sought one by one and records are
 * handed over a partition's batch at a time, which its message stream does not offer.
 *
 * Positions: a partition's next fetch offset is taken from the group's committed offset when it
 * is assigned (or the partition's start or end, by `fromBeginning`), moves past what intake
 * resolves after each batch, and is kept across rebalances for partitions that stay here; in
 * exactly-once mode every join looks every position up again, from offsets no transaction is
 * still committing to (OffsetFetch with require_stable).
 */
export class PlatformaticGroupConsumer implements GroupConsumer {
  readonly #settings: GroupConsumerSettings;
  readonly #consumer: PlatformaticConsumer;
  readonly #log: Logger;
  #handlers: GroupConsumerHandlers | undefined;
  /** The topic's partitions assigned to this member. */
  #assigned = new Set<number>();
  /** Next offset to fetch, per assigned partition; missing until looked up. */
  readonly #positions = new Map<number, bigint>();
  readonly #paused = new Set<number>();
  #pausedAll = false;
  /** Raised by every seek and loss of the partition: a batch fetched before is no longer current. */
  readonly #epochs = new Map<number, number>();
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #refreshMetadata = false;
  #rejoining: Promise<void> | undefined;
  #trouble: string | undefined;
  /** The generation and member id of the last join; cleared when the membership is in doubt. */
  #membership: { generationId: number; memberId: string } | undefined;
  readonly #kafkaSettings: KafkaSettings;
  /** Exactly-once: reads committed offsets no transaction is still committing to. */
  #stable: StableOffsetReader | undefined;

  constructor(settings: KafkaSettings, group: GroupConsumerSettings, logger: Logger) {
    this.#settings = group;
    this.#kafkaSettings = settings;
    this.#log = logger;
    this.#consumer = new Consumer({
      ...platformaticOptions(settings, { patient: true }),
      groupId: group.groupId,
      sessionTimeout: group.sessionTimeoutMs,
      heartbeatInterval: heartbeatIntervalMs(group.sessionTimeoutMs),
      rebalanceTimeout: Math.max(group.sessionTimeoutMs, 60_000),
      autocommit: false,
      minBytes: 1,
      maxBytes: FETCH_MAX_BYTES,
      maxWaitTime: FETCH_MAX_WAIT_MS,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    });
  }

  async start(handlers: GroupConsumerHandlers): Promise<void> {
    this.#handlers = handlers;
    const consumer = this.#consumer;
    consumer.on('consumer:group:join', (payload) => {
      const topic = this.#settings.topic;
      const partitions =
        (payload.assignments ?? consumer.assignments ?? []).find((a) => a.topic === topic)?.partitions ?? [];
      this.#assign(payload.memberId, partitions);
    });
    consumer.on('consumer:heartbeat:end', () => handlers.contact());
    // A rejoin that failed leaves the member out of the group: join again until it works.
    consumer.on('error', (error: unknown) => {
      if (this.#stopping) return;
      this.#membership = undefined;
      this.#trouble = describeError(error);
      handlers.crashed(error, true);
      this.#rejoin();
    });
    consumer.topics.track(this.#settings.topic);
    await consumer.joinGroup({});
    handlers.contact();
    this.#loop = this.#run();
  }

  trouble(): string | undefined {
    return this.#trouble;
  }

  group(): GroupMembership | undefined {
    const membership = this.#membership;
    const coordinatorId = this.#consumer.coordinatorId;
    if (membership === undefined || coordinatorId === null || coordinatorId === undefined) return undefined;
    return { groupId: this.#consumer.groupId, coordinatorId, ...membership };
  }

  pause(partitions?: readonly number[]): void {
    if (partitions === undefined) this.#pausedAll = true;
    else for (const partition of partitions) this.#paused.add(partition);
  }

  resume(partitions: readonly number[]): void {
    for (const partition of partitions) this.#paused.delete(partition);
    this.#wake?.();
  }

  seek(partition: number, offset: bigint): void {
    this.#positions.set(partition, offset);
    this.#bump(partition);
  }

  /**
   * The library's own commit always sends empty metadata, which bounded replays store their
   * ranges in; so the OffsetCommit request is made here, on the group's coordinator.
   */
  async commit(offsets: readonly CommitOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    const consumer = this.#consumer;
    const coordinator = await consumer.findGroupCoordinator();
    await commitOn(consumer, coordinator, 'OffsetCommit', (api, connection, done) =>
      api(
        connection,
        consumer.groupId,
        consumer.generationId,
        consumer.memberId ?? '',
        null,
        commitTopics(offsets),
        done,
      ),
    );
    this.#handlers?.contact();
  }

  async disconnect(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await new Promise<void>((resolve) => this.#consumer.leaveGroup(false, () => resolve()));
    await this.#consumer.close(true);
    await this.#stable?.close().catch(() => undefined);
    await this.#loop;
  }

  #assign(memberId: string, partitions: readonly number[]): void {
    const next = new Set(partitions);
    this.#membership = { generationId: this.#consumer.generationId, memberId };
    for (const partition of this.#assigned) {
      if (next.has(partition) && this.#settings.exactlyOnce !== true) continue;
      this.#positions.delete(partition);
      this.#paused.delete(partition);
      this.#bump(partition);
    }
    if (this.#settings.exactlyOnce === true) {
      // Whatever was fetched under the last generation is dropped: every position is looked up again.
      for (const partition of next) {
        this.#positions.delete(partition);
        this.#bump(partition);
      }
    }
    this.#assigned = next;
    this.#log.debug({ memberId, partitions, generation: this.#consumer.generationId }, 'group joined');
    this.#handlers?.joined(memberId, { [this.#settings.topic]: [...partitions] });
    this.#wake?.();
  }

  #epoch(partition: number): number {
    return this.#epochs.get(partition) ?? 0;
  }

  #bump(partition: number): void {
    this.#epochs.set(partition, this.#epoch(partition) + 1);
  }

  #rejoin(): void {
    if (this.#rejoining !== undefined) return;
    this.#rejoining = (async () => {
      let wait = 100;
      while (!this.#stopping) {
        await this.#sleep(wait);
        try {
          await this.#consumer.joinGroup({});
          return;
        } catch (error) {
          this.#handlers?.crashed(error, true);
          wait = Math.min(wait * 2, MAX_BACKOFF_MS);
        }
      }
    })().finally(() => (this.#rejoining = undefined));
  }

  async #run(): Promise<void> {
    let backoff = 100;
    while (!this.#stopping) {
      const wanted = this.#pausedAll
        ? []
        : [...this.#assigned].filter((partition) => !this.#paused.has(partition));
      if (wanted.length === 0) {
        await this.#sleep(IDLE_WAIT_MS);
        continue;
      }
      try {
        await this.#fetchOnce(wanted);
        backoff = 100;
      } catch (error) {
        if (this.#stopping) break;
        this.#refreshMetadata = true;
        this.#trouble = describeError(error);
        this.#log.debug({ err: error }, `fetch failed, retrying in ${backoff} ms: ${this.#trouble}`);
        this.#handlers?.crashed(error, true);
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  async #fetchOnce(partitions: readonly number[]): Promise<void> {
    const topic = this.#settings.topic;
    await this.#lookUpPositions(partitions);
    const metadata = await this.#consumer.metadata({ topics: [topic], forceUpdate: this.#refreshMetadata });
    this.#refreshMetadata = false;
    const info = metadata.topics.get(topic);
    if (info === undefined) throw new Error(`topic ${topic} is not in the metadata`);
    const byNode = new Map<number, FetchPartition[]>();
    for (const partition of partitions) {
      const position = this.#positions.get(partition);
      const leader = info.partitions[partition];
      if (position === undefined || leader === undefined) continue;
      let list = byNode.get(leader.leader);
      if (list === undefined) byNode.set(leader.leader, (list = []));
      list.push({
        partition,
        fetchOffset: position,
        partitionMaxBytes: PARTITION_MAX_BYTES,
        currentLeaderEpoch: leader.leaderEpoch,
        lastFetchedEpoch: -1,
      });
    }
    if (byNode.size === 0) {
      await this.#sleep(IDLE_WAIT_MS);
      return;
    }
    await Promise.all(
      [...byNode].map(async ([node, requested]) => {
        const epochs = new Map(requested.map(({ partition }) => [partition, this.#epoch(partition)]));
        let response: FetchResponse;
        try {
          response = await this.#consumer.fetch({
            node,
            topics: [{ topicId: info.id, partitions: requested }],
          });
        } catch (error) {
          if (!(await this.#recoverOutOfRange(error, requested))) throw error;
          return;
        }
        this.#handlers?.contact();
        await this.#deliver(response, requested, epochs);
      }),
    );
  }

  /** Hands each partition's records to intake, all partitions at once, and moves positions on. */
  async #deliver(
    response: FetchResponse,
    requested: readonly FetchPartition[],
    epochs: ReadonlyMap<number, number>,
  ): Promise<void> {
    const topic = this.#settings.topic;
    const handlers = this.#handlers!;
    const fetchedAt = new Map(requested.map(({ partition, fetchOffset }) => [partition, fetchOffset]));
    const work: Promise<void>[] = [];
    let unresolved = false;
    for (const topicResponse of response.responses) {
      for (const answer of topicResponse.partitions) {
        const partition = answer.partitionIndex;
        const from = fetchedAt.get(partition);
        // A partition still in the broker's fetch session but not asked for this time.
        if (from === undefined || !answer.records?.length) continue;
        const epoch = epochs.get(partition);
        const current = () =>
          !this.#stopping && this.#assigned.has(partition) && this.#epoch(partition) === epoch;
        const records: ConsumedRecord[] = [];
        let last = from - 1n;
        for (const batch of answer.records) {
          const end = batch.firstOffset + BigInt(batch.lastOffsetDelta);
          if (end > last) last = end;
          if ((batch.attributes & CONTROL_BATCH) !== 0) continue;
          for (const record of batch.records) {
            const offset = batch.firstOffset + BigInt(record.offsetDelta);
            if (offset < from) continue;
            records.push(new FetchedRecord(record, offset, batch.firstTimestamp));
          }
        }
        if (records.length === 0) {
          if (last >= from && current()) {
            this.#positions.set(partition, last + 1n);
            handlers.skipped(topic, partition, last);
          }
          continue;
        }
        let resolved: bigint | undefined;
        const highWatermark = answer.highWatermark;
        const batch: FetchedBatch = {
          topic,
          partition,
          records,
          lag: Math.max(0, Number(highWatermark - 1n - BigInt(records[records.length - 1]!.offset))),
          heartbeat: () => Promise.resolve(),
          current,
          resolve: (offset) => {
            resolved = BigInt(offset);
          },
        };
        work.push(
          handlers.batch(batch).then(() => {
            if (!current()) return;
            if (resolved === undefined) unresolved = true;
            else this.#positions.set(partition, resolved + 1n);
          }),
        );
      }
    }
    await Promise.all(work);
    if (unresolved) await this.#sleep(UNRESOLVED_WAIT_MS);
  }

  /** Partitions without a position take the group's committed offset, or start/end without one. */
  async #lookUpPositions(partitions: readonly number[]): Promise<void> {
    const topic = this.#settings.topic;
    const missing = partitions.filter((partition) => !this.#positions.has(partition));
    if (missing.length === 0) return;
    const epochs = new Map(missing.map((partition) => [partition, this.#epoch(partition)]));
    const offsets =
      this.#settings.exactlyOnce === true
        ? await this.#stableCommittedOffsets(missing)
        : ((await this.#consumer.listCommittedOffsets({ topics: [{ topic, partitions: missing }] })).get(
            topic,
          ) ?? []);
    const uncommitted = missing.filter((partition) => (offsets[partition] ?? -1n) < 0n);
    let reset: bigint[] = [];
    if (uncommitted.length > 0) {
      const listed = await this.#consumer.listOffsets({
        topics: [topic],
        partitions: { [topic]: uncommitted },
        timestamp: this.#settings.fromBeginning ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
      });
      reset = listed.get(topic) ?? [];
    }
    for (const partition of missing) {
      // Assigned elsewhere or sought meanwhile: that position stands.
      if (!this.#assigned.has(partition) || this.#epoch(partition) !== epochs.get(partition)) continue;
      if (this.#positions.has(partition)) continue;
      const offset = (offsets[partition] ?? -1n) >= 0n ? offsets[partition]! : reset[partition];
      if (offset !== undefined && offset >= 0n) this.#positions.set(partition, offset);
    }
    this.#log.debug(
      { partitions: missing, positions: missing.map((p) => this.#positions.get(p)?.toString() ?? null) },
      'fetch positions looked up',
    );
  }

  /** The group's committed offsets of the partitions (-1 where none), once no transaction commits them. */
  async #stableCommittedOffsets(partitions: readonly number[]): Promise<bigint[]> {
    this.#stable ??= new StableOffsetReader(this.#kafkaSettings);
    const committed = await this.#stable.read(this.#settings.groupId, this.#settings.topic);
    return partitions.reduce<bigint[]>((offsets, partition) => {
      offsets[partition] = committed.get(partition)?.offset ?? -1n;
      return offsets;
    }, []);
  }

  /**
   * A partition whose position is no longer in the log (deleted by retention) is read again from
   * its start or its end, by `fromBeginning`, as Kafka's auto.offset.reset does.
   */
  async #recoverOutOfRange(error: unknown, requested: readonly FetchPartition[]): Promise<boolean> {
    if (!hasErrorId(error, 'OFFSET_OUT_OF_RANGE')) return false;
    const topic = this.#settings.topic;
    const list = async (timestamp: bigint) =>
      (
        await this.#consumer.listOffsets({
          topics: [topic],
          partitions: { [topic]: requested.map(({ partition }) => partition) },
          timestamp,
        })
      ).get(topic) ?? [];
    const [earliest, latest] = [
      await list(ListOffsetTimestamps.EARLIEST),
      await list(ListOffsetTimestamps.LATEST),
    ];
    for (const { partition, fetchOffset } of requested) {
      const low = earliest[partition];
      const high = latest[partition];
      if (low === undefined || high === undefined || (fetchOffset >= low && fetchOffset <= high)) continue;
      if (this.#positions.get(partition) !== fetchOffset) continue; // sought meanwhile
      const reset = this.#settings.fromBeginning ? low : high;
      this.#log.warn(
        { topic, partition, from: fetchOffset.toString(), to: reset.toString() },
        'fetch position is no longer in the log; reading on from the reset position',
      );
      this.#positions.set(partition, reset);
    }
    return true;
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#stopping) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }
}

interface FetchPartition {
  partition: number;
  fetchOffset: bigint;
  partitionMaxBytes: number;
  currentLeaderEpoch: number;
  lastFetchedEpoch: number;
}

type RawRecord = NonNullable<
  FetchResponse['responses'][number]['partitions'][number]['records']
>[number]['records'][number];

/**
 * A fetched record as serve reads it. Its timestamp and headers are converted when asked for:
 * most records are only decoded, and their headers are read only for a dead letter.
 */
class FetchedRecord implements ConsumedRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly offset: string;
  readonly #raw: RawRecord;
  readonly #batchTimestamp: bigint;
  #headers: RecordHeaders | undefined | null = null;

  constructor(raw: RawRecord, offset: bigint, batchTimestamp: bigint) {
    this.key = raw.key;
    this.value = raw.value;
    this.offset = offset.toString();
    this.#raw = raw;
    this.#batchTimestamp = batchTimestamp;
  }

  get timestamp(): string {
    return (this.#batchTimestamp + this.#raw.timestampDelta).toString();
  }

  get headers(): RecordHeaders | undefined {
    if (this.#headers === null) this.#headers = headersOf(this.#raw.headers);
    return this.#headers;
  }
}

/** Kafka's header list as serve's headers: names as text, a repeated name's values in an array. */
function headersOf(
  list: readonly (readonly [Buffer | null, Buffer | null])[] | null | undefined,
): RecordHeaders | undefined {
  if (list === null || list === undefined || list.length === 0) return undefined;
  const headers: RecordHeaders = {};
  for (const [name, value] of list) {
    if (name === null) continue;
    const key = name.toString();
    const previous = headers[key];
    const each = value ?? undefined;
    if (previous === undefined && !(key in headers)) headers[key] = each;
    else if (Array.isArray(previous)) {
      if (each !== undefined) previous.push(each);
    } else {
      headers[key] = [previous, each].filter((v): v is Buffer | string => v !== undefined);
    }
  }
  return headers;
}
