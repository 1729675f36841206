import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { nextSpec, validateRouting } from '../../src/commands/route.js';
import { loadConfig } from '../../src/config/load.js';
import { StreamscoreError } from '../../src/errors.js';
import type { RoutingSpec } from '../../src/models/routing.js';

const current: RoutingSpec = {
  primary: '2',
  canary: { version: '3', share: 0.1 },
  shadows: ['3', '4'],
  fallback: '1',
};

async function refused(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (error) {
    assert.ok(error instanceof StreamscoreError, String(error));
    assert.equal(error.code, 'ROUTING_INVALID');
    return error.message;
  }
  assert.fail('expected ROUTING_INVALID');
}

const external = loadConfig({ flags: { modelsDir: 'test/fixtures/models', model: 'external' } });

describe('streamscore route', () => {
  it('set changes what is given and keeps the rest', () => {
    assert.deepEqual(nextSpec(current, { kind: 'set', changes: { share: 0.5 } }), {
      ...current,
      canary: { version: '3', share: 0.5 },
    });
    assert.deepEqual(nextSpec(current, { kind: 'set', changes: { primary: '5', shadows: '6, 7' } }), {
      ...current,
      primary: '5',
      shadows: ['6', '7'],
    });
    const bare = nextSpec(current, {
      kind: 'set',
      changes: { canary: 'none', shadows: '', fallback: 'none' },
    });
    assert.deepEqual(bare, { primary: '2', canary: undefined, shadows: [] });
    // A new canary without a share takes none, and is therefore no canary at all.
    assert.equal(nextSpec(bare, { kind: 'set', changes: { canary: '5' } }).canary, undefined);
    assert.deepEqual(nextSpec(bare, { kind: 'set', changes: { canary: '5', share: 0.05 } }).canary, {
      version: '5',
      share: 0.05,
    });
    assert.throws(() => nextSpec(bare, { kind: 'set', changes: { share: 0.2 } }), /--share needs a canary/);
  });

  it('promote makes the canary the primary; rollback drops it and keeps the primary', () => {
    assert.deepEqual(nextSpec(current, { kind: 'promote' }), {
      primary: '3',
      canary: undefined,
      shadows: ['4'],
      fallback: '1',
    });
    assert.deepEqual(nextSpec(current, { kind: 'rollback' }), { ...current, canary: undefined });
    const none = { ...current, canary: undefined };
    assert.throws(() => nextSpec(none, { kind: 'promote' }), /nothing to promote: the routing has no canary/);
    assert.throws(() => nextSpec(none, { kind: 'rollback' }), /nothing to rollback/);
  });

  it('accepts a routing whose versions load and validate', async () => {
    await validateRouting(external, { primary: '2', canary: { version: '3', share: 0.1 }, shadows: [] });
    await validateRouting(external, { primary: 'latest', shadows: ['1'], fallback: '1' });
  });

  it('refuses versions not on disk or refused by validation, listing each', async () => {
    const message = await refused(
      validateRouting(external, { primary: '9', canary: { version: '4', share: 0.1 }, shadows: ['3'] }),
    );
    assert.match(message, /nothing written/);
    assert.match(
      message,
      /version 9 is not on disk under .*test\/fixtures\/models\/external \(it has: 1, 2, 3, 4, 5\)/,
    );
    assert.match(message, /version 4 is refused \(external_path\)/);
    assert.doesNotMatch(message, /version 3/);
  });

  it('refuses a routing that breaks the routing rules before loading anything', async () => {
    const message = await refused(validateRouting(external, { primary: '2', shadows: ['latest'] }));
    assert.match(message, /shadows must name versions, not "latest"/);
  });

  it('exits 2 on a refused change, before reaching the broker', () => {
    const run = spawnSync(
      process.execPath,
      ['dist/src/cli.js', 'route', 'set', '--share', '2', '--kafka-brokers', '127.0.0.1:1'],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /--share: "2" is not a number from 0 to 1/);
    const none = spawnSync(process.execPath, ['dist/src/cli.js', 'route', 'set'], { encoding: 'utf8' });
    assert.equal(none.status, 2, none.stderr);
    assert.match(none.stderr, /route set needs at least one of/);
  });
});
