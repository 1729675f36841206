import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { openSession } from '../../src/inference/session.js';

describe('openSession', () => {
  it('never lets the runtime open an external-data file itself, even one beside it in the working directory', async () => {
    const folder = 'test/fixtures/models/external/2';
    const bytes = readFileSync(`${folder}/model.onnx`);
    const home = process.cwd();
    // Run where the runtime would find weights.bin on its own; only the table it is given may serve it.
    process.chdir(folder);
    try {
      for (const inWorker of [false, true]) {
        await assert.rejects(
          openSession({ bytes, externalData: [] }, { executionProvider: 'cpu', threads: 1 }, inWorker),
          /weights\.bin not found from the table/,
          inWorker ? 'in a worker' : 'in process',
        );
      }
      const data = readFileSync('weights.bin');
      const session = await openSession(
        { bytes, externalData: [{ path: 'weights.bin', data }] },
        { executionProvider: 'cpu', threads: 1 },
        false,
      );
      await session.release();
    } finally {
      process.chdir(home);
    }
  });
});
