import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriftMonitor, type DriftMonitorOptions, type SkipReason } from '../../src/drift/monitor.js';
import { parseReference } from '../../src/drift/reference.js';
import type { DriftReport } from '../../src/drift/report.js';
import { versionProfile } from '../../src/drift/window.js';
import { ManualClock } from './simulator.js';

const profile = (counts: number[], edges: number[]) => ({
  count: counts.reduce((a, b) => a + b, 0),
  mean: 0,
  std: 1,
  min: -1,
  max: 1,
  edges,
  counts,
});

function reference(version: string) {
  return parseReference(
    {
      name: 'm',
      version,
      features: { a: profile([50, 50], [0]) },
      outputs: { score: profile([50, 50], [0.5]) },
    },
    `m/${version}`,
  );
}

function setup(options: Partial<DriftMonitorOptions> = {}) {
  const clock = new ManualClock(0);
  const skips: [SkipReason, string][] = [];
  const missing: string[] = [];
  const monitor = new DriftMonitor({
    profiles: [versionProfile(reference('1'), 0.5), versionProfile(reference('2'), 0.5)],
    window: { maxEvents: 1_000, maxDurationMs: 60_000 },
    join: { ttlMs: 1_000, maxEntries: 1_000 },
    clock: clock.read,
    onSkip: (reason, detail) => skips.push([reason, detail.message]),
    onMissingReference: (model, version) => missing.push(`${model}/${version}`),
    ...options,
  });
  return { monitor, clock, skips, missing };
}

const request = (id: number, a = -0.5) => ({ request_id: `r${id}`, features: { a } });
const prediction = (id: number, score = 0.2, version = '1') => ({
  request_id: `r${id}`,
  model_name: 'm',
  model_version: version,
  outputs: { score, label: score > 0.5 ? 1 : 0 },
});
const shadow = (id: number, score = 0.2, served = 0.2) => ({
  ...prediction(id, score, '2'),
  served_version: '1',
  served_outputs: { score: served },
});

function only(reports: DriftReport[], version: string): DriftReport {
  const found = reports.filter((r) => r.model_version === version);
  assert.equal(found.length, 1, `one report for version ${version}, got ${found.length}`);
  return found[0]!;
}

