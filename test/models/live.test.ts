import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { LiveModels, ModelUnavailableError, type Routing } from '../../src/models/live.js';
import { ModelRepository } from '../../src/models/repository.js';
import { StreamscoreError } from '../../src/errors.js';

interface Recorded {
  loaded: string[];
  refused: [string, string][];
  switches: Routing[];
}

function setup(root: string) {
  const events: Recorded = { loaded: [], refused: [], switches: [] };
  const live = new LiveModels({
    repository: new ModelRepository(root),
    model: 'fraud',
    runner: { executionProvider: 'cpu', threads: 1 },
    logger: pino({ level: 'silent' }),
    events: {
      loaded: (version) => events.loaded.push(version),
      refused: (version, reason) => events.refused.push([version, reason]),
      restarted: () => undefined,
      switched: (routing) => events.switches.push(routing),
    },
  });
  return { live, events };
}

/** A copy of fraud/1 as another version with model.json edited. */
function addVersion(
  root: string,
  version: string,
  edit: (metadata: Record<string, unknown>) => void = () => {},
) {
  const dir = join(root, 'fraud', version);
  cpSync('models/fraud/1', dir, { recursive: true });
  const metadata = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Record<string, unknown>;
  metadata.version = version;
  edit(metadata);
  writeFileSync(join(dir, 'model.json'), JSON.stringify(metadata));
  return dir;
}

const versionsOf = (routing: Routing) => ({
  primary: routing.primary.metadata.version,
  canary: routing.canary?.runner.metadata.version,
  shadows: routing.shadows.map((s) => s.metadata.version),
});

describe('LiveModels', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'streamscore-live-'));
    cpSync('models/fraud/1', join(root, 'fraud', '1'), { recursive: true });
    cpSync('models/fraud/2', join(root, 'fraud', '2'), { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('makes a spec live: latest primary, canary, shadows', async () => {
    const { live, events } = setup(root);
    const routing = await live.apply({
      primary: 'latest',
      canary: { version: '1', share: 0.2 },
      shadows: ['1'],
    });
    assert.deepEqual(versionsOf(routing), { primary: '2', canary: '1', shadows: ['1'] });
    assert.equal(routing.canary?.runner, routing.shadows[0], 'one session per version');
    assert.deepEqual(events.loaded.sort(), ['1', '2']);
    assert.equal(
      await live.apply({ primary: 'latest', canary: { version: '1', share: 0.2 }, shadows: ['1'] }),
      routing,
    );
    assert.equal(events.switches.length, 1, 'the same spec again switches nothing');
    await live.close();
  });

  it('refuses a corrupted or mismatched version and keeps serving the previous one', async () => {
    const { live, events } = setup(root);
    await live.apply({ primary: 'latest', shadows: [] });
    appendFileSync(join(addVersion(root, '3'), 'model.onnx'), Buffer.from('garbage'));
    addVersion(root, '4', (m) => {
      const inputs = m.inputs as { features: string[] }[];
      inputs[0]!.features = inputs[0]!.features.slice(0, 7);
    });
    const routing = await live.apply({ primary: 'latest', shadows: [] });
    assert.equal(routing.primary.metadata.version, '2', 'latest is the highest valid version');
    assert.deepEqual(events.refused.sort(), [
      ['3', 'checksum'],
      ['4', 'signature'],
    ]);
    const pinned = await live.apply({ primary: '4', shadows: [] });
    assert.equal(pinned.primary.metadata.version, '2', 'a refused pinned primary leaves the current one');
    await live.apply({ primary: 'latest', shadows: [] });
    assert.equal(events.refused.length, 2, 'a refusal is reported once until the files change');
    assert.match(live.refusals.get('4')!.message, /takes 8 features, model.json lists 7/);
    await live.close();
  });

  it('strict: applies a spec whole or not at all, keeping the last good routing', async () => {
    const { live, events } = setup(root);
    const good = await live.apply({ primary: '1', shadows: [] }, { strict: true });
    appendFileSync(join(addVersion(root, '3'), 'model.onnx'), Buffer.from('garbage'));
    for (const spec of [
      { primary: '2', canary: { version: '3', share: 0.1 }, shadows: [] },
      { primary: '2', shadows: ['9'] },
      { primary: '9', shadows: [] },
      { primary: '2', shadows: [], fallback: '3' },
    ]) {
      await assert.rejects(live.apply(spec, { strict: true }), (error: unknown) => {
        assert.ok(error instanceof StreamscoreError && error.code === 'ROUTING_INVALID', String(error));
        assert.match(error.message, /cannot serve \((3|9): /);
        assert.ok(['checksum', 'not_found'].includes(error.context.reason as string));
        return true;
      });
      assert.equal(live.current, good, 'the last good routing keeps serving');
    }
    assert.equal(events.switches.length, 1);
    // Not strict, the same spec leaves the refused canary out and switches the rest.
    const partial = await live.apply({ primary: '2', canary: { version: '3', share: 0.1 }, shadows: [] });
    assert.deepEqual(versionsOf(partial), { primary: '2', canary: undefined, shadows: [] });
    await live.close();
  });

  it('refuses to start with no valid primary, naming the versions on disk', async () => {
    const { live } = setup(root);
    await assert.rejects(live.apply({ primary: '7', shadows: [] }), (error: unknown) => {
      return error instanceof ModelUnavailableError && /versions on disk: 1, 2/.test(error.message);
    });
  });

  it('releases a replaced session only when the last batch holding it is done', async () => {
    const { live } = setup(root);
    await live.apply({ primary: '1', shadows: [] });
    const hold = live.hold();
    const shadowHold = hold.retain();
    const old = hold.routing.primary;
    await live.apply({ primary: '2', shadows: [] });
    assert.equal(live.current?.primary.metadata.version, '2');
    hold.release();
    await old.score(new Float32Array(8), 1); // still held by shadowHold: the session is alive
    shadowHold.release();
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(old.score(new Float32Array(8), 1), 'the session was released');
    await live.close();
  });
});
