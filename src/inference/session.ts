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

/** A model as the runtime takes it: the ONNX file's bytes and those of every external-data file. */
export interface ModelImage {
  bytes: Uint8Array;
  /** Keyed by the `location` each tensor names, as written in the model. */
  externalData: readonly { path: string; data: Uint8Array }[];
}

/**
 * The runtime reads external data from this table when it is not empty, and refuses a location
 * missing from it; when it is empty, the runtime opens the files itself, relative to the working
 * directory for a model given as bytes. So the table is never empty: a model without external data
 * gets one entry that no tensor names, and the runtime never opens a file.
 */
const NO_EXTERNAL_DATA = [{ path: 'streamscore:no-external-data', data: new Uint8Array(1) }];

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

export function ortOptions(
  options: SessionOptions,
  externalData: ModelImage['externalData'],
): ort.InferenceSession.SessionOptions {
  return {
    externalData: externalData.length > 0 ? externalData : NO_EXTERNAL_DATA,
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

export interface SessionHooks {
  /** Called with each worker thread as it starts (the first, and each restart). */
  onWorker?: (worker: Worker) => void;
  /** Called when a worker thread that died was replaced. */
  onRestart?: () => void;
}

export async function openSession(
  model: ModelImage,
  options: SessionOptions,
  inWorker: boolean,
  hooks: SessionHooks = {},
): Promise<Session> {
  return inWorker ? WorkerSession.open(model, options, hooks) : InProcessSession.open(model, options);
}

/**
 * The session's worker thread died (it exited or threw) while a run was in flight: the run says
 * nothing about its data. The next run starts a new thread with the same model.
 */
export class SessionLostError extends Error {
  override readonly name = 'SessionLostError';
  readonly retriable = true;
}

class InProcessSession implements Session {
  readonly #session: ort.InferenceSession;

  private constructor(session: ort.InferenceSession) {
    this.#session = session;
  }

  static async open(model: ModelImage, options: SessionOptions): Promise<Session> {
    return new InProcessSession(
      await ort.InferenceSession.create(model.bytes, ortOptions(options, model.externalData)),
    );
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

type Waiter = { resolve: (outputs: Record<string, TensorResult>) => void; reject: (error: Error) => void };

/** One worker thread with the session loaded, and the runs waiting for it. */
interface Thread {
  worker: Worker;
  pending: Map<number, Waiter>;
}

class WorkerSession implements Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueMetadata[];
  readonly outputMetadata: readonly ValueMetadata[];
  readonly #model: ModelImage;
  readonly #options: SessionOptions;
  readonly #hooks: SessionHooks;
  /** The live thread; undefined after it died, until the next run starts another. */
  #thread: Thread | undefined;
  #starting: Promise<Thread> | undefined;
  #next = 0;
  #released = false;

  private constructor(
    model: ModelImage,
    options: SessionOptions,
    hooks: SessionHooks,
    thread: Thread,
    ready: Extract<WorkerReply, { kind: 'ready' }>,
  ) {
    this.#model = model;
    this.#options = options;
    this.#hooks = hooks;
    this.inputNames = ready.inputNames;
    this.outputNames = ready.outputNames;
    this.inputMetadata = ready.inputMetadata;
    this.outputMetadata = ready.outputMetadata;
    this.#adopt(thread);
  }

  static async open(model: ModelImage, options: SessionOptions, hooks: SessionHooks): Promise<Session> {
    const { thread, ready } = await startThread(model, options, hooks);
    return new WorkerSession(model, options, hooks, thread, ready);
  }

  /** Routes a thread's replies, and forgets it (failing its runs) when it dies. */
  #adopt(thread: Thread): void {
    this.#thread = thread;
    thread.worker.on('message', (reply: WorkerReply) => {
      if (reply.kind !== 'result' && reply.kind !== 'error') return;
      const waiter = thread.pending.get(reply.id);
      thread.pending.delete(reply.id);
      if (reply.kind === 'result') waiter?.resolve(reply.outputs);
      else waiter?.reject(new Error(reply.message));
    });
    const lost = (cause: string) => {
      if (this.#thread === thread) this.#thread = undefined;
      const error = new SessionLostError(`inference worker ${cause}`);
      for (const waiter of thread.pending.values()) waiter.reject(error);
      thread.pending.clear();
    };
    thread.worker.on('error', (error) => lost(`failed: ${error.message}`));
    thread.worker.on('exit', (code) => lost(`exited (code ${code})`));
  }

  async #live(): Promise<Thread> {
    if (this.#thread !== undefined) return this.#thread;
    this.#starting ??= startThread(this.#model, this.#options, this.#hooks)
      .then(({ thread }) => {
        if (this.#released) {
          void thread.worker.terminate();
          throw new Error('session released');
        }
        this.#adopt(thread);
        this.#hooks.onRestart?.();
        return thread;
      })
      .finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  async run(
    input: string,
    matrix: Float32Array,
    rows: number,
    width: number,
  ): Promise<Record<string, TensorResult>> {
    if (this.#released) throw new Error('session released');
    const thread = await this.#live();
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      // The matrix is built for this call only, so its buffer moves to the worker instead of being copied.
      thread.worker.postMessage({ kind: 'run', id, input, matrix, rows, width }, [
        matrix.buffer as ArrayBuffer,
      ]);
    });
  }

  async release(): Promise<void> {
    this.#released = true;
    const thread = this.#thread;
    this.#thread = undefined;
    await this.#starting?.catch(() => undefined);
    await thread?.worker.terminate();
  }
}

function startThread(
  model: ModelImage,
  options: SessionOptions,
  hooks: SessionHooks,
): Promise<{ thread: Thread; ready: Extract<WorkerReply, { kind: 'ready' }> }> {
  const worker = new Worker(new URL('./session-worker.js', import.meta.url), {
    workerData: { model, options },
    // Tensors are off the JS heap (transferred buffers); the thread's own garbage is a few small
    // objects per batch, so V8's default young generation would only hold memory.
    resourceLimits: { maxYoungGenerationSizeMb: 4 },
  });
  hooks.onWorker?.(worker);
  return new Promise((resolve, reject) => {
    const onExit = (code: number) =>
      reject(new Error(`inference worker exited (code ${code}) while loading`));
    worker.once('error', reject);
    worker.once('exit', onExit);
    worker.once('message', (reply: WorkerReply) => {
      worker.off('error', reject);
      worker.off('exit', onExit);
      if (reply.kind === 'ready') {
        resolve({ thread: { worker, pending: new Map() }, ready: reply });
      } else {
        void worker.terminate();
        reject(
          new Error(reply.kind === 'failed' ? reply.message : 'unexpected reply from the inference worker'),
        );
      }
    });
  });
}
