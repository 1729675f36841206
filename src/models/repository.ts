import { createHash } from 'node:crypto';
import { open, readFile, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { OPTIONS, type Config } from '../config/options.js';
import { StreamscoreError } from '../errors.js';
import { OnnxFormatError, externalReferences, type ExternalReference } from './external-data.js';
import { MODEL_FILE, parseMetadata, pathProblem } from './metadata.js';

export type { ModelInput, ModelMetadata, ModelOutput, ModelVersion } from '../inference/model.js';
import type { ModelVersion } from '../inference/model.js';

const MIB = 1_048_576;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Reads models/<name>/<version>/{model.onnx, model.json} and the external-data files model.json
 * lists. Names and versions are folder names that
 * must match NAME_PATTERN, and resolved paths (symlinks included) must stay inside the repository,
 * so neither config nor a file name can point a load outside it.
 */
export class ModelRepository {
  readonly root: string;
  /** The most bytes a version's files (model.onnx and those model.json lists) may take together. */
  readonly maxBytes: number;

  constructor(root: string, options: { maxBytes?: number } = {}) {
    this.root = resolve(root);
    this.maxBytes = options.maxBytes ?? OPTIONS.modelMaxMb.default * MIB;
  }

  /** The repository the settings name (or another root), with their size cap. */
  static of(config: Pick<Config, 'modelsDir' | 'modelMaxMb'>, root = config.modelsDir): ModelRepository {
    return new ModelRepository(root, { maxBytes: config.modelMaxMb * MIB });
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

  /**
   * Loads and checks one version: metadata shape; model.onnx and every file model.json lists inside
   * the version folder, within the size cap together, each equal to its sha256; every external-data
   * file the model names listed. Every reason to refuse is said in the error's message and named,
   * for the metrics, in its context's `reason`.
   */
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
    const listed = new Map<string, { sha256: string; real: string }>();
    for (const file of metadata.files ?? []) {
      const key = posix.normalize(file.path);
      if (key === MODEL_FILE) continue;
      const real = await this.#inFolder(dir, file.path, context);
      listed.set(key, { sha256: file.sha256, real });
    }
    await this.#checkSize(
      dir,
      [[MODEL_FILE, modelPath], ...[...listed].map(([key, f]) => [key, f.real] as const)],
      context,
    );
    const bytes = await this.#readChecked(modelPath, metadata.sha256, this.maxBytes, context);
    let references: ExternalReference[];
    try {
      references = externalReferences(bytes);
    } catch (error) {
      if (!(error instanceof OnnxFormatError)) throw error;
      throw new StreamscoreError('MODEL_INVALID', `${modelPath} is not an ONNX model: ${error.message}`, {
        cause: error,
        context: { ...context, reason: 'load' },
      });
    }
    const loads = checkReferences(
      references,
      new Set(listed.keys()),
      { modelPath, metadataPath, dir },
      context,
    );
    const contents = new Map<string, Buffer>();
    let left = this.maxBytes - bytes.length;
    for (const [key, file] of listed) {
      const data = await this.#readChecked(file.real, file.sha256, left, context);
      left -= data.length;
      contents.set(key, data);
    }
    const externalData = [...loads].map(([location, key]) => ({ path: location, data: contents.get(key)! }));
    return { metadata, modelPath, bytes, externalData };
  }

  /** Refuses the version when its files take more than the cap together, by their sizes alone. */
  async #checkSize(
    dir: string,
    files: readonly (readonly [string, string])[],
    context: Record<string, string>,
  ): Promise<void> {
    const sizes: string[] = [];
    let total = 0;
    for (const [name, path] of files) {
      let size: number;
      try {
        size = (await stat(path)).size;
      } catch (error) {
        throw new StreamscoreError('MODEL_INVALID', `Cannot read ${path}`, {
          cause: error,
          context: { ...context, reason: 'not_found' },
        });
      }
      total += size;
      sizes.push(`${name} ${mib(size)}`);
    }
    if (total > this.maxBytes) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `${dir} holds ${mib(total)} of model files (${sizes.join(', ')}), over the cap of ${mib(this.maxBytes)}; raise STREAMSCORE_MODEL_MAX_MB if the model is meant to be this large`,
        { context: { ...context, path: dir, reason: 'too_large' } },
      );
    }
  }

  /** Reads a file checked against its sha256, refusing it when it has grown past `limit` bytes since its stat. */
  async #readChecked(
    path: string,
    sha256: string,
    limit: number,
    context: Record<string, string>,
  ): Promise<Buffer> {
    let bytes: Buffer | 'too_large' | 'changed';
    try {
      bytes = await readCapped(path, limit);
    } catch (error) {
      throw new StreamscoreError('MODEL_INVALID', `Cannot read ${path}`, { cause: error, context });
    }
    if (typeof bytes === 'string') {
      throw new StreamscoreError(
        'MODEL_INVALID',
        bytes === 'too_large'
          ? `${path} grew while the version was loaded, past what the cap (STREAMSCORE_MODEL_MAX_MB) leaves for it, ${mib(limit)}`
          : `${path} changed while it was read; the next check tries again`,
        { context: { ...context, path, reason: bytes === 'too_large' ? 'too_large' : 'checksum' } },
      );
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256.toLowerCase()) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `sha256 of ${path} is ${actual}, but model.json expects ${sha256}: the file is corrupt or was replaced without updating model.json`,
        { context: { ...context, reason: 'checksum' } },
      );
    }
    return bytes;
  }

  /** A file named relative to a version folder, refused when it (or a symlink on its way) leaves the folder. */
  async #inFolder(dir: string, path: string, context: Record<string, string>): Promise<string> {
    const candidate = join(dir, path);
    let real: string;
    try {
      real = await realpath(candidate);
    } catch (error) {
      throw new StreamscoreError('MODEL_INVALID', `Not found: ${candidate} (listed in model.json)`, {
        cause: error,
        context: { ...context, reason: 'not_found' },
      });
    }
    if (!within(dir, real)) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `${candidate} resolves to ${real}, outside its version folder ${dir}: every model file must be in the folder`,
        { context: { ...context, reason: 'external_path' } },
      );
    }
    return real;
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
    if (!within(rootReal, real)) {
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

/**
 * Each external-data location the model names, mapped to the `files` entry it reads; refused when
 * the location cannot be a file of the version folder, or is not listed.
 */
function checkReferences(
  references: readonly ExternalReference[],
  listed: ReadonlySet<string>,
  where: { modelPath: string; metadataPath: string; dir: string },
  context: Record<string, string>,
): Map<string, string> {
  const loads = new Map<string, string>();
  for (const reference of references) {
    const what = `${where.modelPath} reads ${describeTensors(reference.tensors)} from ${JSON.stringify(reference.location)}`;
    const problem = pathProblem(reference.location);
    if (problem !== undefined) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `${what}, ${problem}: external data must be a file in the version folder ${where.dir}`,
        { context: { ...context, reason: 'external_path' } },
      );
    }
    const key = posix.normalize(reference.location);
    if (!listed.has(key)) {
      throw new StreamscoreError(
        'MODEL_INVALID',
        `${what}, which ${where.metadataPath} does not list: every file the model loads needs { "path", "sha256" } in "files"`,
        { context: { ...context, reason: 'unlisted' } },
      );
    }
    loads.set(reference.location, key);
  }
  return loads;
}

/** Whether `path` is `dir` or lies under it (both already resolved). */
function within(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || !(rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel));
}

function describeTensors(tensors: readonly string[]): string {
  const names = tensors.slice(0, 3).map((name) => JSON.stringify(name));
  const more = tensors.length > 3 ? ` and ${tensors.length - 3} more` : '';
  return `${tensors.length === 1 ? 'tensor' : 'tensors'} ${names.join(', ')}${more}`;
}

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

/**
 * The file's bytes; 'too_large' without reading when it is larger than `limit`, 'changed' when it
 * grew while it was read (its size was checked by stat before).
 */
async function readCapped(path: string, limit: number): Promise<Buffer | 'too_large' | 'changed'> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > limit) return 'too_large';
    const bytes = Buffer.alloc(size);
    let filled = 0;
    // One read may return less than asked (Linux stops at about 2 GiB a call).
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    const more = await handle.read(Buffer.alloc(1), 0, 1, filled);
    return more.bytesRead > 0 ? 'changed' : bytes.subarray(0, filled);
  } finally {
    await handle.close();
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
