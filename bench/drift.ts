/**
 * `npm run bench:drift`: how well the drift monitor detects, without Kafka. Fraud events from the
 * feature spec (the distributions fraud/1's reference profile was built on), scored by the real
 * fraud/1 model, fed through DriftMonitor as request + prediction records, at three window sizes:
 *   - false-alarm rate: the share of stationary windows with any status other than ok;
 *   - detection delay: windows from the start of a 0.5 sigma mean shift of merchant_risk (at a
 *     window boundary) to the first window that flags merchant_risk (0 = the first shifted window),
 *     and whether an untouched feature was flagged meanwhile.
 * Writes bench/results/drift.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { DriftMonitor } from '../src/drift/monitor.js';
import { readReference } from '../src/drift/reference.js';
import type { DriftReport } from '../src/drift/report.js';
import { versionProfile } from '../src/drift/window.js';
import { ModelRunner } from '../src/inference/runner.js';
import { buildMatrix } from '../src/inference/tensor.js';
import { ModelRepository } from '../src/models/repository.js';
import { EventGenerator, readFeatureSpecs, type DriftOptions } from '../src/produce/generator.js';

const WINDOW_SIZES = [200, 500, 2_000];
const STATIONARY_EVENTS = 200_000; // 1,000 windows of 200, 400 of 500, 100 of 2,000
const SHIFT_RUNS = 10;
const WINDOWS_BEFORE_SHIFT = 3;
const WINDOWS_AFTER_SHIFT = 5;
const SHIFTED = 'merchant_risk';
const SHIFT_SIGMAS = 0.5;

const specs = readFeatureSpecs('training/fraud_features.json');
const names = specs.map((spec) => spec.name);
const repository = new ModelRepository('models');
const model = await repository.load('fraud', '1');
const runner = await ModelRunner.load(model, { executionProvider: 'cpu', threads: 1 });
const profile = versionProfile(
  await readReference('models/fraud/1/reference.json', { name: 'fraud', version: '1' }),
  model.metadata.threshold,
);

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

const flagged = (report: DriftReport, name: string) =>
  report.features.some((f) => f.name === name && f.status !== 'ok');

const results = [];
for (const window of WINDOW_SIZES) {
  const started = performance.now();
  const stationary = await feed(
    monitorFor(window),
    new EventGenerator({ featureNames: names, specs, seed: window, keys: 1_000, runId: `s${window}` }),
    STATIONARY_EVENTS,
  );
  const falseAlarms = stationary.filter((r) => r.status !== 'ok').length;

  const delays: number[] = [];
  let untouchedFlagged = 0;
  for (let run = 0; run < SHIFT_RUNS; run += 1) {
    const drift: DriftOptions = {
      fromEvent: WINDOWS_BEFORE_SHIFT * window,
      shifts: { [SHIFTED]: SHIFT_SIGMAS },
      mixes: {},
    };
    const generator = new EventGenerator({
      featureNames: names,
      specs,
      seed: 1_000 + run,
      keys: 1_000,
      runId: `d${run}`,
      drift,
    });
    const reports = await feed(
      monitorFor(window),
      generator,
      (WINDOWS_BEFORE_SHIFT + WINDOWS_AFTER_SHIFT) * window,
    );
    const after = reports.slice(WINDOWS_BEFORE_SHIFT);
    const delay = after.findIndex((r) => flagged(r, SHIFTED));
    delays.push(delay < 0 ? Infinity : delay);
    untouchedFlagged += after.filter((r) =>
      r.features.some((f) => f.name !== SHIFTED && f.status !== 'ok'),
    ).length;
  }
  results.push({
    window_events: window,
    stationary_windows: stationary.length,
    false_alarms: falseAlarms,
    false_alarm_rate: falseAlarms / stationary.length,
    shift: `${SHIFTED} +${SHIFT_SIGMAS} sd`,
    shift_runs: SHIFT_RUNS,
    detection_delay_windows: {
      max: Math.max(...delays),
      mean: delays.reduce((a, b) => a + b, 0) / delays.length,
    },
    detected_within_2_windows: delays.filter((d) => d <= 1).length,
    windows_with_untouched_feature_flagged: untouchedFlagged,
    seconds: Number(((performance.now() - started) / 1_000).toFixed(1)),
  });
}
await runner.release();

console.log('\nDrift detection (fraud/1, no Kafka): one row per window size');
console.table(
  results.map((r) => ({
    'events/window': r.window_events,
    'stationary windows': r.stationary_windows,
    'false alarms': `${r.false_alarms} (${(r.false_alarm_rate * 100).toFixed(2)}%)`,
    'delay max / mean (windows)': `${r.detection_delay_windows.max} / ${r.detection_delay_windows.mean.toFixed(1)}`,
    'runs detected within 2 windows': `${r.detected_within_2_windows}/${r.shift_runs}`,
    'untouched flagged': r.windows_with_untouched_feature_flagged,
  })),
);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/drift.json',
  `${JSON.stringify({ generated_at: new Date().toISOString(), results }, null, 2)}\n`,
);
