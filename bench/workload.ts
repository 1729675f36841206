/**
 * What the bench feeds each model: its pinned version and an event generator that draws features
 * as `streamscore produce` does (training/<model>_features.json where it exists, else standard
 * normal, which is what the heavy model's inputs are).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelRepository, type ModelVersion } from '../src/models/repository.js';
import { EventGenerator, readFeatureSpecs } from '../src/produce/generator.js';

export interface Workload {
  model: string;
  version: string;
  loaded: ModelVersion;
  featureNames: readonly string[];
  /** Names of the Prediction outputs the model writes, so the transport relay writes the same shape. */
  outputNames: readonly string[];
  generator(seed: number, runId: string): EventGenerator;
}

/**
 * fraud is pinned to version 2 (gradient boosting): it is what `latest`, the serve default, resolves
 * to, i.e. the production model. heavy has only version 1.
 */
export const PINNED_VERSIONS: Record<string, string> = { fraud: '2', heavy: '1' };

/** Distinct entity keys per run: enough that every partition gets a share. */
const KEYS = 1_000;

/**
 * The model's pinned version (or `options.version`); `options.repeatShare` makes that share of the
 * generated events repeat an earlier event's features exactly (prediction cache traffic).
 */
export async function loadWorkload(
  model: string,
  modelsDir = 'models',
  options: { version?: string; repeatShare?: number } = {},
): Promise<Workload> {
  const version = options.version ?? PINNED_VERSIONS[model];
  if (version === undefined) {
    throw new Error(
      `no pinned version for model "${model}"; expected one of ${Object.keys(PINNED_VERSIONS).join(', ')}`,
    );
  }
  const loaded = await new ModelRepository(modelsDir).load(model, version);
  const featureNames = loaded.metadata.inputs[0]!.features;
  const specPath = join('training', `${model}_features.json`);
  const specs = existsSync(specPath) ? readFeatureSpecs(specPath) : [];
  return {
    model,
    version,
    loaded,
    featureNames,
    outputNames: loaded.metadata.outputs.map((output) => output.name),
    generator: (seed, runId) =>
      new EventGenerator({ featureNames, specs, seed, keys: KEYS, runId, repeatShare: options.repeatShare }),
  };
}
