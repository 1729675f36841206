/**
 * Writes FeatureEvents to a requests topic: all at once before a drain (pre-fill), or at a steady
 * rate while the process under test runs (paced). Events are encoded through the registry with
 * Confluent framing, exactly as `streamscore produce` writes them, and always before the clock
 * of a measurement starts.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { CompressionTypes, type Message, type Producer } from 'kafkajs';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { EventGenerator } from '../src/produce/generator.js';
import { sleep } from './child.js';
import { round } from './stats.js';

/**
 * Records per pre-fill request (and at most per paced request). heavy events are ~3.4 kB; a request spread over 6 partitions stays
 * well under the broker's 1 MB record-batch limit.
 */
const FILL_CHUNK = 500;
/** Pre-fill requests in flight at once: enough to keep the broker busy, not enough to swamp it. */
const FILL_IN_FLIGHT = 4;
/** The paced producer's tick: each tick sends every event that became due since the last one. */
const PACE_TICK_MS = 5;
/**
 * Paced requests in flight at once. With one, the sender's rate is capped at FILL_CHUNK records per
 * produce round trip, and on a busy 2-core machine a round trip of 20-30 ms puts that cap below
 * the rates being measured: the sender falls behind by hundreds of ms and the lag is counted as
 * latency of the process under test.
 */
const PACE_IN_FLIGHT = 4;

export interface FillResult {
  count: number;
  seconds: number;
}

export async function prefill(
  producer: Producer,
  registry: SchemaRegistry,
  schemaId: number,
  topic: string,
  generator: EventGenerator,
  count: number,
): Promise<FillResult> {
  const started = performance.now();
  let made = 0;
  const nextChunk = async (): Promise<Message[] | undefined> => {
    if (made >= count) return undefined;
    const size = Math.min(FILL_CHUNK, count - made);
    made += size;
    const messages: Message[] = [];
    for (let i = 0; i < size; i += 1) {
      const event = generator.next();
      messages.push({ key: event.entity_key, value: await registry.encode(schemaId, event) });
    }
    return messages;
  };
  const worker = async (): Promise<void> => {
    for (let messages = await nextChunk(); messages; messages = await nextChunk()) {
      await producer.send({ topic, messages, acks: -1, compression: CompressionTypes.None });
    }
  };
  await Promise.all(Array.from({ length: FILL_IN_FLIGHT }, worker));
  return { count, seconds: (performance.now() - started) / 1_000 };
}

export interface Schedule {
  /** Epoch ms at which event 0 is due. */
  startsAt: number;
  rate: number;
  /** Pre-encoded events; event i carries event_time = startsAt + i / rate seconds. */
  messages: PackedMessages;
  /** request_id of event i, to find when it was actually sent. */
  ids: string[];
}

/** Extra time before the schedule starts, beyond the estimated encoding time, ms. */
const SCHEDULE_MARGIN_MS = 500;
/** Events encoded to estimate how long encoding the whole schedule takes. */
const PROBE_EVENTS = 200;

/**
 * Encodes every event of a paced run before it starts, so the load generator spends no CPU on
 * Avro while the process under test runs (on a small machine it would otherwise take the CPU
 * serve needs). Each event's event_time is the moment it is due to be sent: latency measured from
 * it includes any lag of the sender behind its schedule (no coordinated omission).
 */
export async function prepareSchedule(
  registry: SchemaRegistry,
  schemaId: number,
  generator: EventGenerator,
  rate: number,
  seconds: number,
): Promise<Schedule> {
  const total = Math.max(1, Math.round(rate * seconds));
  // The client's first encode with a schema id fetches the schema from the registry: timed, that
  // round trip would count as encoding, and the schedule would wait for it once per event.
  await registry.encode(schemaId, generator.next(Date.now()));
  const probeStarted = performance.now();
  const probe = Math.min(PROBE_EVENTS, total);
  for (let i = 0; i < probe; i += 1) await registry.encode(schemaId, generator.next(Date.now()));
  const perEventMs = (performance.now() - probeStarted) / probe;
  const startsAt = Math.ceil(Date.now() + perEventMs * total * 2 + SCHEDULE_MARGIN_MS);
  const messages = new PackedMessages(total);
  const ids: string[] = [];
  for (let i = 0; i < total; i += 1) {
    const event = generator.next(dueAt(startsAt, rate, i));
    messages.push(event.entity_key, await registry.encode(schemaId, event));
    ids.push(event.request_id);
  }
  return { startsAt, rate, messages, ids };
}

/** Epoch ms at which event i of a schedule is due: its event_time. */
export function dueAt(startsAt: number, rate: number, i: number): number {
  return Math.round(startsAt + (i * 1_000) / rate);
}

/** Bytes per chunk of a PackedMessages. */
const PACK_CHUNK_BYTES = 8 * 1_024 * 1_024;

/**
 * Keys and values of a schedule, back to back in a few large buffers, with their places in typed
 * arrays. A schedule of hundreds of thousands of events as Message objects (each with a key string
 * and a value Buffer) is millions of heap objects, and the garbage collector's passes over them
 * stall the sender for tens to hundreds of ms on a busy machine; packed, the heap holds a handful.
 * Message objects are made per request, and die young.
 */
