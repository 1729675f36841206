import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RejectReasons } from '../src/codec/requests.js';
import { OPTIONS, flagName } from '../src/config/options.js';
import { ErrorCodes } from '../src/errors.js';

const readme = readFileSync('README.md', 'utf8');

/** A table row whose first cells are these code spans (Prettier pads cells with spaces). */
function hasRow(...cells: string[]): boolean {
  const escaped = cells.map((cell) => `\\|\\s*\`${cell.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\`\\s*`);
  return new RegExp(`^${escaped.join('')}\\|`, 'm').test(readme);
}

describe('README.md', () => {
  it('documents every error code', () => {
    for (const code of Object.keys(ErrorCodes)) assert.ok(hasRow(code), `error code ${code}`);
  });

  it('documents every setting with its flag', () => {
    for (const [name, spec] of Object.entries(OPTIONS)) {
      assert.ok(hasRow(spec.env, `--${flagName(name)}`), `setting ${spec.env}`);
    }
  });

  it('documents every dead-letter reason', () => {
    for (const reason of Object.keys(RejectReasons)) assert.ok(hasRow(reason), `reason ${reason}`);
  });

  it('opens with the two commands', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    assert.match(firstBlock, /npm run quickstart/);
    assert.match(firstBlock, /^npm test\b/m);
  });
});
