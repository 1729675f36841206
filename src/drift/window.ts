import { StreamscoreError } from '../errors.js';
import { AgreementAccumulator, type AgreementSnapshot } from './agreement.js';
import { BinnedHistogram, type HistogramSnapshot } from './histogram.js';
import { QualityAccumulator, type QualitySnapshot } from './quality.js';
import {
  FEATURE_ROLES,
  isFeatureRole,
  type FeatureRole,
  type ReferenceProfile,
  type TimeSlices,
} from './reference.js';

/** A feature's role and where it came from. */
export interface RoleChoice {
  role: FeatureRole;
  reason: string;
}

/** What the monitor knows of one model version: its reference profile and its decision rule. */
export interface VersionProfile {
  reference: ReferenceProfile;
  /** Decision threshold on the score (model.json "threshold"; 0.5 when it has none). */
  threshold: number;
  /** The output compared with shadows (the reference's only output, or "score"). */
  scoreOutput: string;
  /** Every feature's role: the reference's, unless model.json declares another. */
  roles: ReadonlyMap<string, RoleChoice>;
  /** The time slices other subjects are compared within, while their feature stays cyclical. */
  slices: TimeSlices | undefined;
}

/**
 * Builds a VersionProfile from a reference, the threshold model.json gives (if any) and the roles
 * model.json declares under "drift": {"roles": {feature: role}}. A declared role is judged on the
 * bins reference.json holds: declaring a numeric feature categorical treats its deciles as its
 * categories until the training script profiles it again.
 */
export function versionProfile(
  reference: ReferenceProfile,
  threshold?: number,
  declared: Readonly<Record<string, unknown>> = {},
): VersionProfile {
  const problems: string[] = [];
  for (const [name, role] of Object.entries(declared)) {
    if (!reference.features.has(name)) {
      problems.push(
        `"${name}" is not a feature of the reference (${[...reference.features.keys()].join(', ')})`,
      );
    } else if (!isFeatureRole(role)) {
      problems.push(`"${name}": ${JSON.stringify(role)} is not a role; allowed: ${FEATURE_ROLES.join(', ')}`);
    }
  }
  if (problems.length > 0) {
    throw new StreamscoreError(
      'MODEL_INVALID',
      `model.json "drift.roles" of ${reference.name}/${reference.version}: ${problems.join('; ')}`,
      { context: { model: reference.name, version: reference.version } },
    );
  }
  const roles = new Map<string, RoleChoice>();
  for (const [name, p] of reference.features) {
    const role = declared[name];
    roles.set(
      name,
      isFeatureRole(role)
        ? { role, reason: 'declared in model.json' }
        : { role: p.role, reason: p.roleReason },
    );
  }
  const sliced = reference.slices;
  const outputs = [...reference.outputs.keys()];
  return {
    reference,
    threshold: threshold ?? 0.5,
    scoreOutput: outputs.length === 1 ? outputs[0]! : 'score',
    roles,
    slices: sliced !== undefined && roles.get(sliced.feature)?.role === 'cyclical' ? sliced : undefined,
  };
}

/** When a tumbling window closes: at maxEvents events or maxDurationMs after it opened, whichever first. */
export interface WindowLimits {
  maxEvents: number;
  maxDurationMs: number;
}

/**
 * 2,000 events: large enough that PSI's sampling noise (about 0.005) is far below the 0.1 warning,
 * small enough to see a shift within seconds at serving rates. Five minutes: a version that gets
 * 2 events a second still fills a window of about 600, above the ~500 below which the false-alarm
 * rate climbs towards the test's family-wise level (docs/drift.md).
 */
export const DEFAULT_WINDOW_LIMITS: Readonly<WindowLimits> = Object.freeze({
  maxEvents: 2_000,
  maxDurationMs: 300_000, // five minutes
});

export function checkWindowLimits(limits: WindowLimits): WindowLimits {
  const problems: string[] = [];
  if (!(Number.isInteger(limits.maxEvents) && limits.maxEvents >= 1)) {
    problems.push(`maxEvents must be an integer >= 1, got ${limits.maxEvents}`);
  }
  if (!(Number.isFinite(limits.maxDurationMs) && limits.maxDurationMs > 0)) {
    problems.push(`maxDurationMs must be a number > 0, got ${limits.maxDurationMs}`);
  }
  if (problems.length > 0) {
    throw new StreamscoreError('CONFIG_INVALID', `Invalid drift window: ${problems.join('; ')}`);
  }
  return Object.freeze({ ...limits });
}

