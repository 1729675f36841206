/**
 * `npm run bench:drift`: how well the drift monitor detects, without Kafka. Fraud events from the
 * feature spec (the distributions fraud/1's reference profile was built on), scored by the real
 * fraud/1 model, fed through DriftMonitor as request + prediction records, at 500 and 2,000 events
 * a window:
 *   - false alarms: the share of stationary windows with any status other than ok, for independent
 *     draws and for traffic in time order (hour_of_day follows a clock, 1,500 events an hour), by
 *     rule (psi, rate, cusum, range);
 *   - detection: runs of 3 stationary windows, then a change from a window boundary, all in time
 *     order; the delay is the number of windows from the change to the first window that flags a
 *     changed feature (0 = the first changed window). Cases: merchant_risk +0.5 sd; is_foreign
 *     8 % -> 16 %; merchant_risk drifting 0.1 sd per window; merchant_risk's sd x1.5 around the same
 *     median; four features +0.2 sd each;
 *   - the options for the rare-category rule, measured on is_foreign in the same reports.
 * Writes bench/results/drift.json and prints tables.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { DriftMonitor } from '../src/drift/monitor.js';
import { readReference } from '../src/drift/reference.js';
import type { DistributionDrift, DriftReport } from '../src/drift/report.js';
import { DEFAULT_THRESHOLDS } from '../src/drift/status.js';
import { versionProfile } from '../src/drift/window.js';
import { ModelRunner } from '../src/inference/runner.js';
import { buildMatrix } from '../src/inference/tensor.js';
import { ModelRepository } from '../src/models/repository.js';
import {
  EventGenerator,
  readFeatureSpecs,
  type DriftOptions,
  type TimeOfDay,
} from '../src/produce/generator.js';

const WINDOW_SIZES = [500, 2_000];
const STATIONARY_EVENTS = 400_000; // 800 windows of 500, 200 of 2,000
const EVENTS_PER_HOUR = 1_500; // a 2,000-event window spans one or two hours
const RUNS = 10;
const WINDOWS_BEFORE = 3;
const WINDOWS_AFTER = 6;
const OPTION_WINDOWS = 40;

const specs = readFeatureSpecs('training/fraud_features.json');
const names = specs.map((spec) => spec.name);
const repository = new ModelRepository('models');
const model = await repository.load('fraud', '1');
const runner = await ModelRunner.load(model, { executionProvider: 'cpu', threads: 1 });
const profile = versionProfile(
  await readReference('models/fraud/1/reference.json', { name: 'fraud', version: '1' }),
  model.metadata.threshold,
);

const clock = (startHour: number): TimeOfDay => ({
  feature: 'hour_of_day',
  eventsPerHour: EVENTS_PER_HOUR,
  startHour,
});

/** Feeds `count` events in batches of 1,000 and returns the reports of the windows that closed. */
async function feed(monitor: DriftMonitor, generator: EventGenerator, count: number): Promise<DriftReport[]> {
  const reports: DriftReport[] = [];
  for (let done = 0; done < count; done += 1_000) {
    const events = Array.from({ length: Math.min(1_000, count - done) }, () => generator.next());
    const scores = (
      await runner.score(
        buildMatrix(
          events.map((e) => e.features),
          names,
        ),
        events.length,
      )
    ).get('score')!;
    events.forEach((event, i) => {
      reports.push(...monitor.onRequest(event));
      reports.push(
        ...monitor.onPrediction({
          request_id: event.request_id,
          model_name: 'fraud',
          model_version: '1',
          outputs: { score: scores[i]! },
        }),
      );
    });
  }
  return reports;
}

function monitorFor(window: number): DriftMonitor {
  return new DriftMonitor({ profiles: [profile], window: { maxEvents: window, maxDurationMs: 3_600_000 } });
}

function generator(seed: number, runId: string, timeOfDay?: TimeOfDay, drift?: DriftOptions): EventGenerator {
  return new EventGenerator({ featureNames: names, specs, seed, keys: 1_000, runId, drift, timeOfDay });
}

