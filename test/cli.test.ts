import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['dist/src/cli.js', ...args], { encoding: 'utf8' });
}

describe('streamscore CLI without a broker', () => {
  it('--version prints the package version and the runtime', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const result = cli('--version');
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `streamscore ${version} (Node ${process.versions.node})\n`);
  });

  it('--help lists the commands and exits 0', () => {
    const result = cli('--help');
    assert.equal(result.status, 0, result.stderr);
    for (const command of ['serve', 'produce', 'tail', 'drift', 'models'])
      assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'));
  });

  it('runs on a supported Node line', () => {
    const { engines } = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };
    const minimum = Number(/>=(\d+)/.exec(engines.node)?.[1]);
    assert.ok(minimum >= 22, `engines.node ${engines.node}`);
    assert.ok(Number(process.versions.node.split('.')[0]) >= minimum, `running on Node ${process.version}`);
  });
});
