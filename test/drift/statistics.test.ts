import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  PSI_FLOOR,
  chiSquareHomogeneity,
  chiSquareSurvival,
  holmAdjust,
  largestRateChange,
  locationShift,
  logGamma,
  psi,
  regularizedGammaQ,
  sliceMixture,
} from '../../src/drift/statistics.js';
import { Random } from '../../src/produce/generator.js';

/** Relative closeness; exact zero only matches zero. */
function close(actual: number, expected: number, relative = 1e-12, what = ''): void {
  if (expected === 0) {
    assert.equal(actual, 0, what);
    return;
  }
  const error = Math.abs(actual - expected) / Math.abs(expected);
  assert.ok(error <= relative, `${what}: got ${actual}, expected ${expected} (relative error ${error})`);
}

// scipy 1.17.1 (training/.venv): stats.chi2.sf(x, df), special.gammaincc(a, x), special.gammaln(x).
const CHI2_SF: [number, number, number][] = [
  [0.5, 1, 0.47950012218695337],
  [3.841458820694124, 1, 0.04999999999999989],
  [10, 9, 0.3504852123233613],
  [16.918977604620448, 9, 0.05000000000000007],
  [100, 9, 1.5735176303753876e-17],
  [1000, 9, 1.7240681189224405e-209],
  [30, 5, 1.4748581038443073e-5],
  [0.001, 2, 0.9995001249791693],
  [50, 50, 0.47339846855634937],
  [0.2, 0.5, 0.391661154271034],
  [2000, 3, 0],
];
const GAMMA_Q: [number, number, number][] = [
  [0.5, 0.1, 0.6547208460185768],
  [4.5, 5, 0.3504852123233613],
  [4.5, 2, 0.9114125268316792],
  [25, 30, 0.1572420272383916],
  [1, 1, 0.36787944117144245],
];
const LOG_GAMMA: [number, number][] = [
  [0.5, 0.5723649429247],
  [1.5, -0.12078223763524526],
  [4.5, 2.4537365708424423],
  [10, 12.801827480081469],
  [100.5, 361.43554046777757],
  [0.001, 6.907178885383853],
];

describe('p-value functions', () => {
  it('match scipy for the chi-square survival function, tails included', () => {
    for (const [x, df, expected] of CHI2_SF)
      close(chiSquareSurvival(x, df), expected, 1e-10, `chi2.sf(${x}, ${df})`);
    assert.equal(chiSquareSurvival(0, 3), 1);
    assert.throws(() => chiSquareSurvival(1, 0), RangeError);
  });

  it('match scipy for the regularized upper incomplete gamma and log-gamma', () => {
    for (const [a, x, expected] of GAMMA_Q) close(regularizedGammaQ(a, x), expected, 1e-12, `Q(${a}, ${x})`);
    for (const [x, expected] of LOG_GAMMA) close(logGamma(x), expected, 1e-13, `lgamma(${x})`);
    assert.ok(Math.abs(logGamma(1)) < 1e-15 && Math.abs(logGamma(2)) < 1e-15);
  });
});

describe('chiSquareHomogeneity', () => {
  it('equals scipy chi2_contingency (no continuity correction) on a 2 x k table', () => {
    const deciles = chiSquareHomogeneity(
      [230, 190, 205, 210, 180, 195, 200, 190, 205, 195],
      Array(10).fill(5000),
    );
    assert.ok(deciles);
    close(deciles.statistic, 8.15661244218559, 1e-12, 'statistic');
    close(deciles.pValue, 0.5184438766313627, 1e-10, 'p');
    assert.equal(deciles.degreesOfFreedom, 9);
    const skewed = chiSquareHomogeneity([180, 160, 150], [9970, 11350, 28680]);
    assert.ok(skewed);
    close(skewed.statistic, 149.96930551804644, 1e-12, 'statistic');
    close(skewed.pValue, 2.720063728911448e-33, 1e-9, 'p');
  });

  it('is not run with too few events for its approximation, or on an empty window', () => {
    // 40 events over 10 equal bins: 4 expected per bin, below 5.
    assert.equal(chiSquareHomogeneity([4, 4, 4, 4, 4, 4, 4, 4, 4, 4], Array(10).fill(5000)), null);
    assert.ok(chiSquareHomogeneity([5, 5, 5, 5, 5, 5, 5, 5, 5, 5], Array(10).fill(5000)));
    assert.equal(chiSquareHomogeneity([0, 0], [10, 10]), null);
    assert.throws(() => chiSquareHomogeneity([1, 2, 3], [1, 2]), RangeError);
  });

  it('drops bins empty on both sides', () => {
    const result = chiSquareHomogeneity([50, 0, 50], [500, 0, 500]);
    assert.ok(result);
    assert.equal(result.degreesOfFreedom, 1);
    assert.equal(result.statistic, 0);
    assert.equal(result.pValue, 1);
  });
});

