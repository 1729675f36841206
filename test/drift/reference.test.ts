import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { binIndex, parseReference, readReference, referenceProportions } from '../../src/drift/reference.js';
import { versionProfile } from '../../src/drift/window.js';

const FRAUD_1 = 'models/fraud/1/reference.json';

function invalid(pattern: RegExp) {
  return (error: unknown) =>
    error instanceof StreamscoreError && error.code === 'MODEL_INVALID' && pattern.test(error.message);
}

function fraudJson(): Record<string, unknown> {
  return JSON.parse(readFileSync(FRAUD_1, 'utf8')) as Record<string, unknown>;
}

describe('readReference', () => {
  it('loads every committed reference profile, features in tensor order', async () => {
    for (const [name, version] of [
      ['fraud', '1'],
      ['fraud', '2'],
      ['heavy', '1'],
    ] as const) {
      const reference = await readReference(`models/${name}/${version}/reference.json`, { name, version });
      assert.equal(reference.name, name);
      assert.ok(reference.outputs.has('score'));
      for (const profile of [...reference.features.values(), ...reference.outputs.values()]) {
        assert.equal(profile.counts.length, profile.edges.length + 1);
      }
    }
    const fraud = await readReference(FRAUD_1);
    const metadata = JSON.parse(readFileSync('models/fraud/1/model.json', 'utf8')) as {
      inputs: { features: string[] }[];
    };
    assert.deepEqual([...fraud.features.keys()], metadata.inputs[0]!.features);
    assert.deepEqual(fraud.features.get('is_foreign')!.edges, [0]);
    assert.ok(Object.isFrozen(fraud));
  });

  it('says which file cannot be read or parsed', async () => {
    await assert.rejects(readReference('models/fraud/404/reference.json'), invalid(/Cannot read .*404/));
  });

  it('names the file and every bad field at once', () => {
    const json = fraudJson();
    const features = json.features as Record<string, Record<string, unknown>>;
    features.amount!.edges = [1, 3, 2];
    features.merchant_risk!.counts = [1, 2];
    delete features.hour_of_day!.std;
    json.version = 7;
    assert.throws(
      () => parseReference(json, 'x/reference.json'),
      (error: unknown) => {
        assert.ok(error instanceof StreamscoreError);
        assert.equal(error.code, 'MODEL_INVALID');
        assert.equal(error.context.path, 'x/reference.json');
        assert.match(error.message, /^Reference profile x\/reference\.json is invalid/);
        assert.match(error.message, /"version" must be a non-empty string/);
        assert.match(
          error.message,
          /features\.amount\.edges must be strictly ascending: edges\[2\] = 2 after 3/,
        );
        assert.match(error.message, /features\.merchant_risk\.counts has 2 entries; 9 edges make 10 bins/);
        assert.match(error.message, /features\.hour_of_day\.std must be a finite number, got nothing/);
        return true;
      },
    );
  });

  it('refuses counts that do not add up, a profile of another version, and a missing section', () => {
    const json = fraudJson();
    (json.outputs as Record<string, Record<string, unknown>>).score!.count = 1;
    assert.throws(
      () => parseReference(json, 'r.json'),
      invalid(/outputs\.score\.counts sum to 50000, but count is 1/),
    );
    assert.throws(
      () => parseReference(fraudJson(), 'r.json', { name: 'fraud', version: '2' }),
      invalid(/names fraud\/1, but it belongs to fraud\/2/),
    );
    const noFeatures = fraudJson();
    delete noFeatures.features;
    assert.throws(() => parseReference(noFeatures, 'r.json'), invalid(/"features" must be an object/));
    assert.throws(() => parseReference([], 'r.json'), invalid(/expected a JSON object, got an array/));
  });
});

