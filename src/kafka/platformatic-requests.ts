/**
 * Requests @platformatic/kafka makes without a way to pass what serve needs (commit metadata; a
 * transactional offset commit of many partitions at once), made through the library's exported
 * hooks: a connection to a given broker and the API version it negotiated.
 */
import { kGetApi, kGetConnection } from '@platformatic/kafka';
import type { CommitOffset } from './group-consumer.js';

type Callback<T> = (error: Error | null | undefined, result: T) => void;

/** One partition of an OffsetCommit or TxnOffsetCommit request. */
export interface CommitPartition {
  partitionIndex: number;
  committedOffset: bigint;
  committedLeaderEpoch: number;
  committedMetadata: string | null;
}

export type CommitTopics = { name: string; partitions: CommitPartition[] }[];

interface CommitResponse {
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

/** The API functions used here, as the library's kGetApi hands them out. */
interface Apis {
  OffsetCommit: (
    connection: unknown,
    groupId: string,
    generationId: number,
    memberId: string,
    groupInstanceId: string | null,
    topics: CommitTopics,
    callback: Callback<CommitResponse>,
  ) => void;
  TxnOffsetCommit: (
    connection: unknown,
    transactionalId: string,
    groupId: string,
    producerId: bigint,
    producerEpoch: number,
    generationId: number,
    memberId: string,
    groupInstanceId: string | null,
    topics: CommitTopics,
    callback: Callback<CommitResponse>,
  ) => void;
}

/** A client of the library (Consumer, Producer): its metadata and its two exported hooks. */
interface Client {
  metadata(options: { topics: string[] }): Promise<{ brokers: Map<number, unknown> }>;
}

interface Hooks {
  [kGetConnection](broker: unknown, callback: Callback<unknown>): void;
  [kGetApi]<Name extends keyof Apis>(name: Name, callback: Callback<Apis[Name]>): void;
}

/** Offsets grouped by topic, as commit requests carry them. */
export function commitTopics(offsets: readonly CommitOffset[]): CommitTopics {
  const byTopic = new Map<string, { name: string; partitions: CommitPartition[] }>();
  for (const { topic, partition, offset, metadata } of offsets) {
    let entry = byTopic.get(topic);
    if (entry === undefined) byTopic.set(topic, (entry = { name: topic, partitions: [] }));
    entry.partitions.push({
      partitionIndex: partition,
      committedOffset: BigInt(offset),
      committedLeaderEpoch: -1,
      committedMetadata: metadata ?? null,
    });
  }
  return [...byTopic.values()];
}

/**
 * Sends a commit request to broker `nodeId` (the group's coordinator) and throws on the first
 * partition it refused; `send` makes the call with the connection and the API function.
 */
export async function commitOn<Name extends keyof Apis>(
  client: Client,
  nodeId: number,
  name: Name,
  send: (api: Apis[Name], connection: unknown, done: Callback<CommitResponse>) => void,
): Promise<void> {
  const hooks = client as unknown as Hooks;
  const metadata = await client.metadata({ topics: [] });
  const broker = metadata.brokers.get(nodeId);
  if (broker === undefined) throw new Error(`group coordinator ${nodeId} is not in the metadata`);
  const connection = await new Promise<unknown>((resolve, reject) =>
    hooks[kGetConnection](broker, (error, result) => (error ? reject(error) : resolve(result))),
  );
  const api = await new Promise<Apis[Name]>((resolve, reject) =>
    hooks[kGetApi](name, (error, result) => (error ? reject(error) : resolve(result))),
  );
  const response = await new Promise<CommitResponse>((resolve, reject) =>
    send(api, connection, (error, result) => (error ? reject(error) : resolve(result))),
  );
  for (const topic of response.topics) {
    for (const partition of topic.partitions) {
      if (partition.errorCode !== 0) {
        throw new Error(
          `${name} of ${topic.name}[${partition.partitionIndex}] refused (error code ${partition.errorCode})`,
        );
      }
    }
  }
}
