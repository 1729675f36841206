/**
 * A progressive rollout: the canary's share goes up step by step (5% -> 25% -> 50% -> 100%), each
 * step held for a while, and each step's window judged on live evidence before the next. Pure
 * logic: the plan, the gates, the decision. What gathers the evidence and changes the routing
 * lives elsewhere, so the rules can be read and tested on their own.
 */
import { StreamscoreError } from '../errors.js';
import { psi } from '../drift/statistics.js';

export interface RolloutStep {
  /** The canary's share of keys during the step, 0 to 1. */
  share: number;
  /** How long the step is held (and its window gathered) before it is judged, ms. */
  holdMs: number;
}

/** What a step's window must show for the canary to go on. */
export interface GateLimits {
  /** Events the canary must have scored in the window before any gate can pass. */
  minEvents: number;
  /** The largest share of the canary's events it failed on (dead-lettered or taken by the fallback). */
  maxFailureRate: number;
  /** The largest ratio of the canary's inference time per event to the primary's. */
  maxLatencyRatio: number;
  /** The largest PSI between the canary's scores and the primary's over the same window. */
  maxScorePsi: number;
  /** The smallest decision agreement with a shadow of the primary, where one runs. */
  minAgreement: number;
  /** The largest drop of realised AUC against the primary's, where outcomes exist. */
  maxAucDrop: number;
}

export const DEFAULT_GATES: GateLimits = {
  minEvents: 500,
  maxFailureRate: 0.01,
  maxLatencyRatio: 1.5,
  maxScorePsi: 0.2,
  minAgreement: 0.95,
  maxAucDrop: 0.05,
};

