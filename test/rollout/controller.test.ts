import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoutingSpec } from '../../src/models/routing.js';
import { runRollout, type RolloutDecision, type RolloutDeps } from '../../src/rollout/controller.js';
import { DEFAULT_GATES, SCORE_BINS, parseSteps, type StepEvidence } from '../../src/rollout/plan.js';

const even = (n: number) => new Array<number>(SCORE_BINS).fill(n / SCORE_BINS);
const healthy = (events: number): StepEvidence => ({
  canaryEvents: events,
  canaryFailures: 0,
  canaryScoreBins: even(events),
  primaryScoreBins: even(events * 10),
});

/** An in-memory routing topic, a clock that sleeps instantly, and a scripted evidence source. */
function harness(
  evidence: (step: number, elapsedMs: number) => StepEvidence,
  onWrite?: (count: number) => void,
) {
  let now = 0;
  let routing: RoutingSpec = { primary: '2', shadows: [], fallback: '1' };
  let token = 0;
  const writes: RoutingSpec[] = [];
  const decisions: RolloutDecision[] = [];
  let step = 0;
  let opened = 0;
  const deps: RolloutDeps = {
    model: 'fraud',
    now: () => now,
    sleep: (ms) => {
      now += ms;
      return Promise.resolve();
    },
    readRouting: () => Promise.resolve({ spec: routing, token: String(token) }),
    writeRouting: (spec, expected) => {
      if (expected !== String(token)) return Promise.resolve(undefined);
      routing = spec;
      token += 1;
      writes.push(spec);
      if (spec.canary !== undefined) step += 1;
      const mine = String(token);
      // Another writer, right after this one.
      onWrite?.(writes.length);
      return Promise.resolve(mine);
    },
    openWindow: () => {
      opened = now;
      const at = step;
      return { evidence: () => evidence(at, now - opened), close: () => Promise.resolve() };
    },
    record: (decision) => {
      decisions.push(decision);
      return Promise.resolve();
    },
  };
  return {
    deps,
    writes,
    decisions,
    routing: () => routing,
    interfere: (spec: RoutingSpec) => {
      routing = spec;
      token += 1;
    },
  };
}

const options = {
  canary: '3',
  plan: { steps: parseSteps('5%:60s,25%:60s,50%:60s,100%:60s', 60_000), gates: DEFAULT_GATES },
  checkEveryMs: 5_000,
  maxHolds: 3,
};

describe('rollout controller', () => {
  it('promotes a good candidate step by step, each step held for its time', async () => {
    const h = harness((_step, elapsed) => healthy(Math.floor(elapsed / 10)));
    assert.equal(await runRollout(h.deps, options), 'promoted');
    assert.deepEqual(
      h.writes.map((spec) => spec.canary?.share ?? `primary ${spec.primary}`),
      [0.05, 0.25, 0.5, 1, 'primary 3'],
    );
    assert.deepEqual(h.routing(), { primary: '3', shadows: [], fallback: '1', canary: undefined });
    assert.deepEqual(
      h.decisions.map((d) => `${d.step}:${d.decision}`),
      ['0:start', '1:next', '2:next', '3:next', '4:next', '4:promote'],
    );
    assert.ok(
      h.decisions.filter((d) => d.decision === 'next').every((d) => d.verdicts.every((v) => v.ok !== false)),
    );
  });

  it('rolls back a candidate with a shifted score distribution within its first step', async () => {
    const shifted = (_step: number, elapsed: number): StepEvidence => {
      const events = Math.floor(elapsed / 10);
      const bins = new Array<number>(SCORE_BINS).fill(0);
      bins[SCORE_BINS - 1] = events;
      return { ...healthy(events), canaryScoreBins: bins };
    };
    const h = harness(shifted);
    assert.equal(await runRollout(h.deps, options), 'rolled back');
    const last = h.decisions.at(-1)!;
    assert.equal(last.decision, 'rollback');
    assert.equal(last.step, 1);
    assert.match(last.reason, /scores/);
    assert.equal(h.routing().canary, undefined, 'the canary takes no traffic');
    assert.equal(h.routing().primary, '2');
  });

  it('rolls back a candidate that errs as soon as its failures outnumber what a full window may hold', async () => {
    const h = harness((_step, elapsed) => {
      const events = Math.floor(elapsed / 10);
      return { ...healthy(events), canaryFailures: Math.floor(events / 2) };
    });
    assert.equal(await runRollout(h.deps, options), 'rolled back');
    const last = h.decisions.at(-1)!;
    assert.equal(last.step, 1);
    assert.match(last.reason, /failures 0\.5 against 0\.01/);
  });

  it('rolls back when a step never gets enough traffic to be judged', async () => {
    const h = harness(() => healthy(10));
    assert.equal(await runRollout(h.deps, options), 'rolled back');
    assert.match(h.decisions.at(-1)!.reason, /too few canary events to judge after 3 holds/);
  });

  it('stops without touching the routing when someone else changed it', async () => {
    const other = { interfere: (_spec: RoutingSpec) => {} };
    const h = harness(
      (_step, elapsed) => healthy(Math.floor(elapsed / 10)),
      (count) => {
        if (count === 2) other.interfere({ primary: '1', shadows: [] });
      },
    );
    other.interfere = h.interfere;
    assert.equal(await runRollout(h.deps, options), 'superseded');
    assert.equal(h.writes.length, 2, 'nothing written after the routing changed');
    assert.deepEqual(h.routing(), { primary: '1', shadows: [] });
    assert.equal(h.decisions.at(-1)!.decision, 'superseded');
  });
});
