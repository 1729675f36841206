import { Producer, murmur2, type MessageToProduce } from '@platformatic/kafka';
import type { KafkaSettings } from './client.js';
import { platformaticOptions } from './platformatic-options.js';
import type { BatchProducer, ProducerBatch } from './producer-thread.js';
import type { OutRecord, RecordHeaders } from './records.js';

type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/**
 * serve's producer on @platformatic/kafka: acks from every in-sync replica, existing topics only,
 * and the Java client's partitioning (murmur2 of the key; keyless records round-robin), so a key
 * lands in the same partition whichever client wrote it.
 */
export class PlatformaticProducer implements BatchProducer {
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  #next = 0;

  constructor(settings: KafkaSettings) {
    this.#producer = new Producer({
      ...platformaticOptions(settings),
      retries: 5,
      autocreateTopics: false,
      partitioner: (_message, key) =>
        key === undefined || key === null ? this.#next++ & 0x7fffffff : javaKeyHash(key),
    });
  }

  async connect(): Promise<void> {
    await this.#producer.metadata({ topics: [] });
  }

  async disconnect(): Promise<void> {
    await this.#producer.close();
  }

  async sendBatch(batch: ProducerBatch): Promise<void> {
    const messages: Message[] = [];
    for (const { topic, messages: records } of batch.topicMessages) {
      for (const record of records) messages.push(toMessage(topic, record));
    }
    if (messages.length === 0) return;
    await this.#producer.send({ messages, acks: batch.acks });
  }
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
