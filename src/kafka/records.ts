/**
 * Kafka records as serve handles them, the same whichever Kafka client fetched or sends them
 * (STREAMSCORE_KAFKA_CLIENT). The shapes are kafkajs's, so its records need no copying; other
 * clients' records are converted at the edge (kafka/platformatic-*.ts).
 */

/** Header values by name; a name given more than once has an array of values. */
export interface RecordHeaders {
  [name: string]: Buffer | string | (Buffer | string)[] | undefined;
}

/** A record read from a partition. */
export interface ConsumedRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: RecordHeaders | undefined;
  /** The record's offset, as a decimal string (offsets can pass 2^53). */
  offset: string;
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string;
}

/** A record to send; its partition comes from the key (the Java client's murmur2 hashing). */
export interface OutRecord {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: RecordHeaders | undefined;
  partition?: number;
  timestamp?: string;
}

/** Records for one topic, in the order they are to be written per partition. */
export interface TopicRecords {
  topic: string;
  messages: OutRecord[];
}
