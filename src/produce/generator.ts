import { readFileSync } from 'node:fs';
import type { FeatureEvent } from '../codec/requests.js';
import { StreamscoreError } from '../errors.js';

/** One feature's distribution, as in training/<model>_features.json (see training/README.md). */
export interface FeatureSpec {
  name: string;
  kind: 'normal' | 'lognormal' | 'uniform' | 'uniform_int' | 'bernoulli' | 'poisson';
  params: Record<string, number>;
  clip?: { min?: number; max?: number };
}

/** Deterministic 32-bit PRNG (mulberry32): the same seed gives the same event stream everywhere. */
export class Random {
  #state: number;
  #spare: number | undefined;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** Standard normal, Box-Muller (the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.#spare !== undefined) {
      const value = this.#spare;
      this.#spare = undefined;
      return value;
    }
    const u = 1 - this.uniform(); // (0, 1], so the log is finite
    const v = this.uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.#spare = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  }

  /** Poisson by multiplying uniforms (Knuth); fine for the small rates the specs use. */
  poisson(lambda: number): number {
    const limit = Math.exp(-lambda);
    let k = 0;
    let product = this.uniform();
    while (product > limit) {
      k += 1;
      product *= this.uniform();
    }
    return k;
  }
}

export function sampleFeature(spec: FeatureSpec, random: Random): number {
  const p = spec.params;
  let value: number;
  switch (spec.kind) {
    case 'normal':
      value = p.mean! + p.std! * random.normal();
      break;
    case 'lognormal':
      value = Math.exp(p.mu! + p.sigma! * random.normal());
      break;
    case 'uniform':
      value = p.low! + (p.high! - p.low!) * random.uniform();
      break;
    case 'uniform_int':
      value = Math.floor(p.low! + (p.high! - p.low! + 1) * random.uniform());
      break;
    case 'bernoulli':
      value = random.uniform() < p.p! ? 1 : 0;
      break;
    case 'poisson':
      value = random.poisson(p.lambda!);
      break;
  }
  if (spec.clip?.min !== undefined) value = Math.max(value, spec.clip.min);
  if (spec.clip?.max !== undefined) value = Math.min(value, spec.clip.max);
  return value;
}

/** The standard deviation of a feature's distribution (before clipping), from its parameters. */
export function featureStd(spec: FeatureSpec): number {
  const p = spec.params;
  switch (spec.kind) {
    case 'normal':
      return p.std!;
    case 'lognormal':
      return Math.sqrt((Math.exp(p.sigma! ** 2) - 1) * Math.exp(2 * p.mu! + p.sigma! ** 2));
    case 'uniform':
      return (p.high! - p.low!) / Math.sqrt(12);
    case 'uniform_int': {
      const n = p.high! - p.low! + 1;
      return Math.sqrt((n * n - 1) / 12);
    }
    case 'bernoulli':
      return Math.sqrt(p.p! * (1 - p.p!));
    case 'poisson':
      return Math.sqrt(p.lambda!);
  }
}

/**
 * Drift to inject, for testing monitors: from event `fromEvent` on, `shifts` adds k standard
 * deviations to a feature (a mean shift of k sigma, any kind), `mixes` sets a new rate for a
 * bernoulli feature (a changed categorical mix), `ramps` adds k standard deviations per event (a
 * slow drift: 0.1 sigma per window of n events is 0.1 / n), and `scales` multiplies the spread of a
 * normal (std) or lognormal (sigma) feature around its unchanged median.
 */
export interface DriftOptions {
  fromEvent: number;
  shifts: Record<string, number>;
  mixes: Record<string, number>;
  ramps?: Record<string, number>;
  scales?: Record<string, number>;
}

/**
 * Traffic in time order: `feature` follows a clock instead of being drawn, the hour of day
 * (startHour + sequence / eventsPerHour) mod 24, as a stream's hour feature does in real traffic.
 */
export interface TimeOfDay {
  feature: string;
  eventsPerHour: number;
  startHour?: number;
}

const KINDS = new Set(['normal', 'lognormal', 'uniform', 'uniform_int', 'bernoulli', 'poisson']);

/** Reads a feature spec file; features it does not list are drawn standard normal. */
export function readFeatureSpecs(path: string): FeatureSpec[] {
  let parsed: { features?: unknown };
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as { features?: unknown };
  } catch (error) {
    throw new StreamscoreError('CONFIG_INVALID', `Cannot read feature spec ${path}`, {
      cause: error,
      context: { path },
    });
  }
  if (!Array.isArray(parsed.features)) {
    throw new StreamscoreError('CONFIG_INVALID', `${path}: expected "features": [...]`, {
      context: { path },
    });
  }
  for (const feature of parsed.features as FeatureSpec[]) {
    if (typeof feature.name !== 'string' || !KINDS.has(feature.kind)) {
      throw new StreamscoreError(
        'CONFIG_INVALID',
        `${path}: feature ${JSON.stringify(feature.name)} has kind ${JSON.stringify(feature.kind)}; allowed: ${[...KINDS].join(', ')}`,
      );
    }
  }
  return parsed.features as FeatureSpec[];
}

