import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { packTopicMessages, unpackTopicMessages } from '../../src/kafka/record-pack.js';

describe('record packing for the producer thread', () => {
  it('round-trips topics, keys, values and headers, nulls and repeated header names included', () => {
    const pooled = Buffer.from('a small value'); // from the shared allocation pool
    const unpacked = unpackTopicMessages(
      packTopicMessages([
        {
          topic: 'predictions',
          messages: [
            { key: 'entity-é', value: pooled },
            { key: null, value: null, headers: { reason: 'EMPTY_VALUE', raw: Buffer.from([0, 255]) } },
            { key: Buffer.alloc(0), value: Buffer.alloc(0), headers: { seen: ['one', Buffer.from('two')] } },
          ],
        },
        { topic: 'empty', messages: [] },
        { topic: 'dlq', messages: [{ key: 'k', value: 'text' }] },
      ]),
    );
    const text = (value: unknown) => (Buffer.isBuffer(value) ? value.toString() : value);
    assert.deepEqual(
      unpacked.map(({ topic, messages }) => ({
        topic,
        messages: messages.map((m) => ({
          key: text(m.key),
          value: text(m.value),
          headers:
            m.headers === undefined
              ? undefined
              : Object.fromEntries(
                  Object.entries(m.headers).map(([k, v]) => [k, Array.isArray(v) ? v.map(text) : text(v)]),
                ),
        })),
      })),
      [
        {
          topic: 'predictions',
          messages: [
            { key: 'entity-é', value: 'a small value', headers: undefined },
            {
              key: null,
              value: null,
              headers: { reason: 'EMPTY_VALUE', raw: Buffer.from([0, 255]).toString() },
            },
            { key: '', value: '', headers: { seen: ['one', 'two'] } },
          ],
        },
        { topic: 'empty', messages: [] },
        { topic: 'dlq', messages: [{ key: 'k', value: 'text', headers: undefined }] },
      ],
    );
  });

  it('packs only the bytes of the records, not the buffers they are views of', () => {
    const response = Buffer.alloc(1_000_000, 7); // e.g. a whole fetch response
    const packed = packTopicMessages([
      { topic: 't', messages: [{ key: response.subarray(0, 10), value: response.subarray(10, 20) }] },
    ]);
    assert.ok(packed.byteLength < 100, `${packed.byteLength} bytes`);
  });

  it('refuses records with a partition or timestamp set, which it does not carry', () => {
    assert.throws(
      () => packTopicMessages([{ topic: 't', messages: [{ value: 'v', partition: 1 }] }]),
      TypeError,
    );
    assert.throws(
      () => packTopicMessages([{ topic: 't', messages: [{ value: 'v', timestamp: '1' }] }]),
      TypeError,
    );
  });
});
