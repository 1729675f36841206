/**
 * The drift monitor's quality requirements, on simulated fraud traffic scored by the real models:
 * false alarms on stationary traffic, independent or in time order; detection of a 0.5 sigma mean
 * shift, a rare category's rate doubling, a slow drift, a variance change and several small shifts
 * at once, at 500 and 2,000 events a window; and the shadow comparison against an offline
 * computation over the same events.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decision } from '../../src/drift/agreement.js';
import { DriftMonitor } from '../../src/drift/monitor.js';
import type { DriftReport } from '../../src/drift/report.js';
import { versionProfile, type VersionProfile } from '../../src/drift/window.js';
import type { DriftOptions } from '../../src/produce/generator.js';
import {
  EventSource,
  FraudScorer,
  ManualClock,
  TrafficSource,
  fraudProfile,
  type Shift,
  type SimulatedEvent,
} from './simulator.js';

const WINDOW = 2_000;
/** merchant_risk is normal(0.3, 0.15) clipped to [0, 1]: half a standard deviation is 0.075. */
const HALF_SIGMA_SHIFT: Shift = { feature: 'merchant_risk', delta: 0.075 };

let v1: FraudScorer;
let v2: FraudScorer;
let profile1: VersionProfile;
let profile2: VersionProfile;

before(async () => {
  [v1, v2, profile1, profile2] = await Promise.all([
    FraudScorer.load('1'),
    FraudScorer.load('2'),
    fraudProfile('1'),
    fraudProfile('2'),
  ]);
});
after(async () => {
  await Promise.all([v1.release(), v2.release()]);
});

function monitorFor(profiles: VersionProfile[], clock: ManualClock, windowSize = WINDOW): DriftMonitor {
  return new DriftMonitor({
    profiles,
    window: { maxEvents: windowSize, maxDurationMs: 3_600_000 },
    clock: clock.read,
  });
}

/** Feeds `count` events (request, then prediction) through the monitor, 1 ms apart; returns the reports. */
async function feed(
  monitor: DriftMonitor,
  clock: ManualClock,
  source: EventSource | TrafficSource,
  count: number,
  shift?: Shift,
): Promise<DriftReport[]> {
  const reports: DriftReport[] = [];
  const chunk = 10_000;
  for (let done = 0; done < count; done += chunk) {
    const size = Math.min(chunk, count - done);
    const events: SimulatedEvent[] =
      source instanceof EventSource ? source.take(size, shift) : source.take(size);
    const scores = await v1.score(events);
    events.forEach((event, i) => {
      clock.now += 1;
      reports.push(...monitor.onRequest(event));
      reports.push(
        ...monitor.onPrediction({
          request_id: event.request_id,
          model_name: 'fraud',
          model_version: '1',
          outputs: { score: scores[i]!, label: scores[i]! > 0.5 ? 1 : 0 },
        }),
      );
    });
  }
  return reports;
}

function flagged(report: DriftReport): string[] {
  return [...report.features, ...report.outputs].filter((d) => d.status !== 'ok').map((d) => d.name);
}

