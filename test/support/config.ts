import assert from 'node:assert/strict';
import { StreamscoreError } from '../../src/errors.js';

/** The problems a CONFIG_INVALID error lists (the call must throw one). */
export function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof StreamscoreError && error.code === 'CONFIG_INVALID');
    return error.context.problems as string[];
  }
  assert.fail('expected CONFIG_INVALID');
}
