import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { pino } from 'pino';
import { PipelineHealth, STALLS, type Stall } from '../../src/pipeline/health.js';
import { createRegistry, createServeMetrics, type ServeMetrics } from '../../src/telemetry/metrics.js';

interface Line {
  level: number;
  msg: string;
  stall?: string;
  seconds?: number;
  err?: { message: string };
}

/** A health whose log lines are kept, parsed. */
function setup() {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Line) });
  const metrics = createServeMetrics(createRegistry(false));
  return { health: new PipelineHealth(logger, metrics), lines, metrics };
}

async function stalledGauge(metrics: ServeMetrics): Promise<Record<string, number>> {
  const values: Record<string, number> = {};
  for (const { labels, value } of (await metrics.stalled.get()).values) values[String(labels.reason)] = value;
  return values;
}

const WARN = 40;
const INFO = 30;

describe('PipelineHealth', () => {
  it('reports every reason as not stalled from the start', async () => {
    const { health, lines, metrics } = setup();
    assert.deepEqual(await stalledGauge(metrics), { broker: 0, registry: 0, publish: 0, inference: 0 });
    assert.deepEqual(health.stalls, []);
    assert.ok(health.healthy());
    assert.deepEqual(lines, []);
  });

  it('logs a stall and a recovery once per change of state, and sets the gauge per reason', async () => {
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    try {
      const { health, lines, metrics } = setup();
      const cause = new Error('connect ECONNREFUSED 10.0.0.7:8081');
      health.stall('registry', cause);
      health.stall('registry', new Error('a later failure of the same outage'));
      assert.equal(lines.length, 1, 'one line for the outage, not one per failure');
      assert.equal(lines[0]!.level, WARN);
      assert.equal(lines[0]!.stall, 'registry');
      assert.equal(lines[0]!.err?.message, cause.message);
      assert.ok(lines[0]!.msg.includes(STALLS.registry), lines[0]!.msg);
      assert.ok(lines[0]!.msg.includes(cause.message), lines[0]!.msg);
      assert.ok(health.isStalled('registry'));
      assert.deepEqual(await stalledGauge(metrics), { broker: 0, registry: 1, publish: 0, inference: 0 });

      health.stall('publish');
      assert.equal(lines.length, 2);
      assert.equal(lines[1]!.stall, 'publish');
      assert.equal(lines[1]!.err, undefined);
      assert.deepEqual(health.stalls, ['registry', 'publish']);
      assert.deepEqual(await stalledGauge(metrics), { broker: 0, registry: 1, publish: 1, inference: 0 });

      mock.timers.tick(2_500);
      health.recover('registry');
      health.recover('registry');
      health.recover('broker');
      assert.equal(lines.length, 3, 'recovering twice, or from no stall, says nothing more');
      assert.equal(lines[2]!.level, INFO);
      assert.equal(lines[2]!.stall, 'registry');
      assert.equal(lines[2]!.seconds, 2.5);
      assert.match(lines[2]!.msg, /recovered \(registry\)/);
      assert.ok(!health.isStalled('registry'));
      assert.deepEqual(health.stalls, ['publish']);
      assert.deepEqual(await stalledGauge(metrics), { broker: 0, registry: 0, publish: 1, inference: 0 });

      // A new outage is a new change of state.
      health.stall('registry', cause);
      assert.equal(lines.length, 4);
      assert.equal(lines[3]!.stall, 'registry');
      health.recover('publish');
      health.recover('registry');
      assert.equal(lines.length, 6);
      assert.deepEqual(health.stalls, []);
      assert.deepEqual(await stalledGauge(metrics), { broker: 0, registry: 0, publish: 0, inference: 0 });
      assert.ok(health.healthy(), 'stalls pass by themselves; they do not make serve unhealthy');
    } finally {
      mock.timers.reset();
    }
  });

  it('sets the gauge of each reason on its own', async () => {
    const reasons = Object.keys(STALLS) as Stall[];
    for (const reason of reasons) {
      const { health, metrics } = setup();
      health.stall(reason);
      const expected = Object.fromEntries(reasons.map((other) => [other, other === reason ? 1 : 0]));
      assert.deepEqual(await stalledGauge(metrics), expected, reason);
      assert.deepEqual(health.stalls, [reason]);
    }
  });

  it('keeps the first fatal error', () => {
    const { health } = setup();
    const first = new Error('producer thread died');
    const second = new Error('a consequence of the first');
    assert.equal(health.fatal, undefined);
    assert.equal(health.fail(first), true);
    assert.equal(health.fail(second), false);
    assert.equal(health.fatal, first);
    assert.ok(!health.healthy());

    // Something thrown as undefined still leaves serve unhealthy, with an error to report.
    const other = setup().health;
    assert.equal(other.fail(undefined), true);
    assert.ok(other.fatal instanceof Error);
    assert.equal(other.fail(first), false);
    assert.ok(other.fatal instanceof Error && other.fatal !== first);
    assert.ok(!other.healthy());
  });
});
