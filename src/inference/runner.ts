import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { StreamscoreError, describeError } from '../errors.js';
import type { ModelMetadata, ModelVersion } from './model.js';
import {
  SessionLostError,
  openSession,
  type Session,
  type SessionHooks,
  type TensorResult,
  type ValueMetadata,
} from './session.js';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface RunnerOptions {
  executionProvider: ExecutionProvider;
  /** Intra-op threads; 0 lets ONNX Runtime choose. */
  threads: number;
  /** Run the session in a worker thread (see session.ts); false keeps it in this thread. */
  worker?: boolean;
  /** Told about worker threads (see session.ts). */
  hooks?: SessionHooks;
}

/** Output name -> one value per row. */
export type BatchOutputs = Map<string, Float64Array>;

/**
 * One loaded model version. score() takes a row-major float32 matrix (rows x features, in the
 * order of metadata.inputs[0].features) and returns every declared output, one value per row.
 */
export class ModelRunner {
  readonly metadata: ModelMetadata;
  readonly featureNames: readonly string[];
  readonly #session: Session;
  readonly #inputName: string;

  private constructor(metadata: ModelMetadata, session: Session) {
    this.metadata = metadata;
    this.featureNames = Object.freeze([...metadata.inputs[0]!.features]);
    this.#session = session;
    this.#inputName = metadata.inputs[0]!.tensor;
  }

  static async load(model: ModelVersion, options: RunnerOptions): Promise<ModelRunner> {
    const { metadata } = model;
    const context = { model: metadata.name, version: metadata.version, path: model.modelPath };
    assertProviderAvailable(options.executionProvider);
    let session: Session;
    try {
      session = await openSession(
        model,
        { executionProvider: options.executionProvider, threads: options.threads },
        options.worker ?? false,
        options.hooks,
      );
    } catch (error) {
      // The runtime's own words are the reason: they name the operator, tensor or file at fault.
      throw new StreamscoreError(
        'MODEL_INVALID',
        `ONNX Runtime cannot load ${model.modelPath}: ${describeError(error)}`,
        {
          cause: error,
          context: { ...context, reason: 'load' },
        },
      );
    }
    const runner = new ModelRunner(metadata, session);
    try {
      runner.#checkSignature();
      // Warm-up: the first run allocates and is slow; it also proves the outputs are finite.
      const outputs = await runner.score(new Float32Array(runner.featureNames.length * 2), 2);
      for (const [name, values] of outputs) {
        if (!values.every(Number.isFinite)) {
          throw new StreamscoreError('MODEL_INVALID', `warm-up output "${name}" is not finite`, {
            context: { ...context, reason: 'warmup' },
          });
        }
      }
    } catch (error) {
      await session.release();
      if (error instanceof StreamscoreError && error.code === 'MODEL_INVALID') throw error;
      throw new StreamscoreError(
        'MODEL_INVALID',
        `Warm-up run of ${metadata.name}/${metadata.version} failed`,
        {
          cause: error,
          context: { ...context, reason: 'warmup' },
        },
      );
    }
    return runner;
  }

  async score(matrix: Float32Array, rows: number): Promise<BatchOutputs> {
    const width = this.featureNames.length;
    if (matrix.length !== rows * width) {
      throw new RangeError(`score: matrix has ${matrix.length} values, expected ${rows} x ${width}`);
    }
    let results: Record<string, TensorResult>;
    try {
      results = await this.#session.run(this.#inputName, matrix, rows, width);
    } catch (error) {
      const lost = error instanceof SessionLostError;
      throw new StreamscoreError(
        'INFERENCE_FAILED',
        lost
          ? `the inference worker of ${this.metadata.name}/${this.metadata.version} died during a batch of ${rows} rows: ${error.message}`
          : `ONNX Runtime failed on a batch of ${rows} rows: ${describeError(error)}`,
        {
          cause: error,
          retriable: lost,
          context: { model: this.metadata.name, version: this.metadata.version },
        },
      );
    }
    const outputs: BatchOutputs = new Map();
    for (const output of this.metadata.outputs) {
      const tensor = results[output.tensor];
      if (tensor === undefined)
        throw new Error(`output tensor "${output.tensor}" missing from the run's results`);
      outputs.set(output.name, columnOf(tensor, output.column, rows));
    }
    return outputs;
  }

  /**
   * Whether the version still scores a batch of zeros of this size with finite outputs (zeros, as in
   * the warm-up that every version passed): when it does not, a failure is the version's, not the
   * data's.
   */
  async probe(rows: number): Promise<boolean> {
    try {
      const outputs = await this.score(new Float32Array(rows * this.featureNames.length), rows);
      for (const values of outputs.values()) if (!values.every(Number.isFinite)) return false;
      return true;
    } catch (error) {
      if (error instanceof StreamscoreError && error.code === 'INFERENCE_FAILED') return false;
      throw error;
    }
  }

  async release(): Promise<void> {
    await this.#session.release();
  }

