import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['dist/src/cli.js', ...args], { encoding: 'utf8' });
}

describe('streamscore models', () => {
  it('validate accepts listed external data and refuses the rest with the reason serve logs', () => {
    const ok = cli('models', 'validate', 'test/fixtures/models/external/2');
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^external\/2: ok \(sha256 [0-9a-f]{64}\)$/m);
    const refused = cli('models', 'validate', 'test/fixtures/models/external/4');
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(
      refused.stdout,
      /^external\/4: refused \(external_path\): .*model\.onnx reads tensors "weights", "bias" from "\.\.\/weights\.bin", a path that climbs out/m,
    );
  });

  it('list shows each refusal with its reason, and the size cap applies', () => {
    const listed = cli('models', 'list', '--models-dir', 'test/fixtures/models', '--model', 'external');
    assert.equal(listed.status, 1, listed.stderr);
    assert.match(listed.stdout, /^external\/3 +ok +/m);
    assert.match(listed.stdout, /^external\/5 +refused \(external_path\) +- +.*an absolute path/m);
    const capped = cli('models', 'validate', 'models/heavy/1', '--model-max-mb', '1');
    assert.equal(capped.status, 1, capped.stderr);
    assert.match(capped.stdout, /^heavy\/1: refused \(too_large\): .*over the cap of 1\.0 MiB/m);
  });
});