describe('roles', () => {
  it("reads each feature's role and the time slices of the cyclical one", async () => {
    const reference = await readReference(FRAUD_1);
    const roles = Object.fromEntries([...reference.features].map(([name, p]) => [name, p.role]));
    assert.deepEqual(roles, {
      amount: 'numeric',
      account_age_days: 'numeric',
      tx_count_24h: 'numeric',
      distance_from_home_km: 'numeric',
      merchant_risk: 'numeric',
      hour_of_day: 'cyclical',
      is_foreign: 'categorical',
      card_present: 'categorical',
    });
    // One bin (one slice) per hour; only the score depends on the hour in the training data.
    assert.equal(reference.features.get('hour_of_day')!.counts.length, 24);
    assert.equal(reference.slices!.feature, 'hour_of_day');
    assert.deepEqual([...reference.slices!.features.keys()], []);
    const score = reference.slices!.outputs.get('score')!;
    assert.equal(score.length, 24);
    assert.deepEqual(
      score.reduce((sum, row) => sum.map((c, i) => c + row[i]!)),
      [...reference.outputs.get('score')!.counts],
    );
  });

  it('refuses an unknown role and slices that do not fit the bins', () => {
    const json = fraudJson();
    const features = json.features as Record<string, Record<string, unknown>>;
    features.amount!.role = 'ordinal';
    const slices = features.hour_of_day!.slices as { outputs: Record<string, number[][]> };
    slices.outputs.score = slices.outputs.score!.slice(1);
    assert.throws(
      () => parseReference(json, 'r.json'),
      (error: unknown) => {
        assert.match(
          (error as Error).message,
          /features\.amount\.role must be one of numeric, categorical, cyclical/,
        );
        assert.match(
          (error as Error).message,
          /slices\.outputs\.score must be 24 rows \(one per slice\) of 10 counts/,
        );
        return true;
      },
    );
    const legacy = fraudJson();
    for (const profile of Object.values(legacy.features as Record<string, Record<string, unknown>>)) {
      delete profile.role;
    }
    const parsed = parseReference(legacy, 'old.json');
    assert.ok(
      [...parsed.features.values()].every((p) => p.role === 'numeric'),
      'no role: numeric',
    );
    assert.equal(parsed.slices, undefined);
  });

  it("takes roles declared in model.json over the reference's, and names a bad one", async () => {
    const reference = await readReference(FRAUD_1);
    const declared = versionProfile(reference, 0.5, { hour_of_day: 'numeric', tx_count_24h: 'categorical' });
    assert.deepEqual(declared.roles.get('hour_of_day'), {
      role: 'numeric',
      reason: 'declared in model.json',
    });
    assert.equal(declared.roles.get('tx_count_24h')!.role, 'categorical');
    assert.equal(declared.slices, undefined, 'no cyclical feature left: no slices');
    assert.equal(versionProfile(reference).slices?.feature, 'hour_of_day');
    assert.throws(
      () => versionProfile(reference, 0.5, { hour: 'cyclical', amount: 'ordinal' }),
      invalid(
        /drift\.roles" of fraud\/1: "hour" is not a feature of the reference .*; "amount": "ordinal" is not a role; allowed: numeric, categorical, cyclical/,
      ),
    );
  });
});

describe('binIndex', () => {
  const edges = [1, 2, 3, 4, 5];

  it('counts the edges strictly below x: bins are closed on the right, end bins open', () => {
    assert.equal(binIndex(edges, -1e9), 0);
    assert.equal(binIndex(edges, 1), 0);
    assert.equal(binIndex(edges, 1.0000001), 1);
    assert.equal(binIndex(edges, 3), 2);
    assert.equal(binIndex(edges, 5), 4);
    assert.equal(binIndex(edges, 5.5), 5);
    assert.equal(binIndex(edges, Infinity), 5);
    // A binary feature: one edge at 0 gives bins "0" and "above 0".
    assert.equal(binIndex([0], 0), 0);
    assert.equal(binIndex([0], 1), 1);
  });

  it('reproduces the training counts of a discrete feature from its distribution', async () => {
    const reference = await readReference(FRAUD_1);
    const profile = reference.features.get('tx_count_24h')!;
    // tx_count_24h is Poisson(3): bins 0..1, 2, 3, 4, 5, 6+ with edges [1, 2, 3, 4, 5].
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((x) => binIndex(profile.edges, x)),
      [0, 0, 1, 2, 3, 4, 5, 5],
    );
    const proportions = referenceProportions(profile);
    assert.equal(proportions.length, 6);
    assert.ok(Math.abs(proportions.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.equal(proportions[0], 9970 / 50000);
  });
});