describe('psi', () => {
  it('equals the numpy computation, with empty bins floored', () => {
    close(
      psi([230, 190, 205, 210, 180, 195, 200, 190, 205, 195], Array(10).fill(5000))!,
      0.004156970159801616,
    );
    close(psi([0, 100, 300], [100, 100, 100])!, 3.0649592844221454);
    assert.equal(PSI_FLOOR, 1e-4);
  });

  it('is 0 for identical proportions and null for an empty window', () => {
    assert.equal(psi([10, 20, 30], [100, 200, 300]), 0);
    assert.equal(psi([0, 0, 0], [1, 1, 1]), null);
  });
});

describe('holmAdjust', () => {
  it('steps down, keeps monotonicity, caps at 1 and skips nulls', () => {
    const adjusted = holmAdjust([0.01, 0.04, 0.03, 0.005, null]);
    const expected = [0.03, 0.06, 0.06, 0.02, null];
    adjusted.forEach((p, i) => {
      if (expected[i] === null) assert.equal(p, null);
      else close(p!, expected[i]!, 1e-12, `p[${i}]`);
    });
    assert.deepEqual(holmAdjust([0.5, 0.9]), [1, 1]);
    assert.deepEqual(holmAdjust([]), []);
  });
});

describe('locationShift', () => {
  it('is 0 for the reference itself, and the mean ridit minus 1/2 otherwise', () => {
    assert.equal(locationShift([10, 10, 10, 10], [100, 100, 100, 100])!.shift, 0);
    // All of the window in the top bin of four equal ones: ridit 0.75 + 0.125.
    close(locationShift([0, 0, 0, 40], [100, 100, 100, 100])!.shift, 0.375);
    close(locationShift([40, 0, 0, 0], [100, 100, 100, 100])!.shift, -0.375);
    assert.equal(locationShift([0, 0], [10, 10]), null, 'empty window');
    assert.equal(locationShift([5], [10]), null, 'a single bin has no order');
  });

  it('z is standard normal under no drift (windows drawn from the reference)', () => {
    const reference = [9970, 7500, 11200, 8400, 5050, 7880]; // a discrete, uneven feature
    const total = reference.reduce((a, b) => a + b, 0);
    const random = new Random(3);
    const zs: number[] = [];
    for (let w = 0; w < 2_000; w += 1) {
      const live = reference.map(() => 0);
      for (let i = 0; i < 500; i += 1) {
        let u = random.uniform() * total;
        let bin = 0;
        while (u >= reference[bin]!) u -= reference[bin++]!;
        live[bin]! += 1;
      }
      zs.push(locationShift(live, reference)!.z);
    }
    const mean = zs.reduce((a, b) => a + b, 0) / zs.length;
    const sd = Math.sqrt(zs.reduce((a, z) => a + (z - mean) ** 2, 0) / zs.length);
    assert.ok(Math.abs(mean) < 0.08, `mean ${mean}`);
    assert.ok(Math.abs(sd - 1) < 0.06, `sd ${sd}`);
  });
});

describe('largestRateChange', () => {
  it('gives the ratio of the category that moved most, and the factor it moved by at least (95 %)', () => {
    const doubled = largestRateChange([1680, 8320], [4000, 46000])!;
    close(doubled.ratio, 2.1, 1e-12);
    const se = Math.sqrt(0.832 / 1680 + 0.92 / 4000);
    close(doubled.bound, Math.exp(Math.log(2.1) - 1.959964 * se), 1e-9);
    const halved = largestRateChange([400, 9600], [4000, 46000])!;
    close(halved.ratio, 0.5, 1e-12);
    assert.ok(halved.bound > 1.5 && halved.bound < 2);
    assert.deepEqual(largestRateChange([80, 920], [4000, 46000]), { ratio: 1, bound: 1 });
    assert.equal(largestRateChange([0, 0], [1, 1]), null);
  });
});

describe('sliceMixture', () => {
  const table = [
    [80, 20],
    [20, 80],
    [50, 50],
  ];

  it("inside one slice, is that slice's rows", () => {
    assert.deepEqual(sliceMixture(table, [0, 37, 0]), [20, 80]);
  });

  it("mixes slices by the window's shares, at their effective sample size", () => {
    const mixed = sliceMixture(table, [10, 10, 0])!;
    // Shares (0.8 + 0.2) / 2 each; effective size 1 / (0.25 / 100 + 0.25 / 100) = 200.
    close(mixed[0]!, 100, 1e-12);
    close(mixed[1]!, 100, 1e-12);
    assert.equal(sliceMixture(table, [0, 0, 0]), null);
    assert.throws(() => sliceMixture(table, [1, 2]), RangeError);
  });
});
