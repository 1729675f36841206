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

/**
 * An event's features as the pipeline holds them: a float32 row in `layout` order (the primary's
 * feature list when the event was decoded), and the decoded map only when a live version needs
 * features outside that layout. A row is ~4 bytes a feature; the decoded map of a wide model is
 * tens of kB and would otherwise live until the event's prediction is acknowledged.
 */
export interface FeatureRow {
  row: Float32Array;
  layout: readonly string[];
  features?: Readonly<Record<string, number>> | undefined;
}

export function toFeatureRow(
  features: Readonly<Record<string, number>>,
  layout: readonly string[],
  keepMap: boolean,
): FeatureRow {
  const row = new Float32Array(layout.length);
  for (let c = 0; c < layout.length; c += 1) row[c] = features[layout[c]!]!;
  return keepMap ? { row, layout, features } : { row, layout };
}

/**
 * The batch matrix for a model's feature order. Rows in that order are copied whole; otherwise
 * columns come from the row by name, or from the kept map. A feature found in neither is NaN,
 * which incompleteRows() reports.
 */
export function matrixOf(entries: readonly FeatureRow[], featureNames: readonly string[]): Float32Array {
  const width = featureNames.length;
  const matrix = new Float32Array(entries.length * width);
  // Per distinct layout (usually one per batch): copy rows whole, or where each column comes from.
  const plans = new Map<readonly string[], true | (number | undefined)[]>();
  for (let r = 0; r < entries.length; r += 1) {
    const entry = entries[r]!;
    let plan = plans.get(entry.layout);
    if (plan === undefined) {
      plan = sameNames(entry.layout, featureNames)
        ? true
        : featureNames.map((name) => {
            const index = entry.layout.indexOf(name);
            return index < 0 ? undefined : index;
          });
      plans.set(entry.layout, plan);
    }
    const base = r * width;
    if (plan === true) {
      matrix.set(entry.row, base);
      continue;
    }
    for (let c = 0; c < width; c += 1) {
      const index = plan[c];
      matrix[base + c] =
        index !== undefined ? entry.row[index]! : (entry.features?.[featureNames[c]!] ?? Number.NaN);
    }
  }
  return matrix;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}
