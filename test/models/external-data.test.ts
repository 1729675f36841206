import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { OnnxFormatError, externalReferences } from '../../src/models/external-data.js';

const fixture = (version: string) => readFileSync(`test/fixtures/models/external/${version}/model.onnx`);

describe('externalReferences', () => {
  it('finds no external data in a model that keeps its tensors inside', () => {
    assert.deepEqual(externalReferences(fixture('1')), []);
    assert.deepEqual(externalReferences(readFileSync('models/fraud/1/model.onnx')), []);
  });

  it('finds initializers read from one file, and a Constant node tensor read from another', () => {
    assert.deepEqual(externalReferences(fixture('2')), [
      { location: 'weights.bin', tensors: ['weights', 'bias'] },
    ]);
    assert.deepEqual(externalReferences(fixture('3')), [{ location: 'constant.bin', tensors: ['bias'] }]);
    assert.deepEqual(externalReferences(fixture('4')), [
      { location: '../weights.bin', tensors: ['weights', 'bias'] },
    ]);
  });

  it('refuses bytes that are not a protobuf it can walk, wherever they end', () => {
    const bytes = fixture('2');
    for (let end = 1; end < bytes.length; end += 7) {
      try {
        externalReferences(bytes.subarray(0, end));
      } catch (error) {
        assert.ok(error instanceof OnnxFormatError, `cut at ${end}: ${String(error)}`);
      }
    }
    assert.throws(() => externalReferences(Buffer.from([0x3a, 0xff, 0xff, 0xff, 0x0f])), OnnxFormatError);
    assert.throws(() => externalReferences(Buffer.from([0x0b])), /wire type 3/);
  });

  it('bounds how deep graphs may nest', () => {
    // ModelProto.graph (7) > GraphProto.node (1) > NodeProto.attribute (5) > AttributeProto.g (6) > ...
    let inner: Buffer = Buffer.alloc(0);
    for (let level = 0; level < 40; level += 1) {
      const attribute = frame(6, inner);
      const node = frame(5, attribute);
      inner = frame(1, node);
    }
    assert.throws(() => externalReferences(frame(7, inner)), /nest deeper than/);
  });
});

/** A length-delimited protobuf field. */
function frame(field: number, body: Buffer): Buffer {
  const length: number[] = [];
  let n = body.length;
  do {
    length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...length]), body]);
}
