import { readFile } from 'node:fs/promises';
import { StreamscoreError } from '../errors.js';

/**
 * How the drift monitor judges a feature (docs/drift.md): `numeric` on its frozen quantile bins,
 * with a location statistic accumulated across windows; `categorical` by the rate of each category
 * (one bin per value); `cyclical` (a time of day or week, which follows the clock in time-ordered
 * traffic) is not compared with the whole-cycle reference: it is reported as excluded, and the
 * other features and outputs are compared with the reference of the same time slices.
 */
export type FeatureRole = 'numeric' | 'categorical' | 'cyclical';

export const FEATURE_ROLES: readonly FeatureRole[] = ['numeric', 'categorical', 'cyclical'];

export function isFeatureRole(value: unknown): value is FeatureRole {
  return typeof value === 'string' && (FEATURE_ROLES as readonly string[]).includes(value);
}

/**
 * One feature's or output's distribution on the training data, as training/train.py writes it
 * into reference.json (see training/README.md). Bins are frozen here: live data never moves them.
 */
export interface DistributionProfile {
  count: number;
  mean: number;
  /** Population standard deviation (ddof 0). */
  std: number;
  min: number;
  max: number;
  quantiles: Readonly<Record<string, number>>;
  /**
   * Finite inner bin edges, strictly ascending; the two end bins are open. With k edges there are
   * k + 1 bins, closed on the right: bin 0 = (-inf, edges[0]], bin i = (edges[i-1], edges[i]],
   * bin k = (edges[k-1], +inf).
   */
  edges: readonly number[];
  /** Training rows per bin, edges.length + 1 entries, summing to count. */
  counts: readonly number[];
  /** The role the training script chose (outputs are numeric); reference.json without one: numeric. */
  role: FeatureRole;
  /** Why that role, as the training script printed it. */
  roleReason: string;
}

/**
 * The reference split by the time slices of a cyclical feature (one slice per bin of that
 * feature): for every other feature and output that depends on the slice in the training data,
 * counts[slice][bin] on its own frozen bins. The others are compared with the whole reference.
 */
export interface TimeSlices {
  /** The cyclical feature whose bins are the slices. */
  feature: string;
  features: ReadonlyMap<string, readonly (readonly number[])[]>;
  outputs: ReadonlyMap<string, readonly (readonly number[])[]>;
}

/** The reference profile of one model version: every input feature and every profiled output. */
export interface ReferenceProfile {
  name: string;
  version: string;
  /** In the model's tensor order. */
  features: ReadonlyMap<string, DistributionProfile>;
  outputs: ReadonlyMap<string, DistributionProfile>;
  /** Present when a cyclical feature carries per-slice counts. */
  slices?: TimeSlices;
  /** The file it was read from, for messages. */
  source: string;
}

/**
 * The bin of x: the number of edges strictly below x (numpy searchsorted side="left"), so a value
 * equal to an edge falls in the bin that edge closes. Binary search, so wide profiles stay cheap.
 */
