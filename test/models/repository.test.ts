import assert from 'node:assert/strict';
import {
  cpSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  appendFileSync,
  readFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { ModelRunner } from '../../src/inference/runner.js';
import { ModelRepository, compareVersions } from '../../src/models/repository.js';

function refusedWith(pattern: RegExp) {
  return (error: unknown) =>
    error instanceof StreamscoreError && error.code === 'MODEL_INVALID' && pattern.test(error.message);
}

describe('ModelRepository', () => {
  let root: string;
  let repository: ModelRepository;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'streamscore-models-'));
    cpSync('models/fraud', join(root, 'fraud'), { recursive: true });
    cpSync('models/fraud/2', join(root, 'fraud', '10'), { recursive: true });
    const metadata = JSON.parse(readFileSync(join(root, 'fraud', '10', 'model.json'), 'utf8')) as {
      version: string;
    };
    metadata.version = '10';
    writeFileSync(join(root, 'fraud', '10', 'model.json'), JSON.stringify(metadata));
    repository = new ModelRepository(root);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('lists versions numerically and resolves latest to the highest', async () => {
    assert.deepEqual(await repository.listModels(), ['fraud']);
    assert.deepEqual(await repository.listVersions('fraud'), ['1', '2', '10']);
    assert.equal(await repository.resolveVersion('fraud', 'latest'), '10');
    assert.equal(await repository.resolveVersion('fraud', '1'), '1');
    await assert.rejects(repository.resolveVersion('fraud', '3'), refusedWith(/no version "3".*1, 2, 10/));
    await assert.rejects(repository.resolveVersion('nope', 'latest'), refusedWith(/Not found/));
    assert.ok(compareVersions('2', '10') < 0);
  });

  it('loads a version whose file matches its sha256', async () => {
    const model = await repository.load('fraud', '1');
    assert.equal(model.metadata.inputs[0]!.features.length, 8);
    const runner = await ModelRunner.load(model, { executionProvider: 'cpu', threads: 1 });
    await runner.release();
  });

  it('refuses a corrupted model file', async () => {
    appendFileSync(join(root, 'fraud', '2', 'model.onnx'), Buffer.from([1, 2, 3]));
    await assert.rejects(repository.load('fraud', '2'), refusedWith(/sha256 .* corrupt/));
  });

  it('refuses names that could leave the repository, and symlinks that do', async () => {
    await assert.rejects(repository.load('..', '1'), refusedWith(/Invalid model name/));
    await assert.rejects(repository.load('fraud', '../../etc'), refusedWith(/Invalid version name/));
    const outside = mkdtempSync(join(tmpdir(), 'streamscore-outside-'));
    try {
      cpSync('models/fraud/1', join(outside, '1'), { recursive: true });
      symlinkSync(outside, join(root, 'escape'));
      await assert.rejects(repository.load('escape', '1'), refusedWith(/outside the model repository/));
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('refuses metadata that is incomplete or names another version', async () => {
    const dir = join(root, 'fraud', '1');
    const original = readFileSync(join(dir, 'model.json'), 'utf8');
    try {
      writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...JSON.parse(original), outputs: [] }));
      await assert.rejects(repository.load('fraud', '1'), refusedWith(/"outputs" must be a non-empty list/));
      writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...JSON.parse(original), version: '7' }));
      await assert.rejects(
        repository.load('fraud', '1'),
        refusedWith(/names fraud\/7, but it lives in fraud\/1/),
      );
    } finally {
      writeFileSync(join(dir, 'model.json'), original);
    }
  });

  it('refuses metadata that does not match the ONNX graph', async () => {
    const dir = join(root, 'fraud', '1');
    const original = readFileSync(join(dir, 'model.json'), 'utf8');
    try {
      const changed = JSON.parse(original) as { inputs: { tensor: string }[] };
      changed.inputs[0]!.tensor = 'not_an_input';
      writeFileSync(join(dir, 'model.json'), JSON.stringify(changed));
      const model = await repository.load('fraud', '1');
      await assert.rejects(
        ModelRunner.load(model, { executionProvider: 'cpu', threads: 1 }),
        refusedWith(/does not match the ONNX graph/),
      );
    } finally {
      writeFileSync(join(dir, 'model.json'), original);
    }
  });
});