const subjects = (r: DriftReport): DistributionDrift[] => [...r.features, ...r.outputs];
const pct = (part: number, whole: number) => `${part} (${((100 * part) / whole).toFixed(2)} %)`;

// ------------------------------------------------------------------ stationary traffic

const stationary = [];
const stationaryReports = new Map<number, DriftReport[]>();
for (const window of WINDOW_SIZES) {
  for (const ordered of [false, true]) {
    const reports = await feed(
      monitorFor(window),
      generator(window + (ordered ? 1 : 0), `s${window}`, ordered ? clock(0) : undefined),
      STATIONARY_EVENTS,
    );
    if (!ordered) stationaryReports.set(window, reports);
    const byRule = (rule: string) =>
      reports.filter((r) => subjects(r).some((d) => d.flagged_by.includes(rule as never))).length;
    stationary.push({
      window_events: window,
      traffic: ordered ? 'time order' : 'independent',
      windows: reports.length,
      flagged: reports.filter((r) => r.status !== 'ok').length,
      by_rule: { psi: byRule('psi'), rate: byRule('rate'), cusum: byRule('cusum'), range: byRule('range') },
      flagged_subjects: [
        ...new Set(
          reports.flatMap((r) =>
            subjects(r)
              .filter((d) => d.status !== 'ok')
              .map((d) => d.name),
          ),
        ),
      ],
    });
  }
}

// ------------------------------------------------------------------ changes, in time order

interface Case {
  name: string;
  changed: string[];
  target: string;
  drift: (window: number) => Omit<DriftOptions, 'fromEvent'>;
}

const FOUR = ['amount', 'account_age_days', 'distance_from_home_km', 'merchant_risk'];
const cases: Case[] = [
  {
    name: 'merchant_risk +0.5 sd',
    changed: ['merchant_risk'],
    target: 'within 2 windows',
    drift: () => ({ shifts: { merchant_risk: 0.5 }, mixes: {} }),
  },
  {
    name: 'is_foreign 8 % -> 16 %',
    changed: ['is_foreign'],
    target: 'within 2 windows',
    drift: () => ({ shifts: {}, mixes: { is_foreign: 0.16 } }),
  },
  {
    name: 'merchant_risk +0.1 sd per window',
    changed: ['merchant_risk'],
    target: 'before 0.3 sd',
    drift: (window) => ({ shifts: {}, mixes: {}, ramps: { merchant_risk: 0.1 / window } }),
  },
  {
    name: 'merchant_risk sd x1.5, median kept',
    changed: ['merchant_risk'],
    target: '(none)',
    drift: () => ({ shifts: {}, mixes: {}, scales: { merchant_risk: 1.5 } }),
  },
  {
    name: 'four features +0.2 sd each',
    changed: FOUR,
    target: '(none)',
    drift: () => ({ shifts: Object.fromEntries(FOUR.map((f) => [f, 0.2])), mixes: {} }),
  },
];

