import assert from 'node:assert/strict';
import {
  cpSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  appendFileSync,
  readFileSync,
  truncateSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { ModelRunner } from '../../src/inference/runner.js';
import { ModelRepository, compareVersions } from '../../src/models/repository.js';

function refusedWith(pattern: RegExp, reason?: string) {
  return (error: unknown) => {
    assert.ok(error instanceof StreamscoreError, String(error));
    assert.equal(error.code, 'MODEL_INVALID');
    assert.match(error.message, pattern);
    if (reason !== undefined) assert.equal(error.context.reason, reason);
    return true;
  };
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

describe('ModelRepository with external data', () => {
  let root: string;
  let outside: string;
  let repository: ModelRepository;
  const options = { executionProvider: 'cpu', threads: 1 } as const;

  /** A copy of external/<from> as external/<to>, with model.json changed by `edit`. */
  function copy(from: string, to: string, edit: (metadata: Record<string, unknown>) => void = () => {}) {
    const dir = join(root, 'external', to);
    cpSync(join('test/fixtures/models/external', from), dir, { recursive: true });
    const metadata = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Record<string, unknown>;
    metadata.version = to;
    edit(metadata);
    writeFileSync(join(dir, 'model.json'), JSON.stringify(metadata));
    return dir;
  }

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'streamscore-external-'));
    outside = mkdtempSync(join(tmpdir(), 'streamscore-outside-'));
    for (const version of ['1', '2', '3', '4', '5']) copy(version, version);
    repository = new ModelRepository(root);
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('loads external data from the version folder, whatever the working directory, and scores as inline', async () => {
    const rows = 64;
    const matrix = new Float32Array(rows * 8).map((_, i) => ((i * 7919) % 101) / 10 - 3);
    const inline = await ModelRunner.load(await repository.load('external', '1'), options);
    const expected = await inline.score(matrix.slice(), rows);
    await inline.release();
    assert.ok(expected.get('score')!.some((v) => v > 0.5) && expected.get('score')!.some((v) => v < 0.5));
    for (const [version, worker] of [
      ['2', false],
      ['2', true],
      ['3', false],
    ] as const) {
      const model = await repository.load('external', version);
      assert.equal(model.externalData.length, 1);
      const runner = await ModelRunner.load(model, { ...options, worker });
      try {
        assert.deepEqual(await runner.score(matrix.slice(), rows), expected, `version ${version}`);
      } finally {
        await runner.release();
      }
    }
  });

  it('refuses external data outside the version folder: "..", an absolute path, a symlink', async () => {
    await assert.rejects(
      repository.load('external', '4'),
      refusedWith(
        /reads tensors "weights", "bias" from "\.\.\/weights\.bin", a path that climbs out/,
        'external_path',
      ),
    );
    await assert.rejects(
      repository.load('external', '5'),
      refusedWith(/from "\/etc\/streamscore\/weights\.bin", an absolute path/, 'external_path'),
    );
    const dir = copy('2', 'symlink');
    cpSync(join(dir, 'weights.bin'), join(outside, 'weights.bin'));
    rmSync(join(dir, 'weights.bin'));
    symlinkSync(join(outside, 'weights.bin'), join(dir, 'weights.bin'));
    await assert.rejects(
      repository.load('external', 'symlink'),
      refusedWith(/weights\.bin resolves to .*, outside its version folder/, 'external_path'),
    );
  });

  it('refuses external data that model.json does not list, or lists with another sha256', async () => {
    copy('2', 'unlisted', (metadata) => delete metadata.files);
    await assert.rejects(
      repository.load('external', 'unlisted'),
      refusedWith(/from "weights\.bin", which .*model\.json does not list/, 'unlisted'),
    );
    copy('2', 'wrong', (metadata) => {
      metadata.files = [{ path: 'weights.bin', sha256: 'ab'.repeat(32) }];
    });
    await assert.rejects(
      repository.load('external', 'wrong'),
      refusedWith(/sha256 of .*weights\.bin is [0-9a-f]{64}, but model\.json expects (ab){32}/, 'checksum'),
    );
    copy('2', 'climbs', (metadata) => {
      metadata.files = [{ path: '../2/weights.bin', sha256: 'ab'.repeat(32) }];
    });
    await assert.rejects(
      repository.load('external', 'climbs'),
      refusedWith(/"files\[0\]\.path" "\.\.\/2\/weights\.bin" is a path that climbs out/, 'metadata'),
    );
  });

  it("gives the runtime's own reason when it refuses the external data", async () => {
    const dir = copy('2', 'short');
    truncateSync(join(dir, 'weights.bin'), 20);
    const sha256 = createHash('sha256')
      .update(readFileSync(join(dir, 'weights.bin')))
      .digest('hex');
    const metadata = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Record<string, unknown>;
    metadata.files = [{ path: 'weights.bin', sha256 }];
    writeFileSync(join(dir, 'model.json'), JSON.stringify(metadata));
    const model = await repository.load('external', 'short');
    await assert.rejects(
      ModelRunner.load(model, options),
      refusedWith(
        /ONNX Runtime cannot load .*model\.onnx: .*External initializer: bias .*out of bounds/,
        'load',
      ),
    );
  });

  it('refuses a version over the size cap from its size alone, before reading it', async () => {
    const capped = new ModelRepository(root, { maxBytes: 1_048_576 });
    assert.ok(await capped.load('external', '2'));
    // 3 GiB, sparse: reading it would fail on its own (Node reads at most 2 GiB into one buffer).
    const model = copy('1', 'huge');
    truncateSync(join(model, 'model.onnx'), 3 * 1_073_741_824);
    await assert.rejects(
      capped.load('external', 'huge'),
      refusedWith(
        /holds 3072\.0 MiB of model files \(model\.onnx 3072\.0 MiB\), over the cap of 1\.0 MiB/,
        'too_large',
      ),
    );
    const weights = copy('2', 'heavy-weights');
    truncateSync(join(weights, 'weights.bin'), 2 * 1_048_576);
    await assert.rejects(
      capped.load('external', 'heavy-weights'),
      refusedWith(/weights\.bin 2\.0 MiB\), over the cap/, 'too_large'),
    );
  });
});
