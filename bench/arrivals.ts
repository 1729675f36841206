/**
 * Records when each output record arrives at a consumer of the predictions topic. This is the
 * clock every throughput and latency number of the bench stops on: the moment a downstream
 * application could have read the prediction.
 *
 * The consumer runs in its own thread (arrivals-worker.ts). On the bench's main thread, the load
 * generator's produce calls and the garbage of a pre-encoded schedule of hundreds of thousands of
 * events stall the event loop for tens of ms at a time; a stamp taken there would count those
 * stalls as latency of the process under test. Values are kept raw and decoded only after the
 * measurement, so the recorder costs the machine as little as possible while it runs.
 */
import { Worker } from 'node:worker_threads';
import { sleep } from './child.js';
import { uniqueName } from './kafka.js';

export interface Arrival {
  /** Epoch ms at which the fetch holding the record was handed to the consumer. */
  at: number;
  value: Buffer | null;
}

/** workerData of the arrival thread. */
export interface ArrivalWorkerOptions {
  brokers: string[];
  group: string;
  topic: string;
  /** Int32Array view: [0] arrivals so far, [1] 1 once the group is joined. */
  shared: SharedArrayBuffer;
}

export type ArrivalWorkerRequest =
  { kind: 'collect'; id: number; from: number } | { kind: 'stop'; id: number };

export type ArrivalWorkerReply =
  | {
      kind: 'arrivals';
      id: number;
      /** Float64Array of stamps. */
      at: ArrayBuffer;
      /** Int32Array of value lengths, -1 for a null value. */
      lengths: ArrayBuffer;
      /** The values, back to back. */
      bytes: ArrayBuffer;
    }
  | { kind: 'stopped'; id: number }
  | { kind: 'failed'; id: number; message: string };

export class ArrivalRecorder {
  readonly group = uniqueName('arrivals');
  readonly #brokers: string[];
  readonly #state = new Int32Array(new SharedArrayBuffer(8));
  readonly #replies = new Map<number, (reply: ArrivalWorkerReply) => void>();
  readonly #arrivals: Arrival[] = [];
  #worker: Worker | undefined;
  #failure: Error | undefined;
  #next = 0;

  constructor(brokers: string[]) {
    this.#brokers = brokers;
  }

  /** Subscribes from the beginning and resolves once the group is joined, so no arrival is missed. */
  async start(topic: string, timeoutMs = 30_000): Promise<void> {
    const options: ArrivalWorkerOptions = {
      brokers: this.#brokers,
      group: this.group,
      topic,
      shared: this.#state.buffer,
    };
    const worker = new Worker(new URL('./arrivals-worker.js', import.meta.url), { workerData: options });
    this.#worker = worker;
    worker.on('message', (reply: ArrivalWorkerReply) => {
      if (reply.kind === 'failed' && reply.id === -1) this.#fail(new Error(reply.message));
      const waiter = this.#replies.get(reply.id);
      this.#replies.delete(reply.id);
      waiter?.(reply);
    });
    worker.on('error', (error) => this.#fail(error));
    worker.on('exit', (code) => this.#fail(new Error(`arrival thread exited (code ${code})`)));
    const deadline = performance.now() + timeoutMs;
    while (Atomics.load(this.#state, 1) !== 1) {
      if (this.#failure !== undefined) throw this.#failure;
      if (performance.now() > deadline)
        throw new Error(`arrival consumer did not join within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  get count(): number {
    return Atomics.load(this.#state, 0);
  }

  /**
   * Waits until `count` records arrived, or `until()` says to give up, or timeoutMs passed.
   * Resolves to whether the count was reached; rejects if the arrival thread failed.
   */
  async waitFor(count: number, timeoutMs: number, until: () => boolean = () => false): Promise<boolean> {
    // Deadlines run on the monotonic clock; only timestamps that cross processes use Date.now().
    const deadline = performance.now() + timeoutMs;
    while (this.count < count) {
      if (this.#failure !== undefined) throw this.#failure;
      if (performance.now() > deadline || until()) return false;
      await sleep(10);
    }
    return true;
  }

  /** Every arrival so far, in the order the consumer was handed them. */
  async arrivals(): Promise<readonly Arrival[]> {
    const reply = await this.#call({ kind: 'collect', id: this.#next++, from: this.#arrivals.length });
    if (reply.kind !== 'arrivals') throw new Error(`arrival thread: ${describe(reply)}`);
    const at = new Float64Array(reply.at);
    const lengths = new Int32Array(reply.lengths);
    const bytes = Buffer.from(reply.bytes);
    let offset = 0;
    for (let i = 0; i < at.length; i += 1) {
      const length = lengths[i]!;
      this.#arrivals.push({ at: at[i]!, value: length < 0 ? null : bytes.subarray(offset, offset + length) });
      offset += Math.max(0, length);
    }
    return this.#arrivals;
  }

  async stop(): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    this.#worker = undefined;
    if (this.#failure === undefined) {
      const reply = await this.#call({ kind: 'stop', id: this.#next++ }, worker);
      if (reply.kind === 'failed') this.#failure = new Error(`arrival thread: ${reply.message}`);
    }
    await worker.terminate();
  }

  #call(request: ArrivalWorkerRequest, worker = this.#worker): Promise<ArrivalWorkerReply> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (worker === undefined) return Promise.reject(new Error('arrival recorder is not running'));
    return new Promise((resolve) => {
      this.#replies.set(request.id, resolve);
      worker.postMessage(request);
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const message = error.message;
    for (const [id, waiter] of this.#replies) waiter({ kind: 'failed', id, message });
    this.#replies.clear();
  }
}

function describe(reply: ArrivalWorkerReply): string {
  return reply.kind === 'failed' ? reply.message : `unexpected reply ${reply.kind}`;
}