export interface GeneratorOptions {
  featureNames: readonly string[];
  specs: readonly FeatureSpec[];
  seed: number;
  /** Distinct entity keys the events are spread over. */
  keys: number;
  /** Prefix of request ids, so several runs in one topic stay distinct. */
  runId: string;
  drift?: DriftOptions | undefined;
  timeOfDay?: TimeOfDay | undefined;
  /**
   * Share of events (0 to 1) whose features repeat an earlier event's exactly (drawn from the
   * last REPEAT_HISTORY fresh rows), with their own request id and key: traffic a prediction
   * cache can serve.
   */
  repeatShare?: number | undefined;
}

/** Fresh feature rows a repeat is drawn from. */
const REPEAT_HISTORY = 4_096;

/** Synthetic FeatureEvents: the load generator for demos, tests and benchmarks. */
export class EventGenerator {
  readonly #random: Random;
  readonly #samplers: ((random: Random) => number)[];
  /** Samplers with the drift applied, used from drift.fromEvent on; `since` counts events from it. */
  readonly #drifted: ((random: Random, since: number) => number)[];
  readonly #clockColumn: number;
  readonly #names: readonly string[];
  readonly #options: GeneratorOptions;
  #sequence = 0;
  /** The last fresh rows, for repeats; a ring of REPEAT_HISTORY. */
  readonly #history: Record<string, number>[] = [];

