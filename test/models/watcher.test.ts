import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { LiveModels } from '../../src/models/live.js';
import { ModelRepository } from '../../src/models/repository.js';
import { readRouting, type RoutingSpec } from '../../src/models/routing.js';
import { ModelWatcher } from '../../src/models/watcher.js';
import type { Logger } from '../../src/telemetry/logger.js';

const INTERVAL_MS = 500;

/** The parts of LiveModels the watcher uses; apply() only records what it was given. */
class StandInLive {
  readonly repository: ModelRepository;
  readonly model = 'fraud';
  readonly applied: RoutingSpec[] = [];
  #waiting: (() => void) | undefined;

  constructor(root: string) {
    this.repository = new ModelRepository(root);
  }

  apply(spec: RoutingSpec): Promise<void> {
    this.applied.push(spec);
    this.#waiting?.();
    return Promise.resolve();
  }

  /** Resolves once `count` specs were applied in all. */
  async appliedCount(count: number): Promise<void> {
    while (this.applied.length < count) await new Promise<void>((resolve) => (this.#waiting = resolve));
  }
}

function writeRouting(path: string, text: string): void {
  // Write then rename, as a deploy tool would, so a check never reads half a file.
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('ModelWatcher', () => {
  let root: string;
  let routingFile: string;
  let live: StandInLive;
  let errors: string[];
  const watchers: ModelWatcher[] = [];

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'streamscore-watcher-'));
    for (const version of ['1', '2']) {
      cpSync(`models/fraud/${version}`, join(root, 'fraud', version), { recursive: true });
    }
    routingFile = join(root, 'routing.json');
    writeRouting(routingFile, JSON.stringify({ fraud: { primary: '1' } }));
    live = new StandInLive(root);
    errors = [];
  });
  afterEach(async () => {
    mock.timers.reset();
    mock.restoreAll();
    for (const watcher of watchers.splice(0)) await watcher.stop();
    rmSync(root, { recursive: true, force: true });
  });

  function watcher(intervalMs = 0): ModelWatcher {
    const logger = {
      error: (_fields: object, msg: string) => errors.push(msg),
    } as unknown as Logger;
    const created = new ModelWatcher({
      live: live as unknown as LiveModels,
      readSpec: () =>
        readRouting({
          model: 'fraud',
          modelVersion: 'latest',
          canaryVersion: '',
          canaryShare: 0,
          shadowVersions: [],
          fallbackVersion: '',
          routingFile,
        }),
      routingFile,
      intervalMs,
      logger,
    });
    watchers.push(created);
    return created;
  }

  it('takes the state at start() as the baseline, without applying it', async () => {
    const watching = watcher();
    await watching.start();
    await watching.check();
    await watching.check();
    assert.deepEqual(live.applied, []);
  });

  it('applies the routing again after the routing file changes, once per change', async () => {
    const watching = watcher();
    await watching.start();
    writeRouting(routingFile, JSON.stringify({ fraud: { primary: '2', shadows: ['1'] } }));
    await watching.check();
    await watching.check();
    assert.deepEqual(live.applied, [{ primary: '2', canary: undefined, shadows: ['1'] }]);

    writeRouting(
      routingFile,
      JSON.stringify({ fraud: { primary: '1', canary: { version: '2', share: 0.1 } } }),
    );
    await watching.check();
    assert.deepEqual(live.applied.slice(1), [
      { primary: '1', canary: { version: '2', share: 0.1 }, shadows: [] },
    ]);
  });

  it('applies after a version folder is added, and after a model.json changes', async () => {
    const watching = watcher();
    await watching.start();
    cpSync('models/fraud/2', join(root, 'fraud', '3'), { recursive: true });
    await watching.check();
    assert.equal(live.applied.length, 1, 'a new version folder');

    const metadataPath = join(root, 'fraud', '1', 'model.json');
    const metadata = JSON.parse(readFileSync(metadataPath, 'utf8')) as Record<string, unknown>;
    metadata.description = `${String(metadata.description)} (retrained threshold)`;
    writeFileSync(metadataPath, JSON.stringify(metadata));
    await watching.check();
    assert.equal(live.applied.length, 2, 'an edited model.json');
    assert.deepEqual(live.applied[1], { primary: '1', canary: undefined, shadows: [] });
  });

  it('logs a broken routing file without throwing, and applies the next good one', async () => {
    const watching = watcher();
    await watching.start();
    writeRouting(routingFile, '{ "fraud": { "primary": ');
    await watching.check();
    await watching.check();
    assert.deepEqual(live.applied, []);
    assert.equal(errors.length, 1, 'said once, not on every check');
    assert.match(errors[0]!, /model reload failed.*not valid JSON/);

    writeRouting(routingFile, JSON.stringify({ fraud: { primary: '2' } }));
    await watching.check();
    assert.deepEqual(live.applied, [{ primary: '2', canary: undefined, shadows: [] }]);
    assert.equal(errors.length, 1);
  });

  it('checks every intervalMs, and stop() ends the polling', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    const watching = watcher(INTERVAL_MS);
    await watching.start();
    writeRouting(routingFile, JSON.stringify({ fraud: { primary: '2' } }));
    mock.timers.tick(INTERVAL_MS);
    await live.appliedCount(1);
    assert.equal(live.applied[0]!.primary, '2');

    await watching.stop();
    writeRouting(routingFile, JSON.stringify({ fraud: { primary: '1' } }));
    mock.timers.tick(INTERVAL_MS * 10);
    // stop() waits for a check the interval started, so a live interval would have applied by now.
    await watching.stop();
    assert.equal(live.applied.length, 1);
  });

  it('does not poll when intervalMs is 0; check() still works', async () => {
    // A fake setInterval(fn, 0) would spin forever inside tick(), so the timer is observed instead.
    const setIntervalSpy = mock.method(globalThis, 'setInterval');
    const polling = watcher(INTERVAL_MS);
    await polling.start();
    assert.deepEqual(
      setIntervalSpy.mock.calls.map((call) => call.arguments[1]),
      [INTERVAL_MS],
      'the spy sees a polling watcher',
    );
    await polling.stop();

    const manual = watcher(0);
    await manual.start();
    assert.equal(setIntervalSpy.mock.callCount(), 1);
    writeRouting(routingFile, JSON.stringify({ fraud: { primary: '2' } }));
    await manual.check();
    assert.deepEqual(live.applied, [{ primary: '2', canary: undefined, shadows: [] }]);
  });
});
