/**
 * model.json: its shape checked once, every problem reported together.
 */
import { posix, win32 } from 'node:path';
import { StreamscoreError } from '../errors.js';
import type { ModelMetadata } from '../inference/model.js';

export const MODEL_FILE = 'model.onnx';
const SHA256_PATTERN = /^[0-9a-fA-F]{64}$/;

/**
 * Why a path written in a model or in model.json cannot name a file of the version folder, or
 * undefined when it can (symlinks are checked when the file is opened).
 */
export function pathProblem(path: string): string | undefined {
  if (path.includes('\0')) return 'a path with a NUL byte';
  if (posix.isAbsolute(path) || win32.isAbsolute(path)) return 'an absolute path';
  if (path.includes('\\')) return 'a path with "\\" (use "/" between folders)';
  if (path.split('/').includes('..')) return 'a path that climbs out with ".."';
  return undefined;
}

export function parseMetadata(value: unknown, where: string): ModelMetadata {
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
  if (typeof value.sha256 === 'string' && !SHA256_PATTERN.test(value.sha256))
    problems.push('"sha256" must be 64 hexadecimal digits');
  if (value.files !== undefined) {
    if (!Array.isArray(value.files)) problems.push('"files" must be a list of { "path", "sha256" }');
    else {
      const seen = new Set<string>();
      value.files.forEach((file: unknown, index) => {
        const where = `"files[${index}]`;
        if (!object(file) || typeof file.path !== 'string' || typeof file.sha256 !== 'string') {
          problems.push(`${where}" needs string "path" and "sha256"`);
          return;
        }
        const problem = file.path === '' ? 'an empty path' : pathProblem(file.path);
        if (problem !== undefined) {
          problems.push(
            `${where}.path" ${JSON.stringify(file.path)} is ${problem}; list files of the version folder`,
          );
          return;
        }
        if (!SHA256_PATTERN.test(file.sha256))
          problems.push(`${where}.sha256" must be 64 hexadecimal digits`);
        const key = posix.normalize(file.path);
        if (seen.has(key)) problems.push(`${where}" lists ${JSON.stringify(file.path)} again`);
        seen.add(key);
        if (
          key === MODEL_FILE &&
          typeof value.sha256 === 'string' &&
          file.sha256.toLowerCase() !== value.sha256.toLowerCase()
        ) {
          problems.push(`${where}" gives model.onnx another sha256 than "sha256"`);
        }
      });
    }
  }
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
