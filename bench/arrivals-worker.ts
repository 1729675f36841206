/**
 * The arrival consumer's thread (see arrivals.ts). It does nothing but consume one topic and stamp
 * each fetch with the time it was handed over, so neither the bench's load generator nor its
 * garbage collection can delay the stamps. The count of arrivals and whether the group was joined
 * are shared through a SharedArrayBuffer; the arrivals themselves cross only when asked for.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Kafka, logLevel } from 'kafkajs';
import type { ArrivalWorkerOptions, ArrivalWorkerReply, ArrivalWorkerRequest } from './arrivals.js';

const port = parentPort!;
const { brokers, group, topic, shared } = workerData as ArrivalWorkerOptions;
const state = new Int32Array(shared);
const stamps: number[] = [];
const values: (Buffer | null)[] = [];

const consumer = new Kafka({ clientId: 'streamscore-bench-arrivals', brokers, logLevel: logLevel.NOTHING })
  // A short broker wait: an idle fetch returns soon, and one with data returns at once anyway.
  // read_committed (kafkajs's default, stated here): a transactional producer's records arrive
  // when its transaction commits, as a downstream reader sees them, and aborted ones never.
  .consumer({ groupId: group, maxWaitTimeInMs: 100, readUncommitted: false });

consumer.on(consumer.events.GROUP_JOIN, () => Atomics.store(state, 1, 1));

async function start(): Promise<void> {
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: 8,
    eachBatch: ({ batch }) => {
      const at = Date.now();
      for (const message of batch.messages) {
        stamps.push(at);
        values.push(message.value);
      }
      Atomics.store(state, 0, stamps.length);
      return Promise.resolve();
    },
  });
}

/** Arrivals from `from` on, packed into three transferable buffers. */
function collect(id: number, from: number): Extract<ArrivalWorkerReply, { kind: 'arrivals' }> {
  const count = stamps.length - from;
  const at = new Float64Array(count);
  const lengths = new Int32Array(count);
  let total = 0;
  for (let i = 0; i < count; i += 1) {
    at[i] = stamps[from + i]!;
    const value = values[from + i];
    lengths[i] = value === null || value === undefined ? -1 : value.length;
    total += Math.max(0, lengths[i]!);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < count; i += 1) {
    const value = values[from + i];
    if (value === null || value === undefined) continue;
    bytes.set(value, offset);
    offset += value.length;
  }
  return { kind: 'arrivals', id, at: at.buffer, lengths: lengths.buffer, bytes: bytes.buffer };
}

port.on('message', (request: ArrivalWorkerRequest) => {
  if (request.kind === 'collect') {
    const reply = collect(request.id, request.from);
    port.postMessage(reply, [reply.at, reply.lengths, reply.bytes]);
    return;
  }
  consumer.disconnect().then(
    () => port.postMessage({ kind: 'stopped', id: request.id } satisfies ArrivalWorkerReply),
    (error: unknown) =>
      port.postMessage({
        kind: 'failed',
        id: request.id,
        message: String(error),
      } satisfies ArrivalWorkerReply),
  );
});

start().catch((error: unknown) => {
  port.postMessage({
    kind: 'failed',
    id: -1,
    message: error instanceof Error ? error.message : String(error),
  } satisfies ArrivalWorkerReply);
});