  constructor(options: GeneratorOptions) {
    this.#options = options;
    const share = options.repeatShare ?? 0;
    if (!(share >= 0 && share <= 1))
      throw new StreamscoreError('USAGE', `repeat share must be from 0 to 1, got ${share}`);
    this.#random = new Random(options.seed);
    const byName = new Map(options.specs.map((spec) => [spec.name, spec]));
    this.#names = options.featureNames;
    const sampler = (spec: FeatureSpec | undefined) =>
      spec === undefined
        ? (random: Random) => random.normal()
        : (random: Random) => sampleFeature(spec, random);
    this.#samplers = options.featureNames.map((name) => sampler(byName.get(name)));
    const drift = options.drift;
    const clock = options.timeOfDay;
    this.#clockColumn = clock === undefined ? -1 : options.featureNames.indexOf(clock.feature);
    if (clock !== undefined && (this.#clockColumn < 0 || !(clock.eventsPerHour > 0))) {
      throw new StreamscoreError(
        'USAGE',
        `time of day: feature "${clock.feature}" must be one the model uses, eventsPerHour > 0 (got ${clock.eventsPerHour})`,
      );
    }
    for (const name of [
      ...Object.keys(drift?.shifts ?? {}),
      ...Object.keys(drift?.mixes ?? {}),
      ...Object.keys(drift?.ramps ?? {}),
      ...Object.keys(drift?.scales ?? {}),
    ]) {
      if (!options.featureNames.includes(name)) {
        throw new StreamscoreError(
          'USAGE',
          `drift names feature "${name}", which the model does not use (${options.featureNames.join(', ')})`,
        );
      }
    }
    this.#drifted = options.featureNames.map((name, i) => {
      const spec = byName.get(name);
      const mix = drift?.mixes[name];
      const shift = drift?.shifts[name];
      const ramp = drift?.ramps?.[name];
      const scale = drift?.scales?.[name];
      let base = this.#samplers[i]!;
      if (mix !== undefined) {
        if (spec?.kind !== 'bernoulli') {
          throw new StreamscoreError('USAGE', `--mix ${name}: only bernoulli features have a mix`);
        }
        base = sampler({ ...spec, params: { p: mix } });
      }
      if (scale !== undefined) {
        const spread = spec?.kind === 'normal' ? 'std' : spec?.kind === 'lognormal' ? 'sigma' : undefined;
        if (spec === undefined || spread === undefined) {
          throw new StreamscoreError(
            'USAGE',
            `scale ${name}: only normal and lognormal features have a spread`,
          );
        }
        base = sampler({ ...spec, params: { ...spec.params, [spread]: spec.params[spread]! * scale } });
      }
      const sigma = spec === undefined ? 1 : featureStd(spec);
      const delta = (shift ?? 0) * sigma;
      const perEvent = (ramp ?? 0) * sigma;
      if (delta === 0 && perEvent === 0) return base;
      return (random: Random, since: number) => base(random) + delta + perEvent * since;
    });
  }

  next(now = Date.now()): FeatureEvent {
    const sequence = this.#sequence;
    this.#sequence += 1;
    const share = this.#options.repeatShare ?? 0;
    if (share > 0 && this.#history.length > 0 && this.#random.uniform() < share) {
      const row = this.#history[Math.floor(this.#random.uniform() * this.#history.length)]!;
      return this.#event(sequence, now, { ...row });
    }
    const features: Record<string, number> = {};
    const drift = this.#options.drift;
    if (drift !== undefined && sequence >= drift.fromEvent) {
      const since = sequence - drift.fromEvent;
      for (let i = 0; i < this.#names.length; i += 1) {
        features[this.#names[i]!] = this.#drifted[i]!(this.#random, since);
      }
    } else {
      for (let i = 0; i < this.#names.length; i += 1)
        features[this.#names[i]!] = this.#samplers[i]!(this.#random);
    }
    const clock = this.#options.timeOfDay;
    if (clock !== undefined) {
      const hour = (clock.startHour ?? 0) + Math.floor(sequence / clock.eventsPerHour);
      features[this.#names[this.#clockColumn]!] = hour % 24;
    }
    if (share > 0) {
      if (this.#history.length < REPEAT_HISTORY) this.#history.push(features);
      else this.#history[sequence % REPEAT_HISTORY] = features;
    }
    return this.#event(sequence, now, features);
  }

  #event(sequence: number, now: number, features: Record<string, number>): FeatureEvent {
    const entity = Math.floor(this.#random.uniform() * this.#options.keys);
    return {
      request_id: `${this.#options.runId}-${sequence}`,
      entity_key: `entity-${entity}`,
      event_time: now,
      features,
    };
  }
}

/** How labels are drawn from features: the "label" section of a feature spec file. */
export interface LabelSpec {
  name: string;
  kind: 'logistic';
  intercept: number;
  /** Standard deviation of the normal noise added to the logit. */
  noiseStd: number;
  terms: { feature: string; transform: 'identity' | 'log1p'; coef: number }[];
}

const TRANSFORMS: Record<LabelSpec['terms'][number]['transform'], (x: number) => number> = {
  identity: (x) => x,
  log1p: Math.log1p,
};

/** The label section of a feature spec file, checked; undefined when the file has none. */
export function readLabelSpec(path: string): LabelSpec | undefined {
  let parsed: { label?: unknown };
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as { label?: unknown };
  } catch (error) {
    throw new StreamscoreError('CONFIG_INVALID', `Cannot read feature spec ${path}`, {
      cause: error,
      context: { path },
    });
  }
  if (parsed.label === undefined) return undefined;
  const label = parsed.label as Partial<LabelSpec>;
  const problems: string[] = [];
  if (label.kind !== 'logistic') problems.push(`kind ${JSON.stringify(label.kind)}, expected "logistic"`);
  if (typeof label.intercept !== 'number') problems.push('"intercept" must be a number');
  if (typeof label.noiseStd !== 'number' || label.noiseStd < 0) problems.push('"noiseStd" must be >= 0');
  if (!Array.isArray(label.terms)) problems.push('"terms" must be a list');
  for (const term of label.terms ?? []) {
    if (
      typeof term.feature !== 'string' ||
      typeof term.coef !== 'number' ||
      !(term.transform in TRANSFORMS)
    ) {
      problems.push(
        `term ${JSON.stringify(term)}: expected a feature name, a number coef and a transform (${Object.keys(TRANSFORMS).join(', ')})`,
      );
    }
  }
  if (problems.length > 0) {
    throw new StreamscoreError('CONFIG_INVALID', `${path}: "label": ${problems.join('; ')}`, {
      context: { path },
    });
  }
  return label as LabelSpec;
}

/** The noise-free logit of the label: intercept + sum(coef * transform(feature)), as train.py computes it. */
export function labelLogit(spec: LabelSpec, features: Readonly<Record<string, number>>): number {
  let z = spec.intercept;
  for (const term of spec.terms) z += term.coef * TRANSFORMS[term.transform](features[term.feature] ?? 0);
  return z;
}

/** An event's ground truth: the probability its label was drawn with, and the label. */
export interface GroundTruth {
  probability: number;
  label: 0 | 1;
}

/**
 * Draws labels from features by the spec's rule: z = logit + noiseStd * N(0, 1), p = 1 / (1 +
 * exp(-z)), label = U < p. Its own random stream, seeded apart from the features', so the events
 * of a seed are the same whether or not their labels are drawn.
 */
export class LabelDrawer {
  readonly #spec: LabelSpec;
  readonly #random: Random;

  constructor(spec: LabelSpec, seed: number) {
    this.#spec = spec;
    // A fixed odd constant keeps the label stream apart from the feature stream of the same seed.
    this.#random = new Random((seed ^ 0x5bd1e995) >>> 0);
  }

  draw(features: Readonly<Record<string, number>>): GroundTruth {
    const z = labelLogit(this.#spec, features) + this.#spec.noiseStd * this.#random.normal();
    const probability = 1 / (1 + Math.exp(-z));
    return { probability, label: this.#random.uniform() < probability ? 1 : 0 };
  }

  /** True with probability p, from the same stream: which events get an outcome at all. */
  chance(p: number): boolean {
    return this.#random.uniform() < p;
  }
}
