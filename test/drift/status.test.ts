import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import {
  DEFAULT_THRESHOLDS,
  StatusTracker,
  agreementStatus,
  checkThresholds,
  distributionStatus,
  worstStatus,
  type DriftStatus,
} from '../../src/drift/status.js';

const t = DEFAULT_THRESHOLDS;

function summary(status: DriftStatus, subjects: Record<string, DriftStatus>) {
  return { model: 'fraud', version: '1', status, subjects: new Map(Object.entries(subjects)) };
}

describe('distributionStatus', () => {
  it('needs both a large PSI and a significant adjusted p-value', () => {
    assert.equal(distributionStatus(0.3, 0.001, t), 'alert');
    assert.equal(distributionStatus(0.25, 0.049, t), 'alert');
    assert.equal(distributionStatus(0.1, 0.001, t), 'warn');
    assert.equal(distributionStatus(0.099, 1e-30, t), 'ok', 'significant but small: ok');
    assert.equal(distributionStatus(0.9, 0.05, t), 'ok', 'large but within noise: ok');
    assert.equal(distributionStatus(0.9, null, t), 'ok', 'not tested: ok');
    assert.equal(distributionStatus(null, null, t), 'ok');
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