describe('drift on simulated fraud traffic', () => {
  it('flags at most 1 of 100 stationary windows of 2,000 events', async () => {
    const clock = new ManualClock();
    const monitor = monitorFor([profile1], clock);
    const reports = await feed(monitor, clock, new EventSource(101), 100 * WINDOW);
    assert.equal(reports.length, 100);
    assert.ok(reports.every((r) => r.event_count === WINDOW && r.closed_by === 'count'));
    const alarms = reports.filter((r) => r.status !== 'ok');
    assert.ok(alarms.length <= 1, `false alarms: ${alarms.map((r) => flagged(r).join('+')).join(', ')}`);
    // Every feature and the score were tested in every window (no null p-values at this size), but
    // the hour of day: cyclical, excluded with its reason.
    for (const d of reports.flatMap((r) => [...r.features, ...r.outputs])) {
      if (d.name === 'hour_of_day') assert.ok(d.excluded !== null && d.p_value === null);
      else assert.ok(d.excluded === null && d.p_value !== null, d.name);
    }
    // Under no drift, PSI stays near its sampling noise, (bins - 1) / n, far below 0.1.
    const worstPsi = Math.max(
      ...reports.flatMap((r) =>
        [...r.features, ...r.outputs].filter((d) => d.psi !== null).map((d) => d.psi!),
      ),
    );
    assert.ok(worstPsi < 0.03, `largest stationary PSI ${worstPsi}`);
    const stats = monitor.stats();
    assert.ok(stats.joinEntries <= 30_000, 'join holds at most ttl x rate entries');
    assert.equal(stats.joinEvictions, 0);
  });

  it('flags merchant_risk within 2 windows of a 0.5 sigma mean shift, and no untouched feature', async () => {
    const clock = new ManualClock();
    const monitor = monitorFor([profile1], clock);
    const source = new EventSource(202);
    const before = await feed(monitor, clock, source, 5 * WINDOW + WINDOW / 2);
    // The shift starts in the middle of window 6.
    const afterShift = await feed(monitor, clock, source, 4 * WINDOW + WINDOW / 2, HALF_SIGMA_SHIFT);
    assert.equal(before.length, 5);
    assert.ok(before.every((r) => r.status === 'ok'));
    assert.equal(afterShift.length, 5);
    const detectedAt = afterShift.findIndex((r) => flagged(r).includes('merchant_risk'));
    assert.ok(
      detectedAt >= 0 && detectedAt <= 1,
      `merchant_risk first flagged in window ${detectedAt} after the shift`,
    );
    // Once fully shifted, every window flags it.
    for (const report of afterShift.slice(1)) {
      const risk = report.features.find((f) => f.name === 'merchant_risk')!;
      assert.notEqual(risk.status, 'ok', `psi ${risk.psi}`);
      assert.ok(Math.abs(risk.live_mean! - 0.375) < 0.015, `live mean ${risk.live_mean}`);
      const others = report.features.filter((f) => f.name !== 'merchant_risk' && f.status !== 'ok');
      assert.deepEqual(
        others.map((f) => f.name),
        [],
      );
    }
  });

  it('shadow identical to the primary: agreement 1, mean difference 0, correlation 1', async () => {
    const copy: VersionProfile = versionProfile({ ...profile1.reference, version: '3' }, profile1.threshold);
    const clock = new ManualClock();
    const monitor = monitorFor([profile1, copy], clock);
    const source = new EventSource(303);
    const reports: DriftReport[] = [];
    const events = source.take(2 * WINDOW);
    const scores = await v1.score(events);
    events.forEach((event, i) => {
      clock.now += 1;
      const outputs = { score: scores[i]! };
      const base = { request_id: event.request_id, model_name: 'fraud', outputs };
      reports.push(...monitor.onRequest(event));
      reports.push(
        ...monitor.onShadow({ ...base, model_version: '3', served_version: '1', served_outputs: outputs }),
      );
      reports.push(...monitor.onPrediction({ ...base, model_version: '1' }));
    });
    const served = reports.filter((r) => r.model_version === '1');
    assert.equal(served.length, 2);
    for (const report of served) {
      const [shadow] = report.shadows;
      assert.equal(shadow!.compared, WINDOW);
      assert.equal(shadow!.agreement, 1);
      assert.equal(shadow!.mean_abs_diff, 0);
      assert.ok(Math.abs(shadow!.correlation! - 1) < 1e-12);
      assert.equal(shadow!.status, 'ok');
    }
    const copies = reports.filter((r) => r.model_version === '3');
    assert.deepEqual(
      copies.map((r) => r.outputs[0]!.live_counts),
      served.map((r) => r.outputs[0]!.live_counts),
    );
    const tail = monitor.flush();
    assert.ok(tail.every((r) => r.shadows.every((s) => s.served_only === 0 && s.shadow_only === 0)));
  });

  it('shadow fraud/2 against fraud/1: the measured agreement equals the offline computation', async () => {
    const clock = new ManualClock();
    const monitor = monitorFor([profile1, profile2], clock);
    const events = new EventSource(404).take(3 * WINDOW);
    const [served, shadowed] = await Promise.all([v1.score(events), v2.score(events)]);
    const reports: DriftReport[] = [];
    events.forEach((event, i) => {
      clock.now += 1;
      const base = { request_id: event.request_id, model_name: 'fraud' };
      reports.push(...monitor.onRequest(event));
      reports.push(
        ...monitor.onShadow({
          ...base,
          model_version: '2',
          outputs: { score: shadowed[i]! },
          served_version: '1',
          served_outputs: { score: served[i]! },
        }),
      );
      reports.push(...monitor.onPrediction({ ...base, model_version: '1', outputs: { score: served[i]! } }));
    });
    const windows = reports.filter((r) => r.model_version === '1');
    assert.equal(windows.length, 3);
    windows.forEach((report, w) => {
      const [comparison] = report.shadows;
      const range = Array.from({ length: WINDOW }, (_, i) => w * WINDOW + i);
      const agreed = range.filter(
        (i) => decision(served[i]!, v1.threshold) === decision(shadowed[i]!, v2.threshold),
      ).length;
      const mad = range.reduce((s, i) => s + Math.abs(served[i]! - shadowed[i]!), 0) / WINDOW;
      assert.equal(comparison!.shadow_version, '2');
      assert.equal(comparison!.compared, WINDOW);
      assert.equal(comparison!.agreed, agreed);
      assert.equal(comparison!.agreement, agreed / WINDOW);
      assert.ok(Math.abs(comparison!.mean_abs_diff! - mad) < 1e-12);
      assert.ok(comparison!.correlation! > 0.5 && comparison!.correlation! < 1);
    });
    // The shadow version's own window: its scores against fraud/2's reference.
    const shadowReports = reports.filter((r) => r.model_version === '2');
    assert.equal(shadowReports.length, 3);
    assert.ok(shadowReports.every((r) => r.outputs[0]!.count === WINDOW && r.features[0]!.count === WINDOW));
  });
});