export type CloseReason = 'count' | 'time' | 'flush';

/** A closed window's raw material, before statistics: see report.ts. */
export interface WindowSnapshot {
  model: string;
  version: string;
  /** Epoch ms: the first observation, and the close. */
  start: number;
  end: number;
  closedBy: CloseReason;
  /** Outputs of this version observed (one per prediction or shadow record). */
  events: number;
  features: Map<string, HistogramSnapshot>;
  outputs: Map<string, HistogramSnapshot>;
  /** By shadow version, where this version is the served one. */
  shadows: Map<string, AgreementSnapshot>;
  /** Realised quality of the predictions settled in the window; null when none settled. */
  quality: QualitySnapshot | null;
}

/**
 * One tumbling window of one model version. Memory is fixed by the reference (a count per bin per
 * feature and output) plus one accumulator per shadow version; the only raw values kept are the
 * (score, label) pairs of predictions matched with outcomes, for the AUC (see QualityAccumulator).
 */
export class DriftWindow {
  readonly profile: VersionProfile;
  readonly start: number;
  readonly #limits: WindowLimits;
  readonly #features = new Map<string, BinnedHistogram>();
  readonly #outputs = new Map<string, BinnedHistogram>();
  readonly #shadows = new Map<string, AgreementAccumulator>();
  /** Predictions of this version settled against outcomes while the window was open. */
  readonly quality: QualityAccumulator;
  #events = 0;

  constructor(profile: VersionProfile, limits: WindowLimits, start: number) {
    this.profile = profile;
    this.start = start;
    this.#limits = limits;
    this.quality = new QualityAccumulator(profile.threshold);
    for (const [name, p] of profile.reference.features) this.#features.set(name, new BinnedHistogram(p));
    for (const [name, p] of profile.reference.outputs) this.#outputs.set(name, new BinnedHistogram(p));
  }

  get events(): number {
    return this.#events;
  }

  /** One request's features; those the reference does not profile are ignored. */
  observeFeatures(features: Readonly<Record<string, number>>): void {
    for (const [name, histogram] of this.#features) histogram.add(features[name]);
  }

  /** One prediction's (or shadow record's) outputs of this version: one event of the window. */
  observeOutputs(outputs: Readonly<Record<string, number>>): void {
    this.#events += 1;
    for (const [name, histogram] of this.#outputs) histogram.add(outputs[name]);
  }

  /** The comparison of this (served) version with a shadow version, made on first use. */
  comparison(shadowVersion: string, shadowThreshold: number): AgreementAccumulator {
    let accumulator = this.#shadows.get(shadowVersion);
    if (accumulator === undefined) {
      accumulator = new AgreementAccumulator(this.profile.threshold, shadowThreshold);
      this.#shadows.set(shadowVersion, accumulator);
    }
    return accumulator;
  }

  /** Shadow versions compared with this version in this window. */
  shadowVersions(): string[] {
    return [...this.#shadows.keys()];
  }

  /** Why the window should close now, if it should. */
  dueReason(now: number): CloseReason | undefined {
    if (this.#events >= this.#limits.maxEvents) return 'count';
    if (now - this.start >= this.#limits.maxDurationMs) return 'time';
    return undefined;
  }

  snapshot(end: number, closedBy: CloseReason): WindowSnapshot {
    const { reference } = this.profile;
    return {
      model: reference.name,
      version: reference.version,
      start: this.start,
      end,
      closedBy,
      events: this.#events,
      features: new Map([...this.#features].map(([name, h]) => [name, h.snapshot()])),
      outputs: new Map([...this.#outputs].map(([name, h]) => [name, h.snapshot()])),
      shadows: new Map([...this.#shadows].map(([name, a]) => [name, a.snapshot()])),
      quality: this.quality.settled > 0 ? this.quality.snapshot() : null,
    };
  }
}