export function binIndex(edges: readonly number[], x: number): number {
  let low = 0;
  let high = edges.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (edges[mid]! < x) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Share of the reference rows in each bin. */
export function referenceProportions(profile: DistributionProfile): number[] {
  const total = profile.counts.reduce((sum, c) => sum + c, 0);
  return profile.counts.map((c) => c / total);
}

/** Reads and checks models/<name>/<version>/reference.json; `expected` names the version it must be. */
export async function readReference(
  path: string,
  expected?: { name: string; version: string },
): Promise<ReferenceProfile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new StreamscoreError('MODEL_INVALID', `Cannot read reference profile ${path}`, {
      cause: error,
      context: { path, model: expected?.name, version: expected?.version },
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new StreamscoreError('MODEL_INVALID', `${path} is not valid JSON`, {
      cause: error,
      context: { path, model: expected?.name, version: expected?.version },
    });
  }
  return parseReference(json, path, expected);
}

/**
 * Checks a parsed reference.json and returns it frozen. Every problem is reported at once, each
 * naming its field (`features.amount.edges[3]`), so a broken profile is fixed in one pass.
 */
export function parseReference(
  json: unknown,
  source: string,
  expected?: { name: string; version: string },
): ReferenceProfile {
  const problems: string[] = [];
  const root = isObject(json) ? json : {};
  if (!isObject(json)) problems.push(`expected a JSON object, got ${describe(json)}`);
  const name = root.name;
  const version = root.version;
  if (typeof name !== 'string' || name === '') problems.push(`"name" must be a non-empty string`);
  if (typeof version !== 'string' || version === '') problems.push(`"version" must be a non-empty string`);
  if (expected !== undefined && typeof name === 'string' && typeof version === 'string') {
    if (name !== expected.name || version !== expected.version) {
      problems.push(`names ${name}/${version}, but it belongs to ${expected.name}/${expected.version}`);
    }
  }
  const features = parseSection(root.features, 'features', problems, true);
  const outputs = parseSection(root.outputs, 'outputs', problems, false);
  const slices = parseSlices(root.features, features, outputs, problems);
  if (problems.length > 0) {
    throw new StreamscoreError(
      'MODEL_INVALID',
      `Reference profile ${source} is invalid: ${problems.join('; ')}`,
      { context: { path: source, model: expected?.name, version: expected?.version } },
    );
  }
  return Object.freeze({
    name: name as string,
    version: version as string,
    features,
    outputs,
    ...(slices === undefined ? {} : { slices }),
    source,
  });
}

/** The first cyclical feature's `slices`, checked against every profile's bins and count. */
function parseSlices(
  raw: unknown,
  features: ReadonlyMap<string, DistributionProfile>,
  outputs: ReadonlyMap<string, DistributionProfile>,
  problems: string[],
): TimeSlices | undefined {
  if (!isObject(raw)) return undefined;
  const name = [...features].find(([, p]) => p.role === 'cyclical')?.[0];
  const entry = name === undefined ? undefined : raw[name];
  if (name === undefined || !isObject(entry) || entry.slices === undefined) return undefined;
  const field = `features.${name}.slices`;
  const before = problems.length;
  if (!isObject(entry.slices)) {
    problems.push(`${field} must be an object, got ${describe(entry.slices)}`);
    return undefined;
  }
  const sliceCount = features.get(name)!.counts.length;
  const section = (key: 'features' | 'outputs', profiles: ReadonlyMap<string, DistributionProfile>) => {
    const tables = new Map<string, readonly (readonly number[])[]>();
    const value = (entry.slices as Record<string, unknown>)[key];
    if (!isObject(value)) {
      problems.push(`${field}.${key} must be an object of name -> counts, got ${describe(value)}`);
      return tables;
    }
    for (const [subject, table] of Object.entries(value)) {
      const profile = profiles.get(subject);
      const where = `${field}.${key}.${subject}`;
      if (profile === undefined || (key === 'features' && subject === name)) {
        problems.push(
          `${where}: "${subject}" is not another profiled ${key === 'features' ? 'feature' : 'output'}`,
        );
        continue;
      }
      const width = profile.counts.length;
      const wellFormed =
        Array.isArray(table) &&
        table.length === sliceCount &&
        table.every(
          (row) =>
            Array.isArray(row) &&
            row.length === width &&
            row.every((c) => typeof c === 'number' && Number.isInteger(c) && c >= 0),
        );
      if (!wellFormed) {
        problems.push(`${where} must be ${sliceCount} rows (one per slice) of ${width} counts (one per bin)`);
        continue;
      }
      const rows = (table as number[][]).map((row) => Object.freeze([...row]));
      const total = rows.reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0);
      if (total !== profile.count) problems.push(`${where} sums to ${total}, but count is ${profile.count}`);
      tables.set(subject, Object.freeze(rows));
    }
    return tables;
  };
  const sliced = {
    feature: name,
    features: section('features', features),
    outputs: section('outputs', outputs),
  };
  return problems.length > before ? undefined : Object.freeze(sliced);
}

