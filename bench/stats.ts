/** Nearest-rank percentile of an ascending array: the smallest value with at least p% at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Sum of a metric over all its label sets in Prometheus text, or undefined if it is absent. */
export function metricSum(text: string, name: string): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    total = (total ?? 0) + Number(match[3]);
  }
  return total;
}

export function round(value: number, digits = 0): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * Per label value of one label of a histogram in Prometheus text: the mean, and the upper bound of
 * the bucket holding the q-th quantile (so "p99 <= x"), in the histogram's unit.
 */
export function histogramByLabel(
  text: string,
  name: string,
  label: string,
  q: number,
): Record<string, { count: number; mean: number; quantile_le: number }> {
  const buckets = new Map<string, [number, number][]>();
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  const labelPattern = new RegExp(`${label}="([^"]*)"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)/.exec(line);
    if (!match) continue;
    const value = labelPattern.exec(match[2]!)?.[1];
    if (value === undefined) continue;
    const number = Number(match[3]);
    if (match[1] === `${name}_sum`) sums.set(value, number);
    else if (match[1] === `${name}_count`) counts.set(value, number);
    else if (match[1] === `${name}_bucket`) {
      const le = /le="([^"]*)"/.exec(match[2]!)?.[1];
      if (le === undefined) continue;
      const list = buckets.get(value) ?? [];
      list.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), number]);
      buckets.set(value, list);
    }
  }
  const result: Record<string, { count: number; mean: number; quantile_le: number }> = {};
  for (const [value, count] of counts) {
    if (count === 0) continue;
    const sorted = (buckets.get(value) ?? []).sort((a, b) => a[0] - b[0]);
    const quantile = sorted.find(([, cumulative]) => cumulative >= q * count)?.[0] ?? Number.NaN;
    result[value] = { count, mean: (sums.get(value) ?? 0) / count, quantile_le: quantile };
  }
  return result;
}
