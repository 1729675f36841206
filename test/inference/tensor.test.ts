import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildMatrix, incompleteRows, matrixOf, toFeatureRow } from '../../src/inference/tensor.js';

const layout = ['a', 'b', 'c'];
const features = { a: 1, b: 2, c: 3, d: 4 };

describe('feature rows and batch matrices', () => {
  it('copies rows whole when the model takes the layout order, as buildMatrix would from the maps', () => {
    const rows = [toFeatureRow(features, layout, false), toFeatureRow({ a: 5, b: 6, c: 7 }, layout, false)];
    assert.equal(rows[0]!.features, undefined, 'the decoded map is not kept');
    const expected = buildMatrix([features, { a: 5, b: 6, c: 7 }], layout);
    assert.deepEqual(matrixOf(rows, layout), expected);
    assert.deepEqual(matrixOf(rows, ['a', 'b', 'c']), expected, 'an equal list, not the same array');
  });

  it('reorders and subsets columns by name for another version', () => {
    const rows = [toFeatureRow(features, layout, false)];
    assert.deepEqual([...matrixOf(rows, ['c', 'a'])], [3, 1]);
  });

  it('takes features outside the layout from the kept map, and marks what neither has as missing', () => {
    const kept = [toFeatureRow(features, layout, true)];
    assert.deepEqual([...matrixOf(kept, ['d', 'a'])], [4, 1]);
    const dropped = [toFeatureRow(features, layout, false), toFeatureRow(features, layout, true)];
    const matrix = matrixOf(dropped, ['a', 'd']);
    assert.deepEqual(incompleteRows(matrix, 2), [0]);
  });
});
