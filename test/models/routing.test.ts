import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { keyPosition } from '../../src/models/key-position.js';
import { parseRoutingFile, readRouting } from '../../src/models/routing.js';

const invalid = (pattern: RegExp) => (error: unknown) =>
  error instanceof StreamscoreError && error.code === 'CONFIG_INVALID' && pattern.test(error.message);

describe('routing', () => {
  it('parses a routing file entry', () => {
    const spec = parseRoutingFile(
      JSON.stringify({
        fraud: { primary: 'latest', canary: { version: '2', share: 0.1 }, shadows: ['1'] },
        other: {},
      }),
      'fraud',
      'routing.json',
    );
    assert.deepEqual(spec, { primary: 'latest', canary: { version: '2', share: 0.1 }, shadows: ['1'] });
  });

  it('says exactly what is wrong with a routing file', () => {
    assert.throws(() => parseRoutingFile('{', 'fraud', 'r.json'), invalid(/r\.json: not valid JSON/));
    assert.throws(
      () => parseRoutingFile('{"x":{}}', 'fraud', 'r.json'),
      invalid(/no entry for model "fraud" \(it has: x\)/),
    );
    assert.throws(
      () =>
        parseRoutingFile(
          '{"fraud":{"primary":"1","canary":{"version":"2","share":1.5},"weights":1}}',
          'fraud',
          'r.json',
        ),
      invalid(/unknown key "weights"/),
    );
    assert.throws(
      () =>
        parseRoutingFile('{"fraud":{"primary":"1","canary":{"version":"2","share":1.5}}}', 'fraud', 'r.json'),
      invalid(/canary share 1.5 is not between 0 and 1/),
    );
    assert.throws(
      () => parseRoutingFile('{"fraud":{"primary":"1","shadows":["latest"]}}', 'fraud', 'r.json'),
      invalid(/shadows must name versions/),
    );
  });

  it('builds the spec from settings when there is no routing file', async () => {
    const spec = await readRouting({
      model: 'fraud',
      modelVersion: '1',
      canaryVersion: '2',
      canaryShare: 0.25,
      shadowVersions: ['3'],
      fallbackVersion: '1',
      routingFile: '',
    });
    assert.deepEqual(spec, {
      primary: '1',
      canary: { version: '2', share: 0.25 },
      shadows: ['3'],
      fallback: '1',
    });
  });

  it('reads the settings, not a routing file, when the routing source is settings', async () => {
    const settings = {
      model: 'fraud',
      modelVersion: '1',
      canaryVersion: '',
      canaryShare: 0,
      shadowVersions: [],
      fallbackVersion: '',
      routingFile: '/nonexistent/routing.json',
    };
    assert.deepEqual(await readRouting({ ...settings, routingSource: 'settings' }), {
      primary: '1',
      canary: undefined,
      shadows: [],
    });
    await assert.rejects(readRouting({ ...settings, routingSource: 'auto' }), /Cannot read routing file/);
  });

  it('places keys uniformly and stably, so a share is the fraction of keys it takes', () => {
    assert.equal(keyPosition('entity-1'), keyPosition(Buffer.from('entity-1')));
    const positions = Array.from({ length: 20_000 }, (_, i) => keyPosition(`entity-${i}`));
    assert.ok(positions.every((p) => p >= 0 && p < 1));
    for (const share of [0.01, 0.1, 0.5]) {
      const taken = positions.filter((p) => p < share).length / positions.length;
      assert.ok(Math.abs(taken - share) < 0.01, `share ${share} took ${taken}`);
    }
  });

  it('keeps its published values (changing the hash would move every canary key)', () => {
    assert.deepEqual(
      ['a', 'entity-1', 'k-0'].map((key) => keyPosition(key).toFixed(6)),
      ['0.103526', '0.860534', '0.059298'],
    );
  });
});
