import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { binIndex, parseReference, readReference, referenceProportions } from '../../src/drift/reference.js';

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