  /**
   * The graph must take what model.json says it takes (one float32 [batch, features] input, batch
   * dynamic) and give every output it names, with the declared column in range and dtype.
   */
  #checkSignature(): void {
    const problems: string[] = [];
    const context = { model: this.metadata.name, version: this.metadata.version };
    const inputs = this.#session.inputMetadata;
    const input = inputs.find((meta) => meta.name === this.#inputName);
    if (input === undefined) {
      problems.push(
        `input "${this.#inputName}" not in the model (it has ${this.#session.inputNames.join(', ')})`,
      );
    } else if (!input.isTensor || input.type !== 'float32') {
      problems.push(
        `input "${this.#inputName}" must be a float32 tensor, the model has ${describeValue(input)}`,
      );
    } else if (input.shape.length !== 2) {
      problems.push(
        `input "${this.#inputName}" must be 2-D [batch, features], the model has shape [${input.shape.join(', ')}]`,
      );
    } else {
      const [batch, width] = input.shape;
      if (typeof batch === 'number' && batch > 0) {
        problems.push(
          `input "${this.#inputName}" has a fixed batch size ${batch}; the batch dimension must be dynamic`,
        );
      }
      if (typeof width === 'number' && width > 0 && width !== this.featureNames.length) {
        problems.push(
          `input "${this.#inputName}" takes ${width} features, model.json lists ${this.featureNames.length}`,
        );
      }
    }
    if (inputs.length !== 1)
      problems.push(`the model has ${inputs.length} inputs; streamscore feeds exactly one`);
    for (const output of this.metadata.outputs) {
      const meta = this.#session.outputMetadata.find((m) => m.name === output.tensor);
      if (meta === undefined) {
        problems.push(
          `output "${output.tensor}" not in the model (it has ${this.#session.outputNames.join(', ')})`,
        );
        continue;
      }
      if (!meta.isTensor) {
        problems.push(`output "${output.tensor}" is not a tensor`);
        continue;
      }
      if (output.dtype !== undefined && output.dtype !== meta.type) {
        problems.push(`output "${output.tensor}" is ${meta.type}, model.json says ${output.dtype}`);
      }
      if (!NUMERIC_TYPES.has(meta.type))
        problems.push(`output "${output.tensor}" is ${meta.type}, not numeric`);
      const width = meta.shape[1];
      if (output.column === null) {
        if (meta.shape.length > 2 || (meta.shape.length === 2 && typeof width === 'number' && width !== 1)) {
          problems.push(
            `output "${output.tensor}" has shape [${meta.shape.join(', ')}]: give "column" to pick one`,
          );
        }
      } else if (meta.shape.length !== 2) {
        problems.push(`output "${output.tensor}" is not 2-D, so "column" ${output.column} cannot apply`);
      } else if (typeof width === 'number' && width > 0 && output.column >= width) {
        problems.push(
          `output "${output.tensor}" has ${width} columns, model.json asks for column ${output.column}`,
        );
      }
    }
    if (problems.length > 0) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `model.json does not match the ONNX graph: ${problems.join('; ')}`,
        { context: { ...context, reason: 'signature' } },
      );
    }
  }
}

const NUMERIC_TYPES = new Set([
  'float32',
  'float64',
  'float16',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
]);

function describeValue(meta: ValueMetadata): string {
  return meta.isTensor ? `a ${meta.type} tensor` : 'a non-tensor value';
}

function columnOf(tensor: TensorResult, column: number | null, rows: number): Float64Array {
  const data = tensor.data;
  const width = tensor.dims.length > 1 ? Number(tensor.dims[1]) : 1;
  const values = new Float64Array(rows);
  const offset = column ?? 0;
  if (offset >= width)
    throw new Error(`output column ${offset} out of range: the tensor has ${width} columns`);
  for (let row = 0; row < rows; row += 1) values[row] = Number(data[row * width + offset]);
  return values;
}

/**
 * CPU is always there. CUDA needs the provider libraries next to the binding, which npm installs
 * only when asked (docs/operations.md, GPU). Failing here gives one clear message instead of a native
 * loader error deep inside session creation.
 */
export function assertProviderAvailable(provider: ExecutionProvider): void {
  if (provider === 'cpu') return;
  const require = createRequire(import.meta.url);
  const binding = require.resolve('onnxruntime-node');
  const root = dirname(dirname(binding));
  const libDir = join(root, 'bin', `napi-v6`, process.platform, process.arch);
  const library = join(libDir, 'libonnxruntime_providers_cuda.so');
  if (process.platform !== 'linux' || !existsSync(library)) {
    throw new StreamscoreError(
      'EXECUTION_PROVIDER_UNAVAILABLE',
      `Execution provider "cuda" is not installed (no ${library}). Install the CUDA build with ` +
        '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` on a machine with CUDA 12, or set ' +
        'STREAMSCORE_EXECUTION_PROVIDER=cpu.',
    );
  }
}