const detection = [];
for (const window of WINDOW_SIZES) {
  for (const c of cases) {
    const delays: number[] = [];
    let before = 0;
    let beforeFlagged = 0;
    let untouched = 0;
    let after = 0;
    const rules: Record<string, number> = {};
    for (let run = 0; run < RUNS; run += 1) {
      const drift = { fromEvent: WINDOWS_BEFORE * window, ...c.drift(window) };
      const reports = await feed(
        monitorFor(window),
        generator(1_000 + run, `d${run}`, clock((run * 5) % 24), drift),
        (WINDOWS_BEFORE + WINDOWS_AFTER) * window,
      );
      before += WINDOWS_BEFORE;
      beforeFlagged += reports.slice(0, WINDOWS_BEFORE).filter((r) => r.status !== 'ok').length;
      const changed = reports.slice(WINDOWS_BEFORE);
      after += changed.length;
      const delay = changed.findIndex((r) =>
        r.features.some((f) => c.changed.includes(f.name) && f.status !== 'ok'),
      );
      delays.push(delay < 0 ? Infinity : delay);
      for (const rule of new Set(
        (changed[delay]?.features ?? [])
          .filter((f) => c.changed.includes(f.name))
          .flatMap((f) => f.flagged_by),
      )) {
        rules[rule] = (rules[rule] ?? 0) + 1;
      }
      untouched += changed.filter((r) =>
        r.features.some((f) => !c.changed.includes(f.name) && f.status !== 'ok'),
      ).length;
    }
    detection.push({
      window_events: window,
      change: c.name,
      target: c.target,
      runs: RUNS,
      delay_windows: { max: Math.max(...delays), mean: delays.reduce((a, b) => a + b, 0) / delays.length },
      detected_within_2_windows: delays.filter((d) => d <= 1).length,
      // For the slow drift: the shift over the latest first-flagging window (window k: k/10 to (k+1)/10 sd).
      shift_sd_when_flagged_max: c.name.includes('per window')
        ? `${(0.1 * Math.max(...delays)).toFixed(1)}-${(0.1 * (Math.max(...delays) + 1)).toFixed(1)}`
        : null,
      // Runs whose first flagging window had each rule fire on a changed feature.
      first_flagged_by: rules,
      windows_before_change: before,
      windows_before_change_flagged: beforeFlagged,
      windows_after_change: after,
      windows_with_untouched_feature_flagged: untouched,
    });
  }
}

// ------------------------------------------------------------------ the rare-category rule's options

/**
 * Each candidate rule on is_foreign's two bins, from the window's counts and the report's
 * Holm-adjusted p-value (the significance test every rule is combined with, except the bound).
 */
const OPTIONS: { name: string; flags: (d: DistributionDrift) => boolean }[] = [
  { name: 'PSI >= 0.1 (the former rule)', flags: (d) => significant(d) && d.psi! >= 0.1 },
  { name: 'Hellinger >= 0.11 (PSI 0.1 equivalent)', flags: (d) => significant(d) && hellinger(d) >= 0.11 },
  { name: 'Hellinger >= 0.07', flags: (d) => significant(d) && hellinger(d) >= 0.07 },
  { name: 'Jensen-Shannon >= 0.0125 nats', flags: (d) => significant(d) && jensenShannon(d) >= 0.0125 },
  { name: 'Jensen-Shannon >= 0.005 nats', flags: (d) => significant(d) && jensenShannon(d) >= 0.005 },
  { name: 'per-category test alone', flags: (d) => significant(d) },
  {
    name: 'rate ratio >= 1.5x, significant',
    flags: (d) => significant(d) && Math.max(d.rate_change!, 1 / d.rate_change!) >= 1.5,
  },
  { name: 'rate ratio 95 % bound beyond 1.5x', flags: (d) => ratioBound(d) >= 1.5 },
  {
    name: 'rate ratio 95 % bound beyond 1.25x, significant (kept)',
    flags: (d) => significant(d) && d.rate_change_bound! >= DEFAULT_THRESHOLDS.rateWarn,
  },
];

function shares(d: DistributionDrift): [number[], number[]] {
  const n = d.live_counts.reduce((a, b) => a + b, 0);
  const total = d.reference_counts.reduce((a, b) => a + b, 0);
  return [d.live_counts.map((c) => c / n), d.reference_counts.map((c) => c / total)];
}
function significant(d: DistributionDrift): boolean {
  return d.p_adjusted !== null && d.p_adjusted < DEFAULT_THRESHOLDS.pValue;
}
function hellinger(d: DistributionDrift): number {
  const [p, q] = shares(d);
  return Math.sqrt(Math.max(0, 1 - p.reduce((s, pi, i) => s + Math.sqrt(pi * q[i]!), 0)));
}
function jensenShannon(d: DistributionDrift): number {
  const [p, q] = shares(d);
  const kl = (a: number[], m: number[]) =>
    a.reduce((s, ai, i) => (ai > 0 ? s + ai * Math.log(ai / m[i]!) : s), 0);
  const m = p.map((pi, i) => (pi + q[i]!) / 2);
  return (kl(p, m) + kl(q, m)) / 2;
}
/** How far the rate of the rarer category moved, at least, with 95 % confidence (log-ratio interval). */
function ratioBound(d: DistributionDrift): number {
  const n = d.live_counts.reduce((a, b) => a + b, 0);
  const total = d.reference_counts.reduce((a, b) => a + b, 0);
  const rare = d.reference_counts[1]! < d.reference_counts[0]! ? 1 : 0;
  const p = Math.max(d.live_counts[rare]!, 0.5) / n;
  const r = d.reference_counts[rare]! / total;
  const se = Math.sqrt((1 - p) / (n * p) + (1 - r) / (total * r));
  const log = Math.log(p / r);
  const low = Math.abs(log) - 1.96 * se;
  return low <= 0 ? 1 : Math.exp(low);
}