/** A change from a window boundary, after WINDOWS_BEFORE stationary windows; the traffic in time order. */
const WINDOWS_BEFORE = 2;

interface Change {
  name: string;
  changed: readonly string[];
  drift: (window: number) => Omit<DriftOptions, 'fromEvent'>;
  /** The last window (0 = the first changed one) by which a changed feature must be flagged. */
  within: number;
  /** The rules that may flag it first. */
  rules: readonly string[];
}

const FOUR = ['amount', 'account_age_days', 'distance_from_home_km', 'merchant_risk'];
const CHANGES: Change[] = [
  {
    name: 'merchant_risk +0.5 sd',
    changed: ['merchant_risk'],
    drift: () => ({ shifts: { merchant_risk: 0.5 }, mixes: {} }),
    within: 1,
    rules: ['psi', 'cusum'],
  },
  {
    name: 'is_foreign 8 % -> 16 %',
    changed: ['is_foreign'],
    drift: () => ({ shifts: {}, mixes: { is_foreign: 0.16 } }),
    within: 1,
    rules: ['rate', 'psi'],
  },
  {
    // 0.1 sd per window: window k spans k/10 to (k+1)/10 sd, so window 2 ends just short of 0.3 sd.
    name: 'merchant_risk drifting 0.1 sd per window',
    changed: ['merchant_risk'],
    drift: (window) => ({ shifts: {}, mixes: {}, ramps: { merchant_risk: 0.1 / window } }),
    within: 2,
    rules: ['cusum'],
  },
  {
    name: 'merchant_risk sd x1.5, median kept',
    changed: ['merchant_risk'],
    drift: () => ({ shifts: {}, mixes: {}, scales: { merchant_risk: 1.5 } }),
    within: 1,
    rules: ['psi'],
  },
  {
    name: 'four features +0.2 sd each',
    changed: FOUR,
    drift: () => ({ shifts: Object.fromEntries(FOUR.map((f) => [f, 0.2])), mixes: {} }),
    within: 1,
    rules: ['cusum', 'psi'],
  },
];

