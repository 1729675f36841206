import { createHash } from 'node:crypto';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { StreamscoreError } from '../errors.js';

export type { ModelInput, ModelMetadata, ModelOutput, ModelVersion } from '../inference/model.js';
import type { ModelMetadata, ModelVersion } from '../inference/model.js';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Reads models/<name>/<version>/{model.onnx, model.json}. Names and versions are folder names that
 * must match NAME_PATTERN, and resolved paths (symlinks included) must stay inside the repository,
 * so neither config nor a file name can point a load outside it.
 */
export class ModelRepository {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  async listModels(): Promise<string[]> {
    const entries = await this.#readDir(this.root, {});
    return entries.filter((entry) => entry.isDirectory() && NAME_PATTERN.test(entry.name)).map((e) => e.name);
  }

  /** Versions of a model that have a model.json, sorted ascending (numerically where numeric). */
  async listVersions(name: string): Promise<string[]> {
    const dir = await this.#inside(checkName('model', name), { model: name });
    const entries = await this.#readDir(dir, { model: name });
    const versions: string[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory() || !NAME_PATTERN.test(entry.name)) continue;
      const exists = await stat(join(dir, entry.name, 'model.json')).then(
        () => true,
        () => false,
      );
      if (exists) versions.push(entry.name);
    }
    return versions.sort(compareVersions);
  }

  /** Picks a version by policy: 'latest' (highest on disk) or an exact version name. */
  async resolveVersion(name: string, policy: string): Promise<string> {
    const versions = await this.listVersions(name);
    if (versions.length === 0) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `Model "${name}" has no versions under ${join(this.root, name)}`,
        {
          context: { model: name, path: this.root },
        },
      );
    }
    if (policy === 'latest') return versions[versions.length - 1]!;
    if (!versions.includes(policy)) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `Model "${name}" has no version "${policy}"; versions on disk: ${versions.join(', ')} (or use "latest")`,
        { context: { model: name, version: policy } },
      );
    }
    return policy;
  }

  /** Loads and checks one version: metadata shape, file present, sha256 equal. */
  async load(name: string, version: string): Promise<ModelVersion> {
    const context = { model: name, version };
    const dir = await this.#inside(join(checkName('model', name), checkName('version', version)), context);
    const metadataPath = join(dir, 'model.json');
    let metadataText: string;
    try {
      metadataText = await readFile(metadataPath, 'utf8');
    } catch (error) {
      throw new StreamscoreError('MODEL_INVALID', `Cannot read ${metadataPath}`, { cause: error, context });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(metadataText);
    } catch (error) {
      throw new StreamscoreError('MODEL_INVALID', `${metadataPath} is not valid JSON`, {
        cause: error,
        context,
      });
    }
    const metadata = parseMetadata(parsed, `${metadataPath}`);
    if (metadata.name !== name || metadata.version !== version) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `${metadataPath} names ${metadata.name}/${metadata.version}, but it lives in ${name}/${version}`,
        { context },
      );
    }
    const modelPath = await this.#inside(join(name, version, 'model.onnx'), context);
    let bytes: Buffer;
    try {
      bytes = await readFile(modelPath);
    } catch (error) {
      throw new StreamscoreError('MODEL_INVALID', `Cannot read ${modelPath}`, { cause: error, context });
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== metadata.sha256.toLowerCase()) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `sha256 of ${modelPath} is ${actual}, but model.json expects ${metadata.sha256}: the file is corrupt or was replaced without updating model.json`,
        { context: { ...context, reason: 'checksum' } },
      );
    }
    return { metadata, modelPath, bytes };
  }

  /** Resolves a path under the root and refuses anything that lands outside it. */
  async #inside(relativePath: string, context: Record<string, string>): Promise<string> {
    const candidate = resolve(this.root, relativePath);
    let real: string;
    try {
      real = await realpath(candidate);
    } catch (error) {
      throw new StreamscoreError('MODEL_INVALID', `Not found: ${candidate}`, {
        cause: error,
        context: { ...context, reason: 'not_found' },
      });
    }
    const rootReal = await realpath(this.root).catch(() => this.root);
    const rel = relative(rootReal, real);
    if (rel === '' ? false : rel.startsWith('..' + sep) || rel === '..' || isAbsolute(rel)) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `${candidate} resolves outside the model repository ${this.root}`,
        {
          context,
        },
      );
    }
    return real;
  }

  async #readDir(dir: string, context: Record<string, string>) {
    try {
      return await readdir(dir, { withFileTypes: true });
    } catch (error) {
      throw new StreamscoreError('MODEL_INVALID', `Cannot read model repository folder ${dir}`, {
        cause: error,
        context: { ...context, path: dir },
      });
    }
  }
}

