/**
 * The rollout controller: moves a canary through the plan's steps on the routing topic, judges
 * each step's window (plan.ts) and promotes or rolls back, writing every decision down. Kafka,
 * the clock and the evidence come in through `RolloutDeps`, so the rules run the same in a test.
 *
 * Safe to run twice: every routing write first checks that the routing is still the one this
 * controller wrote last. Another controller, or an operator, changing it meanwhile stops this one
 * without it touching the routing again (`superseded`).
 */
import type { RoutingSpec } from '../models/routing.js';
import type { StepEvidence } from './plan.js';
import { judgeStep, type GateVerdict, type RolloutPlan } from './plan.js';

/** A routing as the controller last saw it: its spec, and a token that changes with every write. */
export interface RoutingState {
  spec: RoutingSpec;
  token: string;
}

export interface RolloutDecision {
  model: string;
  canary: string;
  primary: string;
  /** 1-based step; 0 before the first. */
  step: number;
  share: number;
  decision: 'start' | 'next' | 'promote' | 'rollback' | 'superseded';
  reason: string;
  verdicts: GateVerdict[];
  at: number;
}

export interface RolloutDeps {
  model: string;
  now(): number;
  sleep(ms: number): Promise<void>;
  readRouting(): Promise<RoutingState>;
  /**
   * Writes a routing if the current one still has `expected` as its token; resolves to the new
   * token, or undefined when the routing changed meanwhile (nothing written).
   */
  writeRouting(spec: RoutingSpec, expected: string, reason: string): Promise<string | undefined>;
  /** Starts gathering a window's evidence for the canary against the primary; read it with the result. */
  openWindow(primary: string, canary: string): { evidence(): StepEvidence; close(): Promise<void> };
  record(decision: RolloutDecision): Promise<void>;
}

export interface RolloutOptions {
  canary: string;
  plan: RolloutPlan;
  /** How often a step's evidence is judged while it is held, ms. */
  checkEveryMs: number;
  /** A step with too few events after this many holds is rolled back (no evidence, no promotion). */
  maxHolds: number;
}

export type RolloutOutcome = 'promoted' | 'rolled back' | 'superseded';

export async function runRollout(deps: RolloutDeps, options: RolloutOptions): Promise<RolloutOutcome> {
  const { plan, canary } = options;
  let state = await deps.readRouting();
  const primary = state.spec.primary;
  const base = { model: deps.model, canary, primary };
  const decide = async (
    step: number,
    share: number,
    decision: RolloutDecision['decision'],
    reason: string,
    verdicts: GateVerdict[] = [],
  ) => deps.record({ ...base, step, share, decision, reason, verdicts, at: deps.now() });

  /** Writes a routing, or says the rollout was superseded; false then. */
  const write = async (spec: RoutingSpec, step: number, share: number, reason: string): Promise<boolean> => {
    const token = await deps.writeRouting(spec, state.token, reason);
    if (token === undefined) {
      await decide(
        step,
        share,
        'superseded',
        'the routing changed under the rollout; it stops without touching it',
      );
      return false;
    }
    state = { spec, token };
    return true;
  };
  const rollback = async (step: number, share: number, reason: string, verdicts: GateVerdict[]) => {
    const { canary: _dropped, ...rest } = state.spec;
    if (!(await write({ ...rest, canary: undefined }, step, share, `rollout rolled back: ${reason}`)))
      return 'superseded';
    await decide(step, share, 'rollback', reason, verdicts);
    return 'rolled back';
  };

  await decide(0, 0, 'start', `rollout of ${deps.model}/${canary} over ${plan.steps.length} steps`);
  for (const [index, { share, holdMs }] of plan.steps.entries()) {
    const step = index + 1;
    const reason = `rollout step ${step}/${plan.steps.length}: ${deps.model}/${canary} at ${share * 100}%`;
    if (!(await write({ ...state.spec, canary: { version: canary, share } }, step, share, reason)))
      return 'superseded';
    const window = deps.openWindow(primary, canary);
    try {
      const started = deps.now();
      let holds = 1;
      for (;;) {
        await deps.sleep(options.checkEveryMs);
        const { decision, verdicts } = judgeStep(window.evidence(), plan.gates);
        if (decision === 'rollback') {
          const failed = verdicts.filter((v) => v.ok === false && v.gate !== 'events');
          const why = failed.map((v) => `${v.gate} ${round(v.value)} against ${v.limit}`).join(', ');
          return await rollback(step, share, `step ${step} (${share * 100}%): ${why}`, verdicts);
        }
        if (deps.now() - started < holdMs * holds) continue;
        if (decision === 'next') {
          await decide(step, share, 'next', `step ${step} (${share * 100}%) passed`, verdicts);
          break;
        }
        if (holds >= options.maxHolds) {
          return await rollback(
            step,
            share,
            `step ${step} (${share * 100}%): too few canary events to judge after ${holds} holds`,
            verdicts,
          );
        }
        holds += 1;
      }
    } finally {
      await window.close();
    }
  }
  const { canary: _done, ...rest } = state.spec;
  const promoted: RoutingSpec = {
    ...rest,
    canary: undefined,
    primary: canary,
    shadows: rest.shadows.filter((v) => v !== canary),
  };
  if (!(await write(promoted, plan.steps.length, 1, `rollout promoted ${deps.model}/${canary} to primary`)))
    return 'superseded';
  await decide(plan.steps.length, 1, 'promote', `${deps.model}/${canary} is the primary`);
  return 'promoted';
}

function round(value: number | null): string {
  return value === null ? '-' : String(Math.round(value * 10_000) / 10_000);
}