describe('drift on traffic in time order (hour_of_day follows the clock)', () => {
  for (const window of [500, 2_000]) {
    it(`flags at most 1 % of stationary windows of ${window} events; the hour is excluded, the score judged within its hours`, async () => {
      const clock = new ManualClock();
      const monitor = monitorFor([profile1], clock, window);
      const windows = 200_000 / window;
      const reports = await feed(monitor, clock, new TrafficSource(window), windows * window);
      assert.equal(reports.length, windows);
      const alarms = reports.filter((r) => r.status !== 'ok');
      assert.ok(
        alarms.length <= windows / 100,
        `false alarms: ${alarms.map((r) => flagged(r).join('+')).join(', ')}`,
      );
      for (const report of reports) {
        const hour = report.features.find((f) => f.name === 'hour_of_day')!;
        assert.equal(hour.role, 'cyclical');
        assert.match(hour.excluded!, /cyclical/);
        assert.equal(hour.outside_range, 0);
        assert.equal(report.outputs[0]!.conditioned_on, 'hour_of_day', 'the score depends on the hour');
        assert.equal(report.features.find((f) => f.name === 'amount')!.conditioned_on, null);
      }
      // A window spans at most three hours of the 24 the reference holds.
      assert.ok(
        reports.every(
          (r) =>
            r.features.find((f) => f.name === 'hour_of_day')!.live_counts.filter((c) => c > 0).length <= 3,
        ),
      );
    });
  }

  it('judged as numeric instead (model.json "drift": {"roles"}), the hour is flagged in nearly every window', async () => {
    const clock = new ManualClock();
    const numeric = await fraudProfile('1', { hour_of_day: 'numeric' });
    const monitor = monitorFor([numeric], clock, WINDOW);
    const reports = await feed(monitor, clock, new TrafficSource(7), 20 * WINDOW);
    const hourFlagged = reports.filter((r) => flagged(r).includes('hour_of_day')).length;
    assert.ok(hourFlagged >= 18, `hour_of_day flagged in ${hourFlagged} of 20 windows`);
    assert.ok(reports.every((r) => r.outputs[0]!.conditioned_on === null));
  });

  for (const change of CHANGES) {
    for (const window of [500, 2_000]) {
      it(`flags ${change.name} within ${change.within + 1} windows of ${window} events, and nothing before it`, async () => {
        for (const seed of [1, 2, 3]) {
          const clock = new ManualClock();
          const monitor = monitorFor([profile1], clock, window);
          const drift = { fromEvent: WINDOWS_BEFORE * window, ...change.drift(window) };
          const source = new TrafficSource(seed * 100 + window, { startHour: seed * 7, drift });
          const reports = await feed(monitor, clock, source, (WINDOWS_BEFORE + change.within + 1) * window);
          const before = reports.slice(0, WINDOWS_BEFORE);
          const after = reports.slice(WINDOWS_BEFORE);
          assert.deepEqual(
            before.map(flagged),
            before.map(() => []),
            `seed ${seed}: flagged before the change`,
          );
          const first = after.findIndex((r) =>
            r.features.some((f) => change.changed.includes(f.name) && f.status !== 'ok'),
          );
          assert.ok(first >= 0, `seed ${seed}: not flagged in ${after.length} windows`);
          const rules = after[first]!.features.filter((f) => change.changed.includes(f.name)).flatMap(
            (f) => f.flagged_by,
          );
          assert.ok(
            rules.some((rule) => change.rules.includes(rule)),
            `seed ${seed}: flagged by ${rules.join(', ')}`,
          );
          const untouched = after.flatMap((r) =>
            r.features.filter((f) => !change.changed.includes(f.name) && f.status !== 'ok'),
          );
          assert.deepEqual(
            untouched.map((f) => f.name),
            [],
            `seed ${seed}: an unchanged feature flagged`,
          );
        }
      });
    }
  }
});
