/**
 * A variant is a version derived from another (an int8 copy of a float32 model): before it takes
 * any traffic, it is scored beside its source on reference rows, and refused when its scores move
 * further than its model.json allows (the largest score difference, and the share of rows whose
 * decision at the threshold stays the same).
 *
 * The reference rows are drawn, with a fixed seed, from the source's reference profile
 * (reference.json: the training data's quantiles per feature), so every variant of every model is
 * checked the same way, on data shaped like its training data, with no extra files.
 */
import { join } from 'node:path';
import { readReference, type DistributionProfile } from '../drift/reference.js';
import { StreamscoreError, describeError } from '../errors.js';
import { ModelRunner, type RunnerOptions } from '../inference/runner.js';
import { Random } from '../produce/generator.js';
import type { ModelRepository } from './repository.js';

/** Reference rows a variant is checked on. */
export const VARIANT_CHECK_ROWS = 2_048;
const SEED = 0x5eed;

export interface VariantCheck {
  rows: number;
  maxScoreDiff: number;
  agreement: number;
}

const QUANTILE_POINTS: readonly [string, number][] = [
  ['p01', 0.01],
  ['p05', 0.05],
  ['p25', 0.25],
  ['p50', 0.5],
  ['p75', 0.75],
  ['p95', 0.95],
  ['p99', 0.99],
];

/**
 * A sampler of one feature: the inverse of the piecewise-linear CDF through its minimum, its
 * quantiles and its maximum. A feature whose every recorded value is a whole number (counts,
 * flags) is drawn as whole numbers.
 */
export function featureSampler(profile: DistributionProfile): (u: number) => number {
  const points: [number, number][] = [[0, profile.min]];
  for (const [key, p] of QUANTILE_POINTS) {
    const value = profile.quantiles[key];
    if (typeof value === 'number' && Number.isFinite(value)) points.push([p, value]);
  }
  points.push([1, profile.max]);
  const whole = [profile.min, profile.max, ...profile.edges, ...points.map(([, v]) => v)].every((v) =>
    Number.isInteger(v),
  );
  return (u) => {
    let i = 1;
    while (i < points.length - 1 && points[i]![0] < u) i += 1;
    const [p0, v0] = points[i - 1]!;
    const [p1, v1] = points[i]!;
    const value = p1 > p0 ? v0 + ((u - p0) / (p1 - p0)) * (v1 - v0) : v1;
    return whole ? Math.round(value) : value;
  };
}

/** `rows` rows in the order of `featureNames`, drawn from the profile (fixed seed). */
export function referenceRows(
  features: ReadonlyMap<string, DistributionProfile>,
  featureNames: readonly string[],
  rows: number,
): Float32Array {
  const samplers = featureNames.map((name) => {
    const profile = features.get(name);
    if (profile === undefined) throw new Error(`the reference profile has no feature "${name}"`);
    return featureSampler(profile);
  });
  const random = new Random(SEED);
  const matrix = new Float32Array(rows * featureNames.length);
  for (let row = 0; row < rows; row += 1) {
    for (let column = 0; column < samplers.length; column += 1) {
      matrix[row * samplers.length + column] = samplers[column]!(random.uniform());
    }
  }
  return matrix;
}

/** The output compared: `score`, or the only one. */
function scoreColumn(outputs: Map<string, Float64Array>): Float64Array | undefined {
  return outputs.get('score') ?? (outputs.size === 1 ? [...outputs.values()][0] : undefined);
}

/** Scores the same rows with both and measures how far apart they are. */
export async function compareRunners(
  variant: ModelRunner,
  source: ModelRunner,
  matrix: Float32Array,
  rows: number,
): Promise<VariantCheck> {
  const mine = scoreColumn(await variant.score(matrix.slice(), rows));
  const theirs = scoreColumn(await source.score(matrix.slice(), rows));
  if (mine === undefined || theirs === undefined) {
    throw new Error('neither has a "score" output or a single output to compare');
  }
  const mineThreshold = variant.metadata.threshold ?? 0.5;
  const theirThreshold = source.metadata.threshold ?? 0.5;
  let maxScoreDiff = 0;
  let agreed = 0;
  for (let i = 0; i < rows; i += 1) {
    const difference = Math.abs(mine[i]! - theirs[i]!);
    // A NaN anywhere is as far apart as scores get.
    maxScoreDiff = Number.isNaN(difference) ? Number.POSITIVE_INFINITY : Math.max(maxScoreDiff, difference);
    if (mine[i]! > mineThreshold === theirs[i]! > theirThreshold) agreed += 1;
  }
  return { rows, maxScoreDiff, agreement: agreed / rows };
}

/**
 * Checks a loaded variant against its source version; resolves with the figures, or throws
 * MODEL_INVALID (reason `variant`) naming what is too far apart. A runner without `variant` in its
 * metadata passes at once (undefined).
 */
export async function checkVariant(
  repository: ModelRepository,
  runner: ModelRunner,
  options: RunnerOptions,
): Promise<VariantCheck | undefined> {
  const { variant, name, version } = runner.metadata;
  if (variant === undefined) return undefined;
  const context = { model: name, version, reason: 'variant' };
  const refuse = (message: string, cause?: unknown) =>
    new StreamscoreError(
      'MODEL_INVALID',
      `${name}/${version} (a variant of ${name}/${variant.of}): ${message}`,
      {
        context,
        ...(cause === undefined ? {} : { cause }),
      },
    );
  let source: ModelRunner;
  try {
    source = await ModelRunner.load(await repository.load(name, variant.of), {
      executionProvider: options.executionProvider,
      threads: options.threads,
    });
  } catch (error) {
    throw refuse(`its source version cannot be loaded: ${describeError(error)}`, error);
  }
  try {
    const same =
      source.featureNames.length === runner.featureNames.length &&
      source.featureNames.every((feature, i) => runner.featureNames[i] === feature);
    if (!same) throw refuse('it does not take the same features in the same order as its source');
    let matrix: Float32Array;
    try {
      const reference = await readReference(join(repository.root, name, variant.of, 'reference.json'));
      matrix = referenceRows(reference.features, source.featureNames, VARIANT_CHECK_ROWS);
    } catch (error) {
      throw refuse(`no reference rows to check it on: ${describeError(error)}`, error);
    }
    const check = await compareRunners(runner, source, matrix, VARIANT_CHECK_ROWS);
    const { maxScoreDiff, minAgreement } = variant.limits;
    const problems: string[] = [];
    if (!(check.maxScoreDiff <= maxScoreDiff))
      problems.push(`largest score difference ${round(check.maxScoreDiff)} > limit ${maxScoreDiff}`);
    if (check.agreement < minAgreement)
      problems.push(`decision agreement ${round(check.agreement)} < limit ${minAgreement}`);
    if (problems.length > 0) throw refuse(`${problems.join(', ')} on ${check.rows} reference rows`);
    return check;
  } finally {
    await source.release();
  }
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
