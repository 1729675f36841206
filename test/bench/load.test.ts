import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PackedMessages } from '../../bench/load.js';

describe('PackedMessages (bench schedule)', () => {
  it('gives back every key and value as pushed, across chunks', () => {
    const packed = new PackedMessages(4);
    const big = Buffer.alloc(9 * 1_024 * 1_024, 7); // larger than a chunk: gets one of its own
    const values = [Buffer.from('first value'), big, Buffer.from([0, 1, 2]), Buffer.alloc(0)];
    const keys = ['entity-1', 'entity-22', 'ключ', 'k'];
    for (let i = 0; i < 4; i += 1) packed.push(keys[i]!, values[i]!);
    assert.equal(packed.length, 4);
    const all = packed.slice(0, 10);
    assert.equal(all.length, 4);
    for (let i = 0; i < 4; i += 1) {
      assert.equal((all[i]!.key as Buffer).toString('utf8'), keys[i]);
      assert.ok((all[i]!.value as Buffer).equals(values[i]!), `value ${i}`);
    }
    const middle = packed.slice(2, 3);
    assert.equal(middle.length, 1);
    assert.equal((middle[0]!.key as Buffer).toString('utf8'), 'ключ');
    assert.throws(() => packed.push('one-too-many', Buffer.from('x')), RangeError);
  });
});
