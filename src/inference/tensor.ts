/**
 * Row-major float32 matrix (rows x features) from validated feature maps, columns in the model's
 * order. Values were checked finite at validation; float32 rounding happens here, as in training.
 */
export function buildMatrix(
  rows: readonly Record<string, number>[],
  featureNames: readonly string[],
): Float32Array {
  const width = featureNames.length;
  const matrix = new Float32Array(rows.length * width);
  for (let r = 0; r < rows.length; r += 1) {
    const features = rows[r]!;
    const base = r * width;
    for (let c = 0; c < width; c += 1) matrix[base + c] = features[featureNames[c]!]!;
  }
  return matrix;
}

/**
 * Rows holding a NaN. Validation already refused NaN feature values, so a NaN here means the row
 * lacks a feature this model needs (it was validated for another routing); such rows are
 * dead-lettered, not scored.
 */
export function incompleteRows(matrix: Float32Array, width: number): number[] {
  const rows: number[] = [];
  for (let i = 0; i < matrix.length; i += 1) {
    if (matrix[i] !== matrix[i]) {
      const row = Math.floor(i / width);
      rows.push(row);
      i = (row + 1) * width - 1;
    }
  }
  return rows;
}
