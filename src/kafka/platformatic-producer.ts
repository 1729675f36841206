import { Producer, murmur2, type MessageToProduce } from '@platformatic/kafka';
import type { KafkaSettings } from './client.js';
import type { CommitOffset, GroupMembership } from './group-consumer.js';
import { platformaticOptions } from './platformatic-options.js';
import { commitOn, commitTopics } from './platformatic-requests.js';
import type { BatchProducer, ProducerBatch } from './producer-thread.js';
import type { OutRecord, RecordHeaders, TopicRecords } from './records.js';

type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;
type LibraryProducer = Producer<Buffer, Buffer, Buffer, Buffer>;

/** What one transaction commits: output records and the consumed offsets they complete. */
export interface TransactionBatch {
  /** Produce requests, in order (each within a request's byte limit). */
  requests: readonly TopicRecords[][];
  /** The group's offsets to commit with them (the next record to read), with metadata if any. */
  offsets: readonly CommitOffset[];
  /** The membership the offsets are committed under; the coordinator refuses a stale one. */
  group: GroupMembership;
}

/** A producer that writes records and consumed offsets in one Kafka transaction. */
export interface TransactionalProducer extends BatchProducer {
  commitTransaction(batch: TransactionBatch): Promise<void>;
}

export interface TransactionSettings {
  /** Unique per live process: a second process with the same id fences the first. */
  transactionalId: string;
  /** How long the broker lets an open transaction of this producer run before aborting it, ms. */
  timeoutMs: number;
}

/**
 * serve's producer on @platformatic/kafka: acks from every in-sync replica, existing topics only,
 * and the Java client's partitioning (murmur2 of the key; keyless records round-robin), so a key
 * lands in the same partition whichever client wrote it.
 */
export class PlatformaticProducer implements TransactionalProducer {
  readonly #settings: KafkaSettings;
  readonly #transactions: TransactionSettings | undefined;
  #producer: LibraryProducer;
  #next = 0;

  /**
   * With `transactions`, the producer is transactional (and idempotent): it writes through
   * commitTransaction() only.
   */
  constructor(settings: KafkaSettings, transactions?: TransactionSettings) {
    this.#settings = settings;
    this.#transactions = transactions;
    this.#producer = this.#create();
  }

  #create(): LibraryProducer {
    const transactions = this.#transactions;
    return new Producer({
      ...platformaticOptions(this.#settings),
      retries: 5,
      autocreateTopics: false,
      partitioner: (_message, key) =>
        key === undefined || key === null ? this.#next++ & 0x7fffffff : javaKeyHash(key),
      // The library takes the transaction timeout from its request timeout.
      ...(transactions === undefined
        ? {}
        : {
            idempotent: true,
            transactionalId: transactions.transactionalId,
            timeout: transactions.timeoutMs,
          }),
    });
  }

  async connect(): Promise<void> {
    await this.#producer.metadata({ topics: [] });
  }

  async disconnect(): Promise<void> {
    await this.#producer.close();
  }

  async sendBatch(batch: ProducerBatch): Promise<void> {
    if (this.#transactions !== undefined)
      throw new TypeError('a transactional producer sends in transactions only');
    const messages = toMessages(batch.topicMessages);
    if (messages.length === 0) return;
    await this.#producer.send({ messages, acks: batch.acks });
  }

  /**
   * One transaction: the records, then the offsets (AddOffsetsToTxn, then TxnOffsetCommit with the
   * group's generation and member id, so a member the group has moved on from is refused), then
   * the commit. On any failure the transaction is aborted; when even that fails, the producer is
   * made again under the same transactional id, which fences the old one and has the broker
   * abort its open transaction. Nothing of a failed call is ever committed.
   */
  async commitTransaction(batch: TransactionBatch): Promise<void> {
    if (this.#transactions === undefined) throw new TypeError('this producer is not transactional');
    const producer = this.#producer;
    const transaction = await producer.beginTransaction();
    try {
      for (const request of batch.requests) {
        const messages = toMessages(request);
        if (messages.length > 0) await transaction.send({ messages, acks: -1 });
      }
      if (batch.offsets.length > 0) {
        // The library reads only the group id of the consumer it is given.
        await transaction.addConsumer({ groupId: batch.group.groupId } as never);
        await this.#commitOffsets(producer, transaction.id, batch);
      }
      await transaction.commit();
    } catch (error) {
      try {
        await transaction.abort();
      } catch {
        await transaction.cancel().catch(() => undefined);
        this.#producer = this.#create();
        void producer.close(true).catch(() => undefined);
      }
      throw error;
    }
  }

  /** TxnOffsetCommit on the group's coordinator, with each partition's metadata (the library sends none). */
  async #commitOffsets(
    producer: LibraryProducer,
    transactionalId: string,
    batch: TransactionBatch,
  ): Promise<void> {
    const { group } = batch;
    await commitOn(producer, group.coordinatorId, 'TxnOffsetCommit', (api, connection, done) =>
      api(
        connection,
        transactionalId,
        group.groupId,
        producer.producerId!,
        producer.producerEpoch!,
        group.generationId,
        group.memberId,
        null,
        commitTopics(batch.offsets),
        done,
      ),
    );
  }
}

function toMessages(topicMessages: readonly TopicRecords[]): Message[] {
  const messages: Message[] = [];
  for (const { topic, messages: records } of topicMessages) {
    for (const record of records) messages.push(toMessage(topic, record));
  }
  return messages;
}

/**
 * The hash Java's client partitions a keyed record by (murmur2 with the sign bit cleared); the
 * partition is this modulo the partition count. The library's default keeps the sign bit.
 */
export function javaKeyHash(key: Buffer): number {
  return murmur2(key) & 0x7fffffff;
}

function bytes(data: Buffer | string): Buffer {
  return typeof data === 'string' ? Buffer.from(data) : data;
}

function toMessage(topic: string, record: OutRecord): Message {
  const message: Message = { topic };
  if (record.key !== undefined && record.key !== null) message.key = bytes(record.key);
  if (record.value !== null) message.value = bytes(record.value);
  if (record.partition !== undefined) message.partition = record.partition;
  if (record.timestamp !== undefined) message.timestamp = BigInt(record.timestamp);
  if (record.headers !== undefined) message.headers = headerMap(record.headers);
  return message;
}

/** Header names as bytes; a repeated name gets one entry per value (a Map key per Buffer object). */
function headerMap(headers: RecordHeaders): Map<Buffer, Buffer> {
  const map = new Map<Buffer, Buffer>();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const each of Array.isArray(value) ? value : [value]) map.set(Buffer.from(name), bytes(each));
  }
  return map;
}
