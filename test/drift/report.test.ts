import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import avro from 'avsc';
import { Registry } from 'prom-client';
import { createDriftMetrics, recordReport } from '../../src/drift/metrics.js';
import { parseReference } from '../../src/drift/reference.js';
import { buildReport, cusumSums, summarize, type DriftReport } from '../../src/drift/report.js';
import { DEFAULT_THRESHOLDS } from '../../src/drift/status.js';
import { DriftWindow, versionProfile } from '../../src/drift/window.js';

const schema = avro.Type.forSchema(
  JSON.parse(readFileSync('schemas/drift-report.avsc', 'utf8')) as avro.Schema,
);

const profile = (counts: number[], edges: number[]) => ({
  count: counts.reduce((a, b) => a + b, 0),
  mean: 1.5,
  std: 0.5,
  min: 0,
  max: 3,
  quantiles: {},
  edges,
  counts,
});

const reference = parseReference(
  {
    name: 'fraud',
    version: '1',
    features: {
      steady: profile([1000, 1000, 1000, 1000], [1, 2, 3]),
      moved: profile([1000, 1000, 1000, 1000], [1, 2, 3]),
      absent: profile([1000, 1000], [0]),
    },
    outputs: { score: profile([2000, 2000], [0.5]) },
  },
  'test',
);

/** A window of 400 events: `steady` matches the reference, `moved` piles into its top bin. */
function window(): DriftWindow {
  const w = new DriftWindow(versionProfile(reference, 0.5), { maxEvents: 400, maxDurationMs: 60_000 }, 1_000);
  for (let i = 0; i < 400; i += 1) {
    w.observeFeatures({
      steady: [0.5, 1.5, 2.5, 3.5][i % 4]!,
      moved: i % 2 === 0 ? 3.5 : [0.5, 1.5, 2.5, 3.5][(i >> 1) % 4]!,
    });
    w.observeOutputs({ score: i % 2 === 0 ? 0.2 : 0.8 });
    w.comparison('2', 0.5).add(i % 2 === 0 ? 0.2 : 0.8, i % 20 === 0 ? 0.9 : i % 2 === 0 ? 0.2 : 0.8);
  }
  w.comparison('2', 0.5).countServedOnly();
  return w;
}

function report(): DriftReport {
  return buildReport(window().snapshot(2_000, 'count'), versionProfile(reference, 0.5), DEFAULT_THRESHOLDS);
}

