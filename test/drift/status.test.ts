import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import {
  DEFAULT_THRESHOLDS,
  StatusTracker,
  agreementStatus,
  checkThresholds,
  judgeDistribution,
  worstStatus,
  type Evidence,
  type DriftStatus,
} from '../../src/drift/status.js';

const t = DEFAULT_THRESHOLDS;

function summary(status: DriftStatus, subjects: Record<string, DriftStatus>) {
  return { model: 'fraud', version: '1', status, subjects: new Map(Object.entries(subjects)) };
}

const none: Evidence = {
  role: 'numeric',
  excluded: false,
  psi: null,
  pAdjusted: null,
  rateBound: null,
  shift: null,
  cusum: null,
  outsideShare: null,
};
const status = (evidence: Partial<Evidence>) => judgeDistribution({ ...none, ...evidence }, t).status;

describe('judgeDistribution', () => {
  it('psi: needs both a large PSI and a significant adjusted p-value', () => {
    assert.equal(status({ psi: 0.3, pAdjusted: 0.001 }), 'alert');
    assert.equal(status({ psi: 0.25, pAdjusted: 0.049 }), 'alert');
    assert.equal(status({ psi: 0.1, pAdjusted: 0.001 }), 'warn');
    assert.equal(status({ psi: 0.099, pAdjusted: 1e-30 }), 'ok', 'significant but small: ok');
    assert.equal(status({ psi: 0.9, pAdjusted: 0.05 }), 'ok', 'large but within noise: ok');
    assert.equal(status({ psi: 0.9 }), 'ok', 'not tested: ok');
    assert.equal(status({}), 'ok');
    assert.deepEqual(judgeDistribution({ ...none, psi: 0.3, pAdjusted: 0.001 }, t).flaggedBy, ['psi']);
  });

  it('rate: a categorical rate that moved by 1.25x at least (95 %), in a significant change', () => {
    const categorical = { role: 'categorical' as const, psi: 0.06, pAdjusted: 1e-9 };
    assert.equal(status({ ...categorical, rateBound: 1.6 }), 'alert');
    assert.equal(status({ ...categorical, rateBound: 1.3 }), 'warn');
    assert.equal(status({ ...categorical, rateBound: 1.2 }), 'ok', 'significant but maybe small');
    assert.equal(status({ ...categorical, rateBound: 3, pAdjusted: 0.2 }), 'ok', 'within noise');
    assert.equal(status({ ...categorical, role: 'numeric', rateBound: 3 }), 'ok', 'numeric: no rate rule');
  });

  it('cusum: accumulated evidence past the limit, in the direction the window still shows', () => {
    const numeric = { role: 'numeric' as const, psi: 0.02, pAdjusted: 1e-6 };
    assert.equal(status({ ...numeric, shift: 0.05, cusum: { up: 4.5, down: 0 } }), 'warn');
    assert.equal(status({ ...numeric, shift: -0.05, cusum: { up: 0, down: 4.5 } }), 'warn');
    assert.equal(status({ ...numeric, shift: 0.05, cusum: { up: 3.9, down: 0 } }), 'ok', 'below the limit');
    assert.equal(status({ ...numeric, shift: 0.01, cusum: { up: 8, down: 0 } }), 'ok', 'negligible now');
    assert.equal(status({ ...numeric, shift: -0.05, cusum: { up: 8, down: 0 } }), 'ok', 'moved back');
  });

  it('cyclical: excluded from the distribution rules, its range checked', () => {
    const cyclical = { role: 'cyclical' as const, excluded: true, psi: 0.9, pAdjusted: 0 };
    assert.equal(status({ ...cyclical, outsideShare: 0 }), 'ok');
    assert.equal(status({ ...cyclical, outsideShare: 0.02 }), 'warn');
    assert.deepEqual(judgeDistribution({ ...none, ...cyclical, outsideShare: 0.02 }, t).flaggedBy, ['range']);
  });
});

describe('agreementStatus', () => {
  it('grades agreement once enough records were compared', () => {
    assert.equal(agreementStatus(1, 1_000, t), 'ok');
    assert.equal(agreementStatus(0.95, 1_000, t), 'ok');
    assert.equal(agreementStatus(0.94, 1_000, t), 'warn');
    assert.equal(agreementStatus(0.89, 1_000, t), 'alert');
    assert.equal(agreementStatus(0.5, 99, t), 'ok');
    assert.equal(agreementStatus(null, 0, t), 'ok');
  });

  it('has the documented defaults, and refuses inconsistent thresholds', () => {
    assert.deepEqual(
      [t.psiWarn, t.psiAlert, t.pValue, t.agreementWarn, t.agreementAlert],
      [0.1, 0.25, 0.05, 0.95, 0.9],
    );
    assert.equal(worstStatus(['ok', 'alert', 'warn']), 'alert');
    assert.equal(worstStatus([]), 'ok');
    assert.throws(
      () => checkThresholds({ ...t, psiWarn: 0.3, pValue: 1 }),
      (error: unknown) =>
        error instanceof StreamscoreError &&
        error.code === 'CONFIG_INVALID' &&
        /psiAlert \(0\.25\) must be >= psiWarn \(0\.3\); pValue must be in \(0, 1\), got 1/.test(
          error.message,
        ),
    );
  });
});

describe('StatusTracker', () => {
  it('reports changes only: ok -> warn -> alert -> ok, silent while a status holds', () => {
    const tracker = new StatusTracker();
    assert.equal(tracker.observe(summary('ok', { 'feature:a': 'ok' })), undefined);
    const warn = tracker.observe(summary('warn', { 'feature:a': 'warn', 'feature:b': 'ok' }));
    assert.deepEqual(warn, {
      model: 'fraud',
      version: '1',
      from: 'ok',
      to: 'warn',
      changes: [{ subject: 'feature:a', from: 'ok', to: 'warn' }],
      flagged: [{ subject: 'feature:a', status: 'warn' }],
    });
    assert.equal(tracker.observe(summary('warn', { 'feature:a': 'warn' })), undefined);
    const alert = tracker.observe(summary('alert', { 'feature:a': 'warn', 'feature:b': 'alert' }));
    assert.equal(alert?.to, 'alert');
    assert.deepEqual(
      alert?.flagged.map((f) => f.subject),
      ['feature:b', 'feature:a'],
    );
    const back = tracker.observe(summary('ok', { 'feature:a': 'ok', 'feature:b': 'ok' }));
    assert.deepEqual(
      [back?.from, back?.to, back?.changes.length, back?.flagged.length],
      ['alert', 'ok', 2, 0],
    );
  });

  it('reports a subject that changes while the overall status holds, and a subject that vanishes', () => {
    const tracker = new StatusTracker();
    tracker.observe(summary('warn', { 'feature:a': 'warn' }));
    const more = tracker.observe(summary('warn', { 'feature:a': 'warn', 'shadow:2': 'warn' }));
    assert.deepEqual(more?.changes, [{ subject: 'shadow:2', from: 'ok', to: 'warn' }]);
    const gone = tracker.observe(summary('warn', { 'feature:a': 'warn' }));
    assert.deepEqual(gone?.changes, [{ subject: 'shadow:2', from: 'warn', to: 'ok' }]);
    const other = tracker.observe({ ...summary('ok', {}), version: '2' });
    assert.equal(other, undefined, 'each version has its own history');
  });
});