function parseSection(
  value: unknown,
  section: string,
  problems: string[],
  required: boolean,
): Map<string, DistributionProfile> {
  const profiles = new Map<string, DistributionProfile>();
  if (value === undefined && !required) return profiles;
  if (!isObject(value)) {
    problems.push(`"${section}" must be an object of name -> profile, got ${describe(value)}`);
    return profiles;
  }
  if (required && Object.keys(value).length === 0) problems.push(`"${section}" is empty`);
  for (const [name, raw] of Object.entries(value)) {
    const profile = parseProfile(raw, `${section}.${name}`, problems);
    if (profile !== undefined) profiles.set(name, profile);
  }
  return profiles;
}

function parseProfile(raw: unknown, field: string, problems: string[]): DistributionProfile | undefined {
  if (!isObject(raw)) {
    problems.push(`${field} must be an object, got ${describe(raw)}`);
    return undefined;
  }
  const before = problems.length;
  const number = (key: string): number => {
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      problems.push(`${field}.${key} must be a finite number, got ${describe(v)}`);
      return Number.NaN;
    }
    return v;
  };
  const count = number('count');
  const mean = number('mean');
  const std = number('std');
  const min = number('min');
  const max = number('max');
  if (Number.isFinite(std) && std < 0) problems.push(`${field}.std must be >= 0, got ${std}`);

  const quantiles: Record<string, number> = {};
  if (raw.quantiles !== undefined) {
    if (!isObject(raw.quantiles)) {
      problems.push(`${field}.quantiles must be an object, got ${describe(raw.quantiles)}`);
    } else {
      for (const [q, v] of Object.entries(raw.quantiles)) {
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          problems.push(`${field}.quantiles.${q} must be a finite number, got ${describe(v)}`);
        } else quantiles[q] = v;
      }
    }
  }

  const edges = raw.edges;
  const counts = raw.counts;
  if (!Array.isArray(edges)) {
    problems.push(`${field}.edges must be an array of numbers, got ${describe(edges)}`);
  } else {
    edges.forEach((e, i) => {
      if (typeof e !== 'number' || !Number.isFinite(e)) {
        problems.push(`${field}.edges[${i}] must be a finite number, got ${describe(e)}`);
      } else if (i > 0 && typeof edges[i - 1] === 'number' && !(e > (edges[i - 1] as number))) {
        problems.push(
          `${field}.edges must be strictly ascending: edges[${i}] = ${e} after ${edges[i - 1] as number}`,
        );
      }
    });
  }
  if (!Array.isArray(counts)) {
    problems.push(`${field}.counts must be an array of counts, got ${describe(counts)}`);
  } else {
    counts.forEach((c, i) => {
      if (typeof c !== 'number' || !Number.isInteger(c) || c < 0) {
        problems.push(`${field}.counts[${i}] must be an integer >= 0, got ${describe(c)}`);
      }
    });
    if (Array.isArray(edges) && counts.length !== edges.length + 1) {
      problems.push(
        `${field}.counts has ${counts.length} entries; ${edges.length} edges make ${edges.length + 1} bins`,
      );
    }
    const total = counts.reduce((sum: number, c) => sum + (typeof c === 'number' ? c : 0), 0);
    if (Number.isFinite(count) && total !== count) {
      problems.push(`${field}.counts sum to ${total}, but count is ${count}`);
    }
    if (total <= 0) problems.push(`${field}.counts are all zero`);
  }
  let role: FeatureRole = 'numeric';
  if (raw.role !== undefined) {
    if (isFeatureRole(raw.role)) role = raw.role;
    else problems.push(`${field}.role must be one of ${FEATURE_ROLES.join(', ')}, got ${describe(raw.role)}`);
  }
  if (problems.length > before) return undefined;
  return Object.freeze({
    role,
    roleReason: typeof raw.roleReason === 'string' ? raw.roleReason : 'no role in reference.json',
    count,
    mean,
    std,
    min,
    max,
    quantiles: Object.freeze(quantiles),
    edges: Object.freeze([...(edges as number[])]),
    counts: Object.freeze([...(counts as number[])]),
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}
