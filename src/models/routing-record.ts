import { StreamscoreError } from '../errors.js';
import { checkSpec, type RoutingSpec } from './routing.js';

/** A progressive rollout of the canary: the shares it steps through and how long each is held. */
export interface RolloutPlan {
  steps: { share: number; holdMs: number }[];
}

/** Who changed a routing, when and why: what an operator reads beside the routing itself. */
export interface RoutingChange {
  updatedAt: number;
  updatedBy: string;
  reason: string;
}

/** A record of the routing topic, decoded: the routing of one model, and its change. */
export interface RoutingEntry extends RoutingChange {
  model: string;
  spec: RoutingSpec;
  /** Planned, not applied by serve. */
  rollout: RolloutPlan | undefined;
}

/** The RoutingRecord value, as in schemas/routing.avsc (avsc's plain JavaScript form). */
export interface RoutingRecord {
  model_name: string;
  primary: string;
  canary: { version: string; share: number } | null;
  shadows: string[];
  fallback: string | null;
  rollout: { steps: { share: number; hold_ms: number }[] } | null;
  updated_at: number;
  updated_by: string;
  reason: string;
}

export function toRecord(entry: RoutingEntry): RoutingRecord {
  const { spec } = entry;
  return {
    model_name: entry.model,
    primary: spec.primary,
    canary: spec.canary === undefined ? null : { version: spec.canary.version, share: spec.canary.share },
    shadows: [...spec.shadows],
    fallback: spec.fallback ?? null,
    rollout:
      entry.rollout === undefined
        ? null
        : { steps: entry.rollout.steps.map((s) => ({ share: s.share, hold_ms: s.holdMs })) },
    updated_at: entry.updatedAt,
    updated_by: entry.updatedBy,
    reason: entry.reason,
  };
}

/**
 * A decoded record back to a routing. The value was written with any registered version of the
 * schema, so every field is checked; a record that breaks the routing rules is ROUTING_INVALID.
 */
export function fromRecord(value: unknown, where: string): RoutingEntry {
  const problem = (what: string) =>
    new StreamscoreError('ROUTING_INVALID', `${where}: not a RoutingRecord: ${what}`);
  if (typeof value !== 'object' || value === null) throw problem('the value is not a record');
  const record = value as Partial<Record<keyof RoutingRecord, unknown>>;
  const text = (field: keyof RoutingRecord): string => {
    const v = record[field];
    if (typeof v !== 'string') throw problem(`"${field}" is not a string`);
    return v;
  };
  const model = text('model_name');
  const primary = text('primary');
  const canary = record.canary as RoutingRecord['canary'] | undefined;
  const shadows = record.shadows ?? [];
  if (!Array.isArray(shadows) || !shadows.every((s) => typeof s === 'string'))
    throw problem('"shadows" is not a list of strings');
  const fallback = record.fallback ?? null;
  if (fallback !== null && typeof fallback !== 'string') throw problem('"fallback" is not a string');
  const rollout = (record.rollout ?? null) as RoutingRecord['rollout'];
  const updatedAt = Number(record.updated_at);
  let spec: RoutingSpec;
  try {
    spec = checkSpec(
      {
        primary,
        canary: canary == null ? undefined : { version: canary.version, share: canary.share },
        shadows: shadows,
        ...(fallback === null || fallback === '' ? {} : { fallback }),
      },
      `${where}: model "${model}"`,
    );
  } catch (error) {
    throw new StreamscoreError('ROUTING_INVALID', (error as Error).message, { context: { model } });
  }
  return {
    model,
    spec,
    rollout:
      rollout === null
        ? undefined
        : { steps: rollout.steps.map((s) => ({ share: s.share, holdMs: Number(s.hold_ms) })) },
    updatedAt: Number.isFinite(updatedAt) ? updatedAt : 0,
    updatedBy: typeof record.updated_by === 'string' ? record.updated_by : '',
    reason: typeof record.reason === 'string' ? record.reason : '',
  };
}

/** One line for logs and `route show`: `primary 2, canary 3 at 0.05, shadows 4, fallback 1`. */
export function describeSpec(spec: RoutingSpec): string {
  return [
    `primary ${spec.primary}`,
    ...(spec.canary === undefined ? [] : [`canary ${spec.canary.version} at ${spec.canary.share}`]),
    ...(spec.shadows.length === 0 ? [] : [`shadows ${spec.shadows.join(', ')}`]),
    ...(spec.fallback === undefined ? [] : [`fallback ${spec.fallback}`]),
  ].join(', ');
}
