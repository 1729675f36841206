/**
 * Drift simulator for the unit tests: fraud feature events drawn from training/fraud_features.json
 * (the distributions the reference profiles were computed on), scored by the real fraud/1 and
 * fraud/2 ONNX models, fed through a DriftMonitor as request, prediction and shadow records.
 * Imports only onnxruntime-node and the generator, so it does not depend on the serve pipeline.
 * EventSource draws every event independently; TrafficSource draws them in time order, as a stream
 * carries them, with a change from a given event on.
 */
import ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { readReference } from '../../src/drift/reference.js';
import { versionProfile, type VersionProfile } from '../../src/drift/window.js';
import {
  EventGenerator,
  Random,
  readFeatureSpecs,
  sampleFeature,
  type DriftOptions,
  type FeatureSpec,
} from '../../src/produce/generator.js';

export const FEATURE_SPECS: readonly FeatureSpec[] = readFeatureSpecs('training/fraud_features.json');
export const FEATURE_NAMES: readonly string[] = FEATURE_SPECS.map((spec) => spec.name);

export interface SimulatedEvent {
  request_id: string;
  features: Record<string, number>;
}

/** A location shift of one feature; clipping still applies after it. */
export interface Shift {
  feature: string;
  /** Added to the spec's location parameter (mean for normal, mu for lognormal). */
  delta: number;
}

/** Draws events, seeded; with a shift, the named feature's distribution moves. */
export class EventSource {
  readonly #random: Random;
  readonly #prefix: string;
  #sequence = 0;

  constructor(seed: number, prefix = 'sim') {
    this.#random = new Random(seed);
    this.#prefix = prefix;
  }

  next(shift?: Shift): SimulatedEvent {
    const features: Record<string, number> = {};
    for (const spec of FEATURE_SPECS) {
      features[spec.name] = sampleFeature(
        shift?.feature === spec.name ? shifted(spec, shift) : spec,
        this.#random,
      );
    }
    const request_id = `${this.#prefix}-${this.#sequence}`;
    this.#sequence += 1;
    return { request_id, features };
  }

  take(count: number, shift?: Shift): SimulatedEvent[] {
    return Array.from({ length: count }, () => this.next(shift));
  }
}

/** Events an hour in time-ordered traffic: a window of 2,000 spans one or two hours, one of 500 a third. */
export const EVENTS_PER_HOUR = 1_500;

/**
 * Events in time order: hour_of_day follows a clock (EVENTS_PER_HOUR events an hour, from
 * startHour), the other features are drawn; `drift` changes them from its fromEvent on.
 */
export class TrafficSource {
  readonly #generator: EventGenerator;

  constructor(seed: number, options: { startHour?: number; drift?: DriftOptions } = {}) {
    this.#generator = new EventGenerator({
      featureNames: FEATURE_NAMES,
      specs: FEATURE_SPECS,
      seed,
      keys: 1_000,
      runId: `traffic${seed}`,
      drift: options.drift,
      timeOfDay: {
        feature: 'hour_of_day',
        eventsPerHour: EVENTS_PER_HOUR,
        startHour: options.startHour ?? 0,
      },
    });
  }

  take(count: number): SimulatedEvent[] {
    return Array.from({ length: count }, () => this.#generator.next(0));
  }
}

function shifted(spec: FeatureSpec, shift: Shift): FeatureSpec {
  const key = spec.kind === 'normal' ? 'mean' : spec.kind === 'lognormal' ? 'mu' : undefined;
  if (key === undefined)
    throw new Error(`no location parameter to shift on ${spec.kind} feature ${spec.name}`);
  return { ...spec, params: { ...spec.params, [key]: spec.params[key]! + shift.delta } };
}

/** A fraud model version scoring rows with onnxruntime-node: column 1 of `probabilities`. */
export class FraudScorer {
  readonly version: string;
  readonly threshold: number;
  readonly #session: ort.InferenceSession;

  private constructor(version: string, threshold: number, session: ort.InferenceSession) {
    this.version = version;
    this.threshold = threshold;
    this.#session = session;
  }

  static async load(version: string): Promise<FraudScorer> {
    const metadata = JSON.parse(readFileSync(`models/fraud/${version}/model.json`, 'utf8')) as {
      threshold: number;
    };
    const session = await ort.InferenceSession.create(`models/fraud/${version}/model.onnx`, {
      intraOpNumThreads: 1,
      logSeverityLevel: 4,
    });
    return new FraudScorer(version, metadata.threshold, session);
  }

  async score(events: readonly SimulatedEvent[]): Promise<number[]> {
    const width = FEATURE_NAMES.length;
    const matrix = new Float32Array(events.length * width);
    events.forEach((event, row) => {
      FEATURE_NAMES.forEach((name, column) => (matrix[row * width + column] = event.features[name]!));
    });
    const results = await this.#session.run({
      features: new ort.Tensor('float32', matrix, [events.length, width]),
    });
    const probabilities = results.probabilities!.data as Float32Array;
    return Array.from({ length: events.length }, (_, row) => probabilities[row * 2 + 1]!);
  }

  async release(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * fraud/<version>'s reference profile and decision threshold, as the drift command would load them;
 * `roles` as model.json's "drift": {"roles": ...} would declare them.
 */
export async function fraudProfile(version: string, roles?: Record<string, string>): Promise<VersionProfile> {
  const reference = await readReference(`models/fraud/${version}/reference.json`, { name: 'fraud', version });
  const metadata = JSON.parse(readFileSync(`models/fraud/${version}/model.json`, 'utf8')) as {
    threshold: number;
  };
  return versionProfile(reference, metadata.threshold, roles);
}

/** A clock the test moves by hand. */
export class ManualClock {
  now: number;

  constructor(start = 1_700_000_000_000) {
    this.now = start;
  }

  read = (): number => this.now;
}
