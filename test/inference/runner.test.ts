import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { ModelRunner, assertProviderAvailable } from '../../src/inference/runner.js';
import { buildMatrix } from '../../src/inference/tensor.js';
import { ModelRepository } from '../../src/models/repository.js';

interface Expected {
  input: { features: string[] };
  rows: number[][];
  onnxruntime: { outputs: Record<string, number[]> };
  reference: { outputs: Record<string, number[]> };
  tolerance: number;
}

const repository = new ModelRepository('models');

for (const [name, version, worker] of [
  ['fraud', '1', false],
  ['fraud', '2', false],
  ['heavy', '1', false],
  ['fraud', '1', true],
  ['heavy', '1', true],
] as const) {
  describe(`ModelRunner ${name}/${version}${worker ? ' in a worker thread' : ''}`, () => {
    it('gives the outputs the training script recorded for its fixed inputs', async () => {
      const expected = JSON.parse(
        readFileSync(`models/${name}/${version}/expected.json`, 'utf8'),
      ) as Expected;
      const runner = await ModelRunner.load(await repository.load(name, version), {
        executionProvider: 'cpu',
        threads: 1,
        worker,
      });
      try {
        assert.deepEqual([...runner.featureNames], expected.input.features);
        const rows = expected.rows.map((row) =>
          Object.fromEntries(row.map((v, i) => [expected.input.features[i]!, v])),
        );
        const outputs = await runner.score(buildMatrix(rows, runner.featureNames), rows.length);
        for (const [output, values] of Object.entries(expected.reference.outputs)) {
          const actual = outputs.get(output);
          assert.ok(actual, `output ${output} missing`);
          values.forEach((want, i) => {
            const diff = Math.abs(actual[i]! - want);
            assert.ok(
              diff <= expected.tolerance,
              `${output}[${i}]: got ${actual[i]}, training recorded ${want}`,
            );
          });
        }
      } finally {
        await runner.release();
      }
    });
  });
}

describe('ModelRunner', () => {
  it('fraud versions 1 and 2 score the same rows differently', () => {
    const expected = JSON.parse(readFileSync('models/fraud/1/expected.json', 'utf8')) as Expected;
    const other = JSON.parse(readFileSync('models/fraud/2/expected.json', 'utf8')) as Expected;
    assert.deepEqual(expected.rows, other.rows);
    const gaps = expected.onnxruntime.outputs.score!.map((s, i) =>
      Math.abs(s - other.onnxruntime.outputs.score![i]!),
    );
    assert.ok(Math.max(...gaps) > 0.01, 'the two versions are indistinguishable');
  });

  it('checks the matrix size', async () => {
    const runner = await ModelRunner.load(await repository.load('fraud', '1'), {
      executionProvider: 'cpu',
      threads: 1,
    });
    try {
      await assert.rejects(runner.score(new Float32Array(5), 1), RangeError);
    } finally {
      await runner.release();
    }
  });

  it('accepts cuda only where its provider library is installed, with a clear error otherwise', () => {
    const library = 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so';
    if (process.platform === 'linux' && existsSync(library)) {
      assert.doesNotThrow(() => assertProviderAvailable('cuda'));
    } else {
      assert.throws(
        () => assertProviderAvailable('cuda'),
        (error: unknown) =>
          error instanceof StreamscoreError &&
          error.code === 'EXECUTION_PROVIDER_UNAVAILABLE' &&
          /STREAMSCORE_EXECUTION_PROVIDER=cpu/.test(error.message),
      );
    }
    assert.doesNotThrow(() => assertProviderAvailable('cpu'));
  });
});

describe('ModelRunner in a worker thread', () => {
  it('refuses what the in-process runner refuses, and fails runs with a clear error after release', async () => {
    const model = await repository.load('fraud', '1');
    const broken = {
      ...model,
      metadata: { ...model.metadata, inputs: [{ ...model.metadata.inputs[0]!, tensor: 'nope' }] },
    };
    await assert.rejects(
      ModelRunner.load(broken, { executionProvider: 'cpu', threads: 1, worker: true }),
      /does not match the ONNX graph/,
    );
    const runner = await ModelRunner.load(model, { executionProvider: 'cpu', threads: 1, worker: true });
    const outputs = await runner.score(new Float32Array(8 * 3), 3);
    assert.equal(outputs.get('score')!.length, 3);
    await runner.release();
    await assert.rejects(
      runner.score(new Float32Array(8), 1),
      (error: unknown) =>
        error instanceof StreamscoreError &&
        error.code === 'INFERENCE_FAILED' &&
        /released|exited/.test(String((error.cause as Error).message)),
    );
  });
});
