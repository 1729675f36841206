import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { RejectReasons } from '../src/codec/requests.js';
import { OPTIONS, flagName } from '../src/config/options.js';
import { ErrorCodes } from '../src/errors.js';

const readme = readFileSync('README.md', 'utf8');
const reference = readFileSync('docs/reference.md', 'utf8');

/** A table row whose first cells are these code spans (Prettier pads cells with spaces). */
function hasRow(text: string, ...cells: string[]): boolean {
  const escaped = cells.map((cell) => `\\|\\s*\`${cell.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\`\\s*`);
  return new RegExp(`^${escaped.join('')}\\|`, 'm').test(text);
}

describe('docs/reference.md', () => {
  it('documents every error code', () => {
    for (const code of Object.keys(ErrorCodes)) assert.ok(hasRow(reference, code), `error code ${code}`);
  });

  it('documents every setting with its flag', () => {
    for (const [name, spec] of Object.entries(OPTIONS)) {
      assert.ok(hasRow(reference, spec.env, `--${flagName(name)}`), `setting ${spec.env}`);
    }
  });

  it('documents every dead-letter reason', () => {
    for (const reason of Object.keys(RejectReasons)) assert.ok(hasRow(reference, reason), `reason ${reason}`);
  });
});

describe('README.md', () => {
  it('opens with the two commands', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    assert.match(firstBlock, /npm run quickstart/);
    assert.match(firstBlock, /^npm test\b/m);
  });

  it('stays a newcomer page of about 1,500 words', () => {
    const words = readme.split(/\s+/).filter((word) => word !== '').length;
    assert.ok(words <= 1_800, `README.md has ${words} words; move reference material to docs/`);
  });
});

describe('links', () => {
  it('point at files that exist, from the README and every page in docs/', () => {
    const pages = ['README.md', ...readdirSync('docs').map((file) => join('docs', file))];
    for (const page of pages) {
      const text = readFileSync(page, 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        assert.ok(
          existsSync(join(dirname(page), target!)),
          `${page} links to ${target}, which does not exist`,
        );
      }
    }
  });
});
