import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';

export type ValueMetadata = ort.InferenceSession.ValueMetadata;

/** One output tensor of a run: its values (row-major) and shape. */
export interface TensorResult {
  data: ArrayLike<number | bigint>;
  dims: readonly number[];
}

export interface SessionOptions {
  executionProvider: string;
  threads: number;
}

/**
 * An ONNX Runtime session, in this thread or in a worker thread. onnxruntime-node runs a session
 * synchronously on the thread that owns it, so a session in the main thread stops Kafka I/O,
 * decoding and encoding for the length of every run; in a worker, those go on while the batch is
 * scored, and the main thread only copies the matrix over and the outputs back.
 */
export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueMetadata[];
  readonly outputMetadata: readonly ValueMetadata[];
  run(
    input: string,
    matrix: Float32Array,
    rows: number,
    width: number,
  ): Promise<Record<string, TensorResult>>;
  release(): Promise<void>;
}

export function ortOptions(options: SessionOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [options.executionProvider],
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // Failures reach our logs with their message; the runtime's own stderr lines would repeat them.
    logSeverityLevel: 4,
    // Idle pool threads sleep instead of spinning. Spinning only pays on cores nothing else wants;
    // here the main thread, the producer thread and often a broker want them (heavy model, 2
    // threads on 2 cores, same paced rate: serve used 0.65 cores without spinning, 0.9 with, and
    // the latency tail was lower). In isolation it is worth ~20% at batches of 1-8, nothing at 128+.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** Plain copies of the binding's metadata objects, so they survive a postMessage. */
export function plainMetadata(list: readonly ValueMetadata[]): ValueMetadata[] {
  return list.map((meta) =>
    meta.isTensor
      ? { name: meta.name, isTensor: true, type: meta.type, shape: [...meta.shape] }
      : { name: meta.name, isTensor: false },
  );
}

export async function openSession(
  bytes: Uint8Array,
  options: SessionOptions,
  inWorker: boolean,
): Promise<Session> {
  return inWorker ? WorkerSession.open(bytes, options) : InProcessSession.open(bytes, options);
}

class InProcessSession implements Session {
  readonly #session: ort.InferenceSession;

  private constructor(session: ort.InferenceSession) {
    this.#session = session;
  }

  static async open(bytes: Uint8Array, options: SessionOptions): Promise<Session> {
    return new InProcessSession(await ort.InferenceSession.create(bytes, ortOptions(options)));
  }

  get inputNames() {
    return this.#session.inputNames;
  }
  get outputNames() {
    return this.#session.outputNames;
  }
  get inputMetadata() {
    return this.#session.inputMetadata;
  }
  get outputMetadata() {
    return this.#session.outputMetadata;
  }

  async run(input: string, matrix: Float32Array, rows: number, width: number) {
    const results = await this.#session.run({ [input]: new ort.Tensor('float32', matrix, [rows, width]) });
    const outputs: Record<string, TensorResult> = {};
    for (const [name, tensor] of Object.entries(results)) {
      outputs[name] = { data: tensor.data as ArrayLike<number | bigint>, dims: tensor.dims };
    }
    return outputs;
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}

/** Messages from the worker (see session-worker.ts). */
export type WorkerReply =
  | {
      kind: 'ready';
      inputNames: string[];
      outputNames: string[];
      inputMetadata: ValueMetadata[];
      outputMetadata: ValueMetadata[];
    }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: Record<string, TensorResult> }
  | { kind: 'error'; id: number; message: string };

class WorkerSession implements Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueMetadata[];
  readonly outputMetadata: readonly ValueMetadata[];
  readonly #worker: Worker;
  readonly #pending = new Map<
    number,
    { resolve: (o: Record<string, TensorResult>) => void; reject: (e: Error) => void }
  >();
  #next = 0;
  #closed: Error | undefined;

  private constructor(worker: Worker, ready: Extract<WorkerReply, { kind: 'ready' }>) {
    this.#worker = worker;
    this.inputNames = ready.inputNames;
    this.outputNames = ready.outputNames;
    this.inputMetadata = ready.inputMetadata;
    this.outputMetadata = ready.outputMetadata;
    worker.on('message', (reply: WorkerReply) => {
      if (reply.kind !== 'result' && reply.kind !== 'error') return;
      const waiter = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      if (reply.kind === 'result') waiter?.resolve(reply.outputs);
      else waiter?.reject(new Error(reply.message));
    });
    const fail = (error: Error) => {
      this.#closed ??= error;
      for (const waiter of this.#pending.values()) waiter.reject(error);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`inference worker exited (code ${code})`)));
  }

  static open(bytes: Uint8Array, options: SessionOptions): Promise<Session> {
    const worker = new Worker(new URL('./session-worker.js', import.meta.url), {
      workerData: { bytes, options },
      // Tensors are off the JS heap (transferred buffers); the thread's own garbage is a few small
      // objects per batch, so V8's default young generation would only hold memory.
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) =>
        reject(new Error(`inference worker exited (code ${code}) while loading`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (reply: WorkerReply) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        if (reply.kind === 'ready') {
          resolve(new WorkerSession(worker, reply));
        } else {
          void worker.terminate();
          reject(
            new Error(reply.kind === 'failed' ? reply.message : 'unexpected reply from the inference worker'),
          );
        }
      });
    });
  }

  run(
    input: string,
    matrix: Float32Array,
    rows: number,
    width: number,
  ): Promise<Record<string, TensorResult>> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // The matrix is built for this call only, so its buffer moves to the worker instead of being copied.
      this.#worker.postMessage({ kind: 'run', id, input, matrix, rows, width }, [
        matrix.buffer as ArrayBuffer,
      ]);
    });
  }

  async release(): Promise<void> {
    this.#closed ??= new Error('session released');
    await this.#worker.terminate();
  }
}