describe('DriftMonitor', () => {
  it('joins features to the version that scored them, whichever record comes first', () => {
    const { monitor } = setup({ window: { maxEvents: 3, maxDurationMs: 60_000 } });
    assert.deepEqual(monitor.onRequest(request(1)), []);
    monitor.onPrediction(prediction(1));
    monitor.onPrediction(prediction(2));
    monitor.onRequest(request(2, 0.5));
    monitor.onRequest(request(3, 0.5));
    const reports = monitor.onPrediction(prediction(3, 0.9));
    const report = only(reports, '1');
    assert.equal(report.closed_by, 'count');
    assert.equal(report.event_count, 3);
    assert.deepEqual(report.features[0]!.live_counts, [1, 2]);
    assert.deepEqual(report.outputs[0]!.live_counts, [2, 1]);
    assert.deepEqual(report.shadows, []);
  });

  it('counts a shadow record in the shadow version and compares it in the served one', () => {
    const { monitor } = setup();
    monitor.onRequest(request(1));
    monitor.onPrediction(prediction(1, 0.2));
    monitor.onShadow(shadow(1, 0.7, 0.2));
    monitor.onShadow(shadow(2, 0.3, 0.3));
    monitor.onPrediction(prediction(2, 0.3));
    monitor.onRequest(request(2));
    const reports = monitor.flush();
    const served = only(reports, '1');
    const shadowReport = only(reports, '2');
    assert.equal(served.event_count, 2);
    assert.equal(shadowReport.event_count, 2);
    assert.equal(shadowReport.features[0]!.count, 2, 'the shadow version sees the same features');
    assert.deepEqual(shadowReport.outputs[0]!.live_counts, [1, 1]);
    const [comparison] = served.shadows;
    assert.equal(comparison!.shadow_version, '2');
    assert.equal(comparison!.compared, 2);
    assert.equal(comparison!.agreement, 0.5);
    assert.ok(Math.abs(comparison!.mean_abs_diff! - 0.25) < 1e-12);
    assert.deepEqual([comparison!.served_only, comparison!.shadow_only], [0, 0]);
    assert.equal(served.closed_by, 'flush');
  });

  it('counts events seen on one side only once the join time is up', () => {
    const { monitor, clock } = setup();
    monitor.onPrediction(prediction(1));
    monitor.onShadow(shadow(1)); // a shadow is running for version 1
    monitor.onPrediction(prediction(2)); // its shadow record never comes
    monitor.onShadow(shadow(3)); // its prediction never comes
    monitor.onShadow(shadow(3)); // a redelivery: skipped, not counted twice
    clock.now = 999;
    const early = monitor.flush();
    const comparison = only(early, '1').shadows[0]!;
    // flush settles everything at once, so both one-sided records are counted already.
    assert.deepEqual([comparison.compared, comparison.served_only, comparison.shadow_only], [2, 1, 1]);
    assert.deepEqual(monitor.stats().skipped, {
      UNDECODABLE: 0,
      NO_REFERENCE: 0,
      DUPLICATE: 1,
      NOT_A_LABEL: 0,
      NO_PREDICTION: 0,
    });

    const later = setup();
    later.monitor.onPrediction(prediction(1));
    later.monitor.onShadow(shadow(1));
    later.monitor.onPrediction(prediction(2));
    later.clock.now = 999;
    later.monitor.tick();
    assert.equal(later.monitor.stats().joinEntries, 2, 'still waiting');
    later.clock.now = 1_000;
    later.monitor.tick();
    assert.equal(later.monitor.stats().joinEntries, 0);
    const settled = only(later.monitor.flush(), '1').shadows[0]!;
    assert.deepEqual([settled.served_only, settled.shadow_only], [1, 0]);
  });

  it('does not count predictions as one-sided when no shadow runs', () => {
    const { monitor } = setup();
    for (let i = 0; i < 10; i += 1) monitor.onPrediction(prediction(i));
    assert.deepEqual(only(monitor.flush(), '1').shadows, []);
  });

  it('skips versions without a reference, says so once per version, and keeps going', () => {
    const { monitor, skips, missing } = setup({ window: { maxEvents: 2, maxDurationMs: 60_000 } });
    monitor.onPrediction(prediction(1, 0.2, '9'));
    monitor.onPrediction(prediction(2, 0.2, '9'));
    monitor.onShadow({ ...shadow(3), model_version: '8' });
    monitor.recordSkip('UNDECODABLE', { message: 'bad bytes' });
    monitor.onPrediction(prediction(4));
    const reports = monitor.onPrediction(prediction(5));
    assert.equal(only(reports, '1').event_count, 2);
    assert.deepEqual(missing, ['m/9', 'm/8']);
    assert.deepEqual(
      skips.map(([reason]) => reason),
      ['NO_REFERENCE', 'NO_REFERENCE', 'NO_REFERENCE', 'UNDECODABLE'],
    );
    assert.match(skips[0]![1], /m\/9 has no reference profile/);
    assert.deepEqual(monitor.stats().skipped, {
      UNDECODABLE: 1,
      NO_REFERENCE: 3,
      DUPLICATE: 0,
      NOT_A_LABEL: 0,
      NO_PREDICTION: 0,
    });
    monitor.setProfile(versionProfile(reference('9')));
    monitor.onPrediction(prediction(6, 0.2, '9'));
    assert.equal(monitor.stats().skipped.NO_REFERENCE, 3, 'a profile added later is used');
  });

  it('closes a window by time on tick, and reports nothing when nothing was seen', () => {
    const { monitor, clock } = setup({ window: { maxEvents: 1_000, maxDurationMs: 5_000 } });
    assert.deepEqual(monitor.tick(), []);
    clock.now = 100;
    monitor.onPrediction(prediction(1));
    clock.now = 5_099;
    assert.deepEqual(monitor.tick(), []);
    clock.now = 5_100;
    const report = only(monitor.tick(), '1');
    assert.deepEqual([report.window_start, report.window_end, report.closed_by], [100, 5_100, 'time']);
    assert.equal(report.features[0]!.p_value, null, 'one event is too few to test');
    assert.equal(report.status, 'ok');
    assert.deepEqual(monitor.tick(), []);
    assert.equal(monitor.stats().openWindows, 0);
  });

  it('keeps the join bounded, counting evictions', () => {
    const { monitor } = setup({
      join: { ttlMs: 60_000, maxEntries: 50 },
      window: { maxEvents: 10_000, maxDurationMs: 60_000 },
    });
    monitor.onPrediction(prediction(0));
    monitor.onShadow(shadow(0));
    for (let i = 1; i <= 1_000; i += 1) monitor.onPrediction(prediction(i));
    const stats = monitor.stats();
    assert.equal(stats.joinEntries, 50);
    assert.equal(stats.joinEvictions, 951);
    const comparison = only(monitor.flush(), '1').shadows[0]!;
    // Evicted predictions had no shadow record yet: counted as evicted, not as served-only.
    assert.equal(comparison.evicted, 950);
    assert.equal(comparison.served_only, 50);
  });
});