export class PackedMessages {
  readonly #chunks: Buffer[] = [];
  readonly #chunk: Uint32Array;
  readonly #start: Uint32Array;
  readonly #keyLength: Uint32Array;
  readonly #valueLength: Uint32Array;
  #used = PACK_CHUNK_BYTES;
  #length = 0;

  constructor(capacity: number) {
    this.#chunk = new Uint32Array(capacity);
    this.#start = new Uint32Array(capacity);
    this.#keyLength = new Uint32Array(capacity);
    this.#valueLength = new Uint32Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  push(key: string, value: Buffer): void {
    const i = this.#length;
    if (i >= this.#chunk.length) throw new RangeError(`PackedMessages holds at most ${this.#chunk.length}`);
    const keyLength = Buffer.byteLength(key);
    const size = keyLength + value.length;
    if (this.#used + size > (this.#chunks.at(-1)?.length ?? 0)) {
      this.#chunks.push(Buffer.allocUnsafe(Math.max(PACK_CHUNK_BYTES, size)));
      this.#used = 0;
    }
    const chunk = this.#chunks.at(-1)!;
    chunk.write(key, this.#used);
    value.copy(chunk, this.#used + keyLength);
    this.#chunk[i] = this.#chunks.length - 1;
    this.#start[i] = this.#used;
    this.#keyLength[i] = keyLength;
    this.#valueLength[i] = value.length;
    this.#used += size;
    this.#length += 1;
  }

  /** Events from..to-1 as kafkajs messages (views into the chunks, no copies). */
  slice(from: number, to: number): Message[] {
    const messages: Message[] = [];
    for (let i = from; i < Math.min(to, this.#length); i += 1) {
      const chunk = this.#chunks[this.#chunk[i]!]!;
      const keyAt = this.#start[i]!;
      const valueAt = keyAt + this.#keyLength[i]!;
      messages.push({
        key: chunk.subarray(keyAt, valueAt),
        value: chunk.subarray(valueAt, valueAt + this.#valueLength[i]!),
      });
    }
    return messages;
  }
}

export interface PaceResult {
  sent: number;
  /** Epoch ms of the first event. */
  startedAt: number;
  seconds: number;
  /** How far the producer fell behind its schedule at worst, ms: large values mean the load was not steady. */
  maxLagMs: number;
  /** Epoch ms at which event i's send request was issued. */
  sentAt: Float64Array;
  /**
   * The bench process's own event-loop delay while sending, ms (max and p99): a sender lag with a
   * long loop delay means the bench itself was starved (GC, CPU), not that the broker was slow.
   */
  loopDelay: { max_ms: number; p99_ms: number };
}

/**
 * Sends a prepared schedule: every PACE_TICK_MS, whatever became due since the last send (by
 * schedule, not by a fixed sleep per send, so a slow send does not make the rate drift), with up
 * to PACE_IN_FLIGHT requests outstanding. Resolves once every request was acknowledged.
 */
export async function pace(producer: Producer, topic: string, schedule: Schedule): Promise<PaceResult> {
  const { startsAt, rate, messages } = schedule;
  const total = messages.length;
  const wait = startsAt - Date.now();
  if (wait > 0) await sleep(wait);
  let sent = 0;
  let maxLagMs = 0;
  const sentAt = new Float64Array(total);
  const inFlight = new Set<Promise<unknown>>();
  let failure: Error | undefined;
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  while (sent < total) {
    if (failure !== undefined) throw failure;
    const elapsed = Date.now() - startsAt;
    // Event i is due i / rate seconds after the start.
    const due = Math.min(total, Math.floor((elapsed / 1_000) * rate) + 1);
    if (due <= sent) {
      await sleep(PACE_TICK_MS);
      continue;
    }
    if (inFlight.size >= PACE_IN_FLIGHT) {
      await Promise.race(inFlight);
      continue;
    }
    maxLagMs = Math.max(maxLagMs, elapsed - (sent / rate) * 1_000);
    // A sender far behind its schedule catches up in requests of at most FILL_CHUNK records, so
    // no request outgrows the broker's limits.
    const upTo = Math.min(due, sent + FILL_CHUNK);
    sentAt.fill(Date.now(), sent, upTo);
    const request = producer
      .send({ topic, messages: messages.slice(sent, upTo), acks: -1, compression: CompressionTypes.None })
      .catch((error: unknown) => {
        failure ??= error instanceof Error ? error : new Error(String(error));
      })
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
    sent = upTo;
  }
  await Promise.all(inFlight);
  loop.disable();
  if (failure !== undefined) throw failure;
  const loopDelay = { max_ms: round(loop.max / 1e6, 1), p99_ms: round(loop.percentile(99) / 1e6, 1) };
  return { sent, startedAt: startsAt, seconds: (Date.now() - startsAt) / 1_000, maxLagMs, sentAt, loopDelay };
}
