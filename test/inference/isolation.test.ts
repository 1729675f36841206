import assert from 'node:assert/strict';
import type { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { VersionFailingError, scoreIsolating, type RetryReason } from '../../src/inference/isolation.js';
import { ModelRunner } from '../../src/inference/runner.js';
import { ModelRepository } from '../../src/models/repository.js';

const fixtures = new ModelRepository('test/fixtures/models');
const models = new ModelRepository('models');
const WIDTH = 8;
const HOUR = 5;
const AMOUNT = 0;

/** Rows of 8 features: mostly ordinary, with the given overrides per row index. */
function rows(
  count: number,
  overrides: Record<number, Partial<Record<number, number>>> = {},
): Float32Array[] {
  return Array.from({ length: count }, (_, row) => {
    const values = new Float32Array(WIDTH);
    for (let column = 0; column < WIDTH; column += 1) values[column] = ((row * 7 + column * 3) % 11) / 10;
    values[HOUR] = row % 24;
    for (const [column, value] of Object.entries(overrides[row] ?? {})) values[Number(column)] = value!;
    return values;
  });
}

function builder(data: Float32Array[]) {
  return (picked: readonly number[]) => {
    const matrix = new Float32Array(picked.length * WIDTH);
    picked.forEach((row, i) => matrix.set(data[row]!, i * WIDTH));
    return matrix;
  };
}

describe('scoreIsolating', () => {
  const runners: ModelRunner[] = [];
  const load = async (repository: ModelRepository, version: string, worker = false, hooks = {}) => {
    const runner = await ModelRunner.load(await repository.load('fraud', version), {
      executionProvider: 'cpu',
      threads: 1,
      worker,
      hooks,
    });
    runners.push(runner);
    return runner;
  };
  after(async () => {
    for (const runner of runners) await runner.release();
  });

  it('scores a good batch in one runtime call', async () => {
    const runner = await load(models, '2');
    const data = rows(50);
    const retries: RetryReason[] = [];
    const { outputs, failed } = await scoreIsolating(runner, data.length, builder(data), (why) =>
      retries.push(why),
    );
    assert.equal(failed.size, 0);
    assert.deepEqual(retries, []);
    const alone = await runner.score(builder(data)([17]), 1);
    assert.equal(outputs.get('score')![17], alone.get('score')![0]);
  });

  it('finds the rows whose own data makes the model fail, and scores the rest as if alone', async () => {
    const runner = await load(fixtures, '7');
    const bad = [3, 40, 41, 99];
    const data = rows(
      100,
      Object.fromEntries(bad.map((row) => [row, { [HOUR]: row === 40 ? -100 : 30 + row }])),
    );
    const retries: RetryReason[] = [];
    const { outputs, failed } = await scoreIsolating(runner, data.length, builder(data), (why) =>
      retries.push(why),
    );
    assert.deepEqual(
      [...failed.keys()].sort((a, b) => a - b),
      bad,
    );
    for (const why of failed.values()) assert.match(why, /Gather|indices/);
    assert.ok(retries.length > 0 && retries.every((why) => why === 'bisect'));
    assert.ok(retries.length < 60, `${retries.length} extra runtime calls for 4 bad rows in 100`);
    for (const row of [0, 4, 50, 98]) {
      const alone = await runner.score(builder(data)([row]), 1);
      assert.equal(outputs.get('score')![row], alone.get('score')![0], `row ${row}`);
    }
  });

  it('fails the rows whose outputs are not finite, without a runtime error', async () => {
    const runner = await load(fixtures, '6');
    const data = rows(
      20,
      Object.fromEntries(
        Array.from({ length: 20 }, (_, row) => [row, { [AMOUNT]: row % 5 === 0 ? 0 : 12.5 }]),
      ),
    );
    const { outputs, failed } = await scoreIsolating(runner, data.length, builder(data));
    assert.deepEqual(
      [...failed.keys()].sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, r) => r).filter((r) => r % 5 !== 0),
    );
    for (const why of failed.values()) assert.match(why, /output "score" is Infinity/);
    for (const row of [0, 5, 10, 15]) assert.equal(outputs.get('score')![row], 0);
  });

  it('blames the version, not the rows, when a batch of zeros fails too', async () => {
    const runner = await load(fixtures, '9');
    const data = rows(5);
    await assert.rejects(scoreIsolating(runner, data.length, builder(data)), (error: unknown) => {
      assert.ok(error instanceof VersionFailingError);
      assert.equal(error.code, 'INFERENCE_FAILED');
      assert.equal(error.retriable, true);
      assert.match(error.message, /fraud\/9 fails on every batch/);
      return true;
    });
  });

  it('restarts a worker thread that died during a batch, and scores the batch on the new one', async () => {
    let current: Worker | undefined;
    let restarts = 0;
    const runner = await load(models, '2', true, {
      onWorker: (worker: Worker) => (current = worker),
      onRestart: () => (restarts += 1),
    });
    const data = rows(64);
    const expected = await runner.score(builder(data)(data.map((_, row) => row)), data.length);
    const retries: RetryReason[] = [];
    // The worker dies while the first call of the batch is on its way.
    const dying = current!;
    const build = builder(data);
    let calls = 0;
    const result = scoreIsolating(
      runner,
      data.length,
      (picked) => {
        calls += 1;
        if (calls === 1) void dying.terminate();
        return build(picked);
      },
      (why) => retries.push(why),
    );
    const { outputs, failed } = await result;
    assert.equal(failed.size, 0);
    assert.deepEqual(retries, ['restart']);
    assert.equal(restarts, 1);
    assert.notEqual(current, dying);
    assert.deepEqual([...outputs.get('score')!], [...expected.get('score')!]);
  });

  it("lets errors that are not the runtime's through as they are", async () => {
    const runner = await load(models, '2');
    await assert.rejects(
      scoreIsolating(runner, 3, () => new Float32Array(5)),
      (error: unknown) => error instanceof RangeError && !(error instanceof StreamscoreError),
    );
  });
});

describe('ModelRunner.probe', () => {
  let broken: ModelRunner;
  let good: ModelRunner;
  before(async () => {
    const options = { executionProvider: 'cpu' as const, threads: 1 };
    broken = await ModelRunner.load(await fixtures.load('fraud', '9'), options);
    good = await ModelRunner.load(await models.load('fraud', '2'), options);
  });
  after(async () => {
    await broken.release();
    await good.release();
  });

  it('says whether a batch of zeros of a size scores with finite outputs', async () => {
    assert.equal(await good.probe(7), true);
    assert.equal(await broken.probe(2), true);
    assert.equal(await broken.probe(3), false);
  });
});
