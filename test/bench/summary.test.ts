import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePlan } from '../../bench/plan.js';
import { addLaterTargets, type ModelResult } from '../../bench/summary.js';

function result(model: string, p99: number, hopP99: number, best: number, reference?: number): ModelResult {
  const drain = (rate: number) => ({ events_per_s: rate }) as never;
  return {
    model,
    version: '1',
    ceiling_model_rows_per_s: 1,
    ceiling_model_best: { batch: 1, threads: 1 },
    ceiling_transport_events_per_s: null,
    ceiling_transport_client: null,
    baseline_events_per_s: null,
    best: {
      batch: 1024,
      linger_ms: 5,
      threads: 2,
      events_per_s: best,
      p50_ms: 1,
      p95_ms: 2,
      p99_ms: p99,
      rss_mb: 1,
      cpu_us_per_event: 1,
    },
    ratio_vs_ceiling: null,
    ratio_vs_baseline: null,
    targets: {},
    details: {
      model_ceiling: [],
      transports: {},
      baseline: { error: 'not run' },
      grid: [],
      hop_paced: { p99_ms: hopP99 } as never,
      ...(reference === undefined
        ? {}
        : {
            clients: {
              batch: 1024,
              linger_ms: 5,
              threads: 2,
              paced_rate: 1,
              runs: [{ client: 'reference /tmp/old', drain: drain(reference), paced: undefined }],
            },
          }),
    },
  };
}

describe('bench targets', () => {
  it('holds p99 to twice the one hop at the same rate, plus linger and 10 ms', () => {
    const within = result('fraud', 45, 15, 1);
    addLaterTargets(within);
    assert.equal(within.targets.p99_at_half_saturation?.met, true); // 45 <= 2 * 15 + 5 + 10
    const over = result('fraud', 46, 15, 1);
    addLaterTargets(over);
    assert.equal(over.targets.p99_at_half_saturation?.met, false);
  });

  it('compares the best drain with the reference build only when one ran', () => {
    const faster = result('fraud', 1, 1, 150, 100);
    addLaterTargets(faster);
    assert.deepEqual(
      { value: faster.targets.vs_reference?.value, met: faster.targets.vs_reference?.met },
      { value: 1.5, met: true },
    );
    const slower = result('fraud', 1, 1, 149, 100);
    addLaterTargets(slower);
    assert.equal(slower.targets.vs_reference?.met, false);
    const none = result('fraud', 1, 1, 149);
    addLaterTargets(none);
    assert.equal(none.targets.vs_reference, undefined);
  });

  it('takes a reference build to run serve from', () => {
    assert.equal(parsePlan(['--quick', '--reference', '/tmp/old'])!.reference, '/tmp/old');
    assert.equal(parsePlan(['--quick'])!.reference, undefined);
  });
});