const options = [];
for (const window of WINDOW_SIZES) {
  const changedWindows = async (rate: number, seed: number) =>
    (
      await feed(
        monitorFor(window),
        generator(seed, `o${seed}`, undefined, { fromEvent: 0, shifts: {}, mixes: { is_foreign: rate } }),
        OPTION_WINDOWS * window,
      )
    ).map((r) => r.features.find((f) => f.name === 'is_foreign')!);
  const still = stationaryReports.get(window)!.map((r) => r.features.find((f) => f.name === 'is_foreign')!);
  const doubled = await changedWindows(0.16, 7_000 + window);
  const slight = await changedWindows(0.096, 8_000 + window);
  for (const option of OPTIONS) {
    const rate = (list: DistributionDrift[]) => list.filter(option.flags).length / list.length;
    options.push({
      window_events: window,
      option: option.name,
      stationary_flagged: rate(still),
      doubled_flagged: rate(doubled),
      x1_2_flagged: rate(slight),
    });
  }
}
await runner.release();

console.log('\nStationary traffic (fraud/1, no Kafka): windows flagged, and by which rule');
console.table(
  stationary.map((s) => ({
    'events/window': s.window_events,
    traffic: s.traffic,
    windows: s.windows,
    flagged: pct(s.flagged, s.windows),
    'psi / rate / cusum / range': `${s.by_rule.psi} / ${s.by_rule.rate} / ${s.by_rule.cusum} / ${s.by_rule.range}`,
    subjects: s.flagged_subjects.join(' ') || '-',
  })),
);
console.log(`\nChanges, in time order: ${RUNS} runs each, ${WINDOWS_BEFORE} windows before the change`);
console.table(
  detection.map((d) => ({
    'events/window': d.window_events,
    change: d.change,
    target: d.target,
    'delay max / mean': `${d.delay_windows.max} / ${d.delay_windows.mean.toFixed(1)}`,
    'within 2 windows': `${d.detected_within_2_windows}/${d.runs}`,
    'shift when flagged, max':
      d.shift_sd_when_flagged_max === null ? '' : `${d.shift_sd_when_flagged_max} sd`,
    'first flagged by': Object.entries(d.first_flagged_by)
      .map(([rule, runs]) => `${rule} ${runs}`)
      .join(', '),
    'flagged before change': `${d.windows_before_change_flagged}/${d.windows_before_change}`,
    'untouched flagged after': `${d.windows_with_untouched_feature_flagged}/${d.windows_after_change}`,
  })),
);
console.log('\nRare-category rule options on is_foreign (share of windows flagged)');
console.table(
  options.map((o) => ({
    'events/window': o.window_events,
    option: o.option,
    stationary: `${(o.stationary_flagged * 100).toFixed(2)} %`,
    '8 % -> 16 %': `${(o.doubled_flagged * 100).toFixed(0)} %`,
    '8 % -> 9.6 %': `${(o.x1_2_flagged * 100).toFixed(0)} %`,
  })),
);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/drift.json',
  `${JSON.stringify({ generated_at: new Date().toISOString(), stationary, detection, options }, null, 2)}\n`,
);