describe('buildReport', () => {
  it('tests every feature and output, corrects across them, and grades each', () => {
    const r = report();
    assert.deepEqual(
      r.features.map((f) => f.name),
      ['steady', 'moved', 'absent'],
    );
    const [steady, moved, absent] = r.features;
    assert.equal(steady!.psi, 0);
    assert.equal(steady!.status, 'ok');
    assert.deepEqual(moved!.live_counts, [50, 50, 50, 250]);
    assert.ok(moved!.psi! > 0.25);
    assert.ok(moved!.p_value! < 1e-20);
    assert.equal(moved!.status, 'alert');
    assert.equal(absent!.count, 0);
    assert.equal(absent!.missing, 400);
    assert.equal(absent!.psi, null);
    assert.equal(absent!.p_value, null);
    assert.equal(absent!.status, 'ok');
    // Holm over the three tested subjects: the smallest p is multiplied by 3.
    const tested = [steady!, moved!, r.outputs[0]!];
    assert.ok(Math.abs(moved!.p_adjusted! - 3 * moved!.p_value!) <= 1e-12 * moved!.p_adjusted!);
    assert.ok(tested.every((d) => d.p_adjusted! >= d.p_value!));
    assert.equal(r.outputs[0]!.name, 'score');
    assert.equal(r.outputs[0]!.status, 'ok');
    assert.equal(r.status, 'alert');
    assert.equal(r.event_count, 400);
    assert.deepEqual([r.window_start, r.window_end, r.closed_by], [1_000, 2_000, 'count']);
  });

  it('accumulates the location shift of numeric subjects across windows, on the sums it is handed', () => {
    const first = report();
    const [steady, moved, absent] = first.features;
    const limit = DEFAULT_THRESHOLDS.cusumLimit;
    assert.equal(steady!.location_shift, 0);
    assert.deepEqual([steady!.cusum_up, steady!.cusum_down], [0, 0]);
    // 250 of 400 in the top bin: z far beyond the limit at once, capped at twice the limit.
    assert.ok(moved!.location_shift! > 0.1 && moved!.location_z! > 10);
    assert.deepEqual([moved!.cusum_up, moved!.cusum_down], [2 * limit, 0]);
    assert.deepEqual(moved!.flagged_by, ['psi', 'cusum']);
    assert.deepEqual([absent!.cusum_up, absent!.cusum_down], [0, 0], 'an untested window adds nothing');
    const sums = cusumSums(first);
    assert.deepEqual(sums.get('feature:moved'), { up: 2 * limit, down: 0 });
    const handed = new Map([['feature:steady', { up: 3, down: 2 }]]);
    const next = buildReport(
      window().snapshot(3_000, 'count'),
      versionProfile(reference, 0.5),
      DEFAULT_THRESHOLDS,
      handed,
    );
    const allowance = DEFAULT_THRESHOLDS.cusumAllowance;
    assert.deepEqual(
      [next.features[0]!.cusum_up, next.features[0]!.cusum_down],
      [3 - allowance, 2 - allowance],
      'z = 0: each side loses the allowance',
    );
  });

  it('reports each shadow comparison with its status', () => {
    const [shadow] = report().shadows;
    assert.equal(shadow!.shadow_version, '2');
    assert.equal(shadow!.output, 'score');
    assert.equal(shadow!.compared, 400);
    // Every twentieth record the shadow says yes where the served version says no: 20 of 400 disagree.
    assert.equal(shadow!.agreement, 380 / 400);
    assert.equal(shadow!.served_only, 1);
    assert.equal(shadow!.status, 'ok');
  });

  it('keys subject statuses for the tracker', () => {
    const summary = summarize(report());
    assert.equal(summary.subjects.get('feature:moved'), 'alert');
    assert.equal(summary.subjects.get('output:score'), 'ok');
    assert.equal(summary.subjects.get('shadow:2'), 'ok');
  });
});

describe('schemas/drift-report.avsc', () => {
  it('round-trips a report, nulls and shadows included, with no field left undeclared', () => {
    const r = report();
    const problems: string[] = [];
    const valid = schema.isValid(r, {
      noUndeclaredFields: true,
      errorHook: (path: string[]) => problems.push(path.join('.')),
    });
    assert.ok(valid, `invalid fields: ${problems.join(', ')}`);
    const decoded: unknown = schema.fromBuffer(schema.toBuffer(r));
    assert.deepEqual(JSON.parse(JSON.stringify(decoded)), JSON.parse(JSON.stringify(r)));
  });

  it('declares every field the report type has, in snake_case', () => {
    const fields = (schema as unknown as { fields: { name: string }[] }).fields.map((f) => f.name);
    assert.deepEqual(fields.sort(), Object.keys(report()).sort());
    assert.ok(fields.every((name) => /^[a-z][a-z0-9_]*$/.test(name)));
  });
});

describe('recordReport', () => {
  it('sets per-feature gauges with low-cardinality labels', async () => {
    const registry = new Registry();
    const metrics = createDriftMetrics(registry);
    recordReport(metrics, report());
    const text = await registry.metrics();
    assert.match(text, /streamscore_drift_status\{model="fraud",version="1",kind="feature",name="moved"\} 2/);
    assert.match(text, /streamscore_drift_psi\{model="fraud",version="1",kind="feature",name="steady"\} 0/);
    assert.doesNotMatch(text, /streamscore_drift_psi\{[^}]*name="absent"/, 'no value, no sample');
    assert.match(
      text,
      /streamscore_drift_shadow_agreement_ratio\{model="fraud",version="1",shadow_version="2"\} 0\.95/,
    );
    assert.match(text, /streamscore_drift_version_status\{model="fraud",version="1"\} 2/);
    assert.match(
      text,
      /streamscore_drift_cusum\{model="fraud",version="1",kind="feature",name="moved",side="up"\} \d/,
    );
    assert.match(text, /streamscore_drift_windows_total\{model="fraud",version="1",status="alert"\} 1/);
  });
});
