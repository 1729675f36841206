import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { readReference } from '../../src/drift/reference.js';
import { isStreamscoreError } from '../../src/errors.js';
import { ModelRunner } from '../../src/inference/runner.js';
import { LiveModels } from '../../src/models/live.js';
import { ModelRepository } from '../../src/models/repository.js';
import { checkVariant, compareRunners, featureSampler, referenceRows } from '../../src/models/variant.js';

const CPU = { executionProvider: 'cpu' as const, threads: 1 };

/** fraud/2 declared a variant of fraud/1 with the given limits (the two really do differ). */
function declareVariant(root: string, limits: { maxScoreDiff: number; minAgreement: number }, of = '1') {
  const path = join(root, 'fraud', '2', 'model.json');
  const metadata = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  metadata.precision = 'int8';
  metadata.variant = { of, limits };
  writeFileSync(path, JSON.stringify(metadata));
}

describe('model variants', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'streamscore-variant-'));
    cpSync('models/fraud/1', join(root, 'fraud', '1'), { recursive: true });
    cpSync('models/fraud/2', join(root, 'fraud', '2'), { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('draws reference rows that follow each feature: its range, its median, whole numbers where it has them', async () => {
    const reference = await readReference('models/fraud/1/reference.json');
    const names = [...reference.features.keys()];
    const rows = 4_000;
    const matrix = referenceRows(reference.features, names, rows);
    assert.deepEqual(matrix, referenceRows(reference.features, names, rows), 'the same rows every time');
    names.forEach((name, column) => {
      const profile = reference.features.get(name)!;
      const values = Array.from({ length: rows }, (_, row) => matrix[row * names.length + column]!).sort(
        (a, b) => a - b,
      );
      assert.ok(
        values[0]! >= Math.fround(profile.min) && values[rows - 1]! <= Math.fround(profile.max),
        name,
      );
      const median = values[rows / 2]!;
      const spread = Math.max(1e-9, profile.quantiles.p75! - profile.quantiles.p25!);
      assert.ok(Math.abs(median - profile.quantiles.p50!) <= 0.1 * spread + 1, `${name}: median ${median}`);
      const whole = [profile.min, profile.max, ...profile.edges].every(Number.isInteger);
      if (whole) assert.ok(values.every(Number.isInteger), `${name} is drawn as whole numbers`);
    });
    const sampler = featureSampler({
      count: 10,
      mean: 0,
      std: 1,
      min: -10,
      max: 10,
      quantiles: { p01: -5, p05: -2, p25: -1, p50: 0, p75: 1, p95: 2, p99: 5 },
      edges: [-0.5, 0.5],
      counts: [3, 4, 3],
      role: 'numeric',
      roleReason: 'test',
    });
    assert.equal(sampler(0.5), 0);
    assert.equal(sampler(0.375), -0.5);
    assert.equal(sampler(1), 10);
  });

  it('measures the largest score difference and the decision agreement against an offline count', async () => {
    const repository = new ModelRepository('models');
    const [one, two] = await Promise.all(
      ['1', '2'].map(async (v) => ModelRunner.load(await repository.load('fraud', v), CPU)),
    );
    try {
      const reference = await readReference('models/fraud/1/reference.json');
      const matrix = referenceRows(reference.features, one!.featureNames, 1_000);
      const check = await compareRunners(two!, one!, matrix, 1_000);
      const a = (await two!.score(matrix.slice(), 1_000)).get('score')!;
      const b = (await one!.score(matrix.slice(), 1_000)).get('score')!;
      let max = 0;
      let agreed = 0;
      for (let i = 0; i < 1_000; i += 1) {
        max = Math.max(max, Math.abs(a[i]! - b[i]!));
        if (a[i]! > 0.5 === b[i]! > 0.5) agreed += 1;
      }
      assert.equal(check.maxScoreDiff, max);
      assert.equal(check.agreement, agreed / 1_000);
      assert.ok(max > 0.01, 'the two versions really differ, so the limits below mean something');
    } finally {
      await one!.release();
      await two!.release();
    }
  });

  it('passes a variant within its limits and refuses one beyond them, in serve and in models validate alike', async () => {
    declareVariant(root, { maxScoreDiff: 1, minAgreement: 0 });
    const repository = new ModelRepository(root);
    const runner = await ModelRunner.load(await repository.load('fraud', '2'), CPU);
    try {
      const check = await checkVariant(repository, runner, CPU);
      assert.ok(check !== undefined && check.rows === 2_048 && check.maxScoreDiff > 0);

      declareVariant(root, { maxScoreDiff: 0.001, minAgreement: 0.9999 });
      const strict = await ModelRunner.load(await repository.load('fraud', '2'), CPU);
      try {
        await assert.rejects(checkVariant(repository, strict, CPU), (error: unknown) => {
          assert.ok(isStreamscoreError(error) && error.code === 'MODEL_INVALID');
          assert.equal(error.context.reason, 'variant');
          assert.match(
            error.message,
            /fraud\/2 \(a variant of fraud\/1\): largest score difference [\d.]+ > limit 0\.001/,
          );
          return true;
        });
      } finally {
        await strict.release();
      }
    } finally {
      await runner.release();
    }

    const refused: [string, string, string][] = [];
    const live = new LiveModels({
      repository,
      model: 'fraud',
      runner: CPU,
      logger: pino({ level: 'silent' }),
      events: {
        loaded: () => undefined,
        refused: (version, reason, message) => refused.push([version, reason, message]),
        restarted: () => undefined,
        switched: () => undefined,
      },
    });
    try {
      const routing = await live.apply({ primary: '1', canary: { version: '2', share: 0.5 }, shadows: [] });
      assert.equal(routing.canary, undefined, 'a variant beyond its limits takes no traffic');
      assert.equal(refused[0]?.[0], '2');
      assert.equal(refused[0]?.[1], 'variant');
    } finally {
      await live.close();
    }
  });

  it('refuses a variant whose source is missing or takes other features', async () => {
    declareVariant(root, { maxScoreDiff: 1, minAgreement: 0 }, '9');
    const repository = new ModelRepository(root);
    const runner = await ModelRunner.load(await repository.load('fraud', '2'), CPU);
    try {
      await assert.rejects(checkVariant(repository, runner, CPU), /its source version cannot be loaded/);
    } finally {
      await runner.release();
    }
    cpSync('models/heavy/1', join(root, 'fraud', '9'), { recursive: true });
    const heavy = join(root, 'fraud', '9', 'model.json');
    writeFileSync(
      heavy,
      JSON.stringify({ ...(JSON.parse(readFileSync(heavy, 'utf8')) as object), name: 'fraud', version: '9' }),
    );
    const again = await ModelRunner.load(await repository.load('fraud', '2'), CPU);
    try {
      await assert.rejects(checkVariant(repository, again, CPU), /does not take the same features/);
    } finally {
      await again.release();
    }
  });

  it('checks the committed int8 variant of heavy/1 within its limits', async () => {
    const repository = new ModelRepository('models');
    const runner = await ModelRunner.load(await repository.load('heavy', '2'), CPU);
    try {
      assert.equal(runner.metadata.precision, 'int8');
      const check = await checkVariant(repository, runner, CPU);
      const limits = runner.metadata.variant!.limits;
      assert.ok(check!.maxScoreDiff > 0, 'an int8 copy does not score exactly like its source');
      assert.ok(check!.maxScoreDiff <= limits.maxScoreDiff && check!.agreement >= limits.minAgreement);
    } finally {
      await runner.release();
    }
  });
});
