/**
 * The inference worker: owns one ONNX Runtime session and runs batches posted by WorkerSession
 * (session.ts), one at a time, sending the outputs back with their buffers transferred.
 */
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import {
  ortOptions,
  type ModelImage,
  plainMetadata,
  type SessionOptions,
  type TensorResult,
  type WorkerReply,
} from './session.js';

interface RunRequest {
  kind: 'run';
  id: number;
  input: string;
  matrix: Float32Array;
  rows: number;
  width: number;
}

const port = parentPort!;
const { model, options } = workerData as { model: ModelImage; options: SessionOptions };
const reply = (message: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

try {
  const session = await ort.InferenceSession.create(model.bytes, ortOptions(options, model.externalData));
  port.on('message', (request: RunRequest) => {
    const input = new ort.Tensor('float32', request.matrix, [request.rows, request.width]);
    session.run({ [request.input]: input }).then(
      (results) => {
        const outputs: Record<string, TensorResult> = {};
        const transfer: ArrayBuffer[] = [];
        for (const [name, tensor] of Object.entries(results)) {
          // A copy: the runtime may own the tensor's memory, which cannot be transferred.
          const data = (tensor.data as Float32Array | BigInt64Array).slice();
          outputs[name] = { data, dims: [...tensor.dims] };
          transfer.push(data.buffer);
        }
        reply({ kind: 'result', id: request.id, outputs }, transfer);
      },
      (error: unknown) =>
        reply({
          kind: 'error',
          id: request.id,
          message: error instanceof Error ? error.message : String(error),
        }),
    );
  });
  reply({
    kind: 'ready',
    inputNames: [...session.inputNames],
    outputNames: [...session.outputNames],
    inputMetadata: plainMetadata(session.inputMetadata),
    outputMetadata: plainMetadata(session.outputMetadata),
  });
} catch (error) {
  reply({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
}