function checkName(what: string, value: string): string {
  if (!NAME_PATTERN.test(value) || value === '.' || value === '..') {
    throw new StreamscoreError(
      'MODEL_INVALID',
      `Invalid ${what} name ${JSON.stringify(value)}: expected letters, digits, ".", "_" or "-", not starting with "." or "-"`,
    );
  }
  return value;
}

export function compareVersions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a.localeCompare(b, 'en', { numeric: true });
}

function parseMetadata(value: unknown, where: string): ModelMetadata {
  const problems: string[] = [];
  const object = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!object(value)) throw new StreamscoreError('MODEL_INVALID', `${where}: expected a JSON object`);
  const str = (key: string) => {
    if (typeof value[key] !== 'string' || value[key] === '')
      problems.push(`"${key}" must be a non-empty string`);
  };
  str('name');
  str('version');
  str('sha256');
  if (!Array.isArray(value.inputs) || value.inputs.length !== 1) {
    problems.push('"inputs" must list exactly one input tensor');
  } else {
    const input: unknown = value.inputs[0];
    if (!object(input) || typeof input.tensor !== 'string')
      problems.push('"inputs[0].tensor" must be a string');
    else if (input.dtype !== 'float32')
      problems.push(`"inputs[0].dtype" must be "float32", got ${String(input.dtype)}`);
    else if (
      !Array.isArray(input.features) ||
      input.features.length === 0 ||
      !input.features.every((f) => typeof f === 'string')
    ) {
      problems.push('"inputs[0].features" must be a non-empty list of feature names');
    } else if (new Set(input.features).size !== input.features.length) {
      problems.push('"inputs[0].features" lists a feature twice');
    }
  }
  if (!Array.isArray(value.outputs) || value.outputs.length === 0) {
    problems.push('"outputs" must be a non-empty list');
  } else {
    value.outputs.forEach((output: unknown, index) => {
      if (!object(output) || typeof output.name !== 'string' || typeof output.tensor !== 'string') {
        problems.push(`"outputs[${index}]" needs string "name" and "tensor"`);
      } else if (
        output.column !== null &&
        output.column !== undefined &&
        !(Number.isInteger(output.column) && (output.column as number) >= 0)
      ) {
        problems.push(`"outputs[${index}].column" must be null or a whole number >= 0`);
      }
    });
  }
  if (
    value.threshold !== undefined &&
    !(typeof value.threshold === 'number' && Number.isFinite(value.threshold))
  )
    problems.push('"threshold" must be a number');
  if (value.precision !== undefined && typeof value.precision !== 'string')
    problems.push('"precision" must be a string');
  if (value.variant !== undefined) {
    const variant = value.variant;
    const limits = object(variant) ? variant.limits : undefined;
    if (!object(variant) || typeof variant.of !== 'string' || variant.of === '' || !object(limits)) {
      problems.push(
        '"variant" must be { "of": "<version>", "limits": { "maxScoreDiff": n, "minAgreement": n } }',
      );
    } else {
      const { maxScoreDiff, minAgreement } = limits;
      if (!(typeof maxScoreDiff === 'number' && maxScoreDiff >= 0 && maxScoreDiff <= 1))
        problems.push('"variant.limits.maxScoreDiff" must be a number from 0 to 1');
      if (!(typeof minAgreement === 'number' && minAgreement >= 0 && minAgreement <= 1))
        problems.push('"variant.limits.minAgreement" must be a number from 0 to 1');
      if (variant.of === value.version) problems.push('"variant.of" names the version itself');
    }
  }
  if (problems.length > 0) {
    throw new StreamscoreError('MODEL_INVALID', `${where}: ${problems.join('; ')}`, {
      context: { reason: 'metadata' },
    });
  }
  const metadata = value as unknown as ModelMetadata;
  for (const output of metadata.outputs) output.column ??= null;
  return metadata;
}