export interface RolloutPlan {
  steps: readonly RolloutStep[];
  gates: GateLimits;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

function usage(message: string): StreamscoreError {
  return new StreamscoreError('USAGE', message);
}

/** A duration: 500ms, 30s, 10m, 1h. */
export function parseDuration(text: string, what: string): number {
  const match = DURATION.exec(text.trim());
  if (match === null) throw usage(`${what}: ${JSON.stringify(text)} is not a duration (500ms, 30s, 10m, 1h)`);
  return Number(match[1]) * UNIT_MS[match[2]!]!;
}

/**
 * Steps written as SHARE[:HOLD],...: `5%:10m,25%:10m,50%:10m,100%` (a share as a percentage or a
 * fraction; the hold defaults to `defaultHold`). Shares must rise and end at 100%; the last step's
 * hold is how long the canary runs at 100% before it is promoted to primary.
 */
export function parseSteps(text: string, defaultHoldMs: number): RolloutStep[] {
  const steps: RolloutStep[] = [];
  for (const part of text.split(',')) {
    const [shareText, holdText] = part.trim().split(':');
    const percent = shareText?.endsWith('%') === true;
    const share = Number(percent ? shareText.slice(0, -1) : shareText) / (percent ? 100 : 1);
    if (shareText === undefined || shareText === '' || !(share > 0 && share <= 1)) {
      throw usage(
        `rollout steps: ${JSON.stringify(part)} is not SHARE[:HOLD] with a share above 0 and up to 100%`,
      );
    }
    const previous = steps.at(-1);
    if (previous !== undefined && share <= previous.share) {
      throw usage(`rollout steps: shares must rise, but ${share} follows ${previous.share}`);
    }
    steps.push({
      share,
      holdMs: holdText === undefined ? defaultHoldMs : parseDuration(holdText, 'rollout steps'),
    });
  }
  if (steps.length === 0 || steps.at(-1)!.share !== 1)
    throw usage('rollout steps: the last step must be 100%');
  return steps;
}

/** What was seen over one step's window. Undefined where a figure could not be had. */
export interface StepEvidence {
  canaryEvents: number;
  /** Canary events dead-lettered or scored by the fallback instead. */
  canaryFailures: number;
  /** Inference seconds per event, canary and primary, over the window. */
  canaryInferencePerEvent?: number | undefined;
  primaryInferencePerEvent?: number | undefined;
  /** Counts of the canary's and the primary's scores in the same bins, over the window. */
  canaryScoreBins?: readonly number[] | undefined;
  primaryScoreBins?: readonly number[] | undefined;
  /** Decision agreement of the canary with a shadow of the primary (or the reverse). */
  agreement?: number | undefined;
  /** Realised AUC of each, where outcomes arrived. */
  canaryAuc?: number | undefined;
  primaryAuc?: number | undefined;
}

export interface GateVerdict {
  gate: 'events' | 'failures' | 'latency' | 'scores' | 'agreement' | 'quality';
  /** true: passed; false: failed; undefined: no evidence for it in this window (not judged). */
  ok: boolean | undefined;
  value: number | null;
  limit: number;
  detail: string;
}

export type StepDecision = 'next' | 'hold' | 'rollback';

/** Bins of a score histogram over [0, 1] (scores outside are clamped into the end bins). */
export const SCORE_BINS = 10;

export function scoreBin(score: number): number {
  return Math.min(SCORE_BINS - 1, Math.max(0, Math.floor(score * SCORE_BINS)));
}

/**
 * Judges one step: rollback as soon as any gate with evidence fails (a failing canary is not
 * given the rest of its hold), hold while the canary has too few events for the gates to mean
 * anything, next once every gate with evidence passes. Gates without evidence (no shadow, no
 * outcomes) are reported and skipped.
 */
export function judgeStep(
  evidence: StepEvidence,
  limits: GateLimits,
): { decision: StepDecision; verdicts: GateVerdict[] } {
  const verdicts: GateVerdict[] = [];
  const enough = evidence.canaryEvents >= limits.minEvents;
  verdicts.push({
    gate: 'events',
    ok: enough,
    value: evidence.canaryEvents,
    limit: limits.minEvents,
    detail: `${evidence.canaryEvents} canary events in the window (at least ${limits.minEvents} to judge)`,
  });
  const failureRate = evidence.canaryEvents > 0 ? evidence.canaryFailures / evidence.canaryEvents : null;
  verdicts.push({
    gate: 'failures',
    ok: failureRate === null ? undefined : failureRate <= limits.maxFailureRate,
    value: failureRate,
    limit: limits.maxFailureRate,
    detail: `${evidence.canaryFailures} of ${evidence.canaryEvents} canary events failed`,
  });
  const { canaryInferencePerEvent: mine, primaryInferencePerEvent: theirs } = evidence;
  const ratio = mine !== undefined && theirs !== undefined && theirs > 0 ? mine / theirs : null;
  verdicts.push({
    gate: 'latency',
    ok: ratio === null ? undefined : ratio <= limits.maxLatencyRatio,
    value: ratio,
    limit: limits.maxLatencyRatio,
    detail: 'canary inference time per event against the primary',
  });
  const distance =
    evidence.canaryScoreBins !== undefined && evidence.primaryScoreBins !== undefined
      ? psi(evidence.canaryScoreBins, evidence.primaryScoreBins)
      : null;
  verdicts.push({
    gate: 'scores',
    ok: distance === null ? undefined : distance <= limits.maxScorePsi,
    value: distance,
    limit: limits.maxScorePsi,
    detail: 'PSI of the canary scores against the primary scores over the same window',
  });
  verdicts.push({
    gate: 'agreement',
    ok: evidence.agreement === undefined ? undefined : evidence.agreement >= limits.minAgreement,
    value: evidence.agreement ?? null,
    limit: limits.minAgreement,
    detail: 'decision agreement with a shadow of the primary',
  });
  const drop =
    evidence.canaryAuc !== undefined && evidence.primaryAuc !== undefined
      ? evidence.primaryAuc - evidence.canaryAuc
      : null;
  verdicts.push({
    gate: 'quality',
    ok: drop === null ? undefined : drop <= limits.maxAucDrop,
    value: drop,
    limit: limits.maxAucDrop,
    detail: 'realised AUC of the primary minus the canary, from outcomes',
  });
  const failed = verdicts.filter((v) => v.ok === false && v.gate !== 'events');
  if (enough) return { decision: failed.length > 0 ? 'rollback' : 'next', verdicts };
  // Before the window is full, only failures count, and only once there are more of them than a
  // full window may hold: a canary failing on most events is not kept for the rest of its hold.
  const failing = failed.some((v) => v.gate === 'failures');
  const tooMany = evidence.canaryFailures > limits.minEvents * limits.maxFailureRate;
  return { decision: failing && tooMany ? 'rollback' : 'hold', verdicts };
}
