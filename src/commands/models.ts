import { basename, dirname, resolve } from 'node:path';
import type { Config } from '../config/options.js';
import { StreamscoreError, describeError } from '../errors.js';
import { ModelRunner } from '../inference/runner.js';
import { ModelRepository, type ModelMetadata } from '../models/repository.js';
import { refusalReason } from '../models/live.js';
import { readRouting, type RoutingSpec } from '../models/routing.js';
import { checkVariant, type VariantCheck } from '../models/variant.js';

export type Check =
  | { ok: true; metadata: ModelMetadata; variant: VariantCheck | undefined }
  | { ok: false; reason: string; message: string };

/** How a variant compares with its source, for listings. */
function variantDetail(check: Check): string {
  if (!check.ok || check.metadata.variant === undefined || check.variant === undefined) return '';
  const { metadata, variant } = check;
  const kind = metadata.precision === undefined ? 'variant' : `${metadata.precision} variant`;
  return `; ${kind} of ${metadata.variant!.of}: max |diff| ${variant.maxScoreDiff.toFixed(4)}, agreement ${variant.agreement.toFixed(4)} on ${variant.rows} reference rows`;
}

/**
 * Loads and validates one version exactly as serve would before routing traffic to it; a refusal
 * has the reason and message serve logs (`model fraud/3 refused (checksum): ...`).
 */
export async function check(
  repository: ModelRepository,
  name: string,
  version: string,
  config: Config,
): Promise<Check> {
  try {
    const options = { executionProvider: config.executionProvider, threads: 1 };
    const runner = await ModelRunner.load(await repository.load(name, version), options);
    let variant: VariantCheck | undefined;
    try {
      variant = await checkVariant(repository, runner, options);
    } finally {
      await runner.release();
    }
    return { ok: true, metadata: runner.metadata, variant };
  } catch (error) {
    return { ok: false, reason: refusalReason(error), message: describeError(error) };
  }
}

/** Where the routing settings put each version of the served model ('' if nowhere). */
function routesOf(
  spec: RoutingSpec | undefined,
  versions: string[],
  valid: Set<string>,
): Map<string, string> {
  const routes = new Map<string, string>();
  if (spec === undefined) return routes;
  const primary =
    spec.primary === 'latest' ? [...versions].reverse().find((v) => valid.has(v)) : spec.primary;
  const add = (version: string | undefined, route: string) => {
    if (version !== undefined) routes.set(version, [routes.get(version), route].filter(Boolean).join('+'));
  };
  add(primary, 'primary');
  if (spec.canary !== undefined && spec.canary.share > 0)
    add(spec.canary.version, `canary ${spec.canary.share}`);
  for (const shadow of spec.shadows) add(shadow, 'shadow');
  return routes;
}

/** `models list`: every model and version on disk, checked, with where the settings route it. */
export async function listModels(config: Config): Promise<number> {
  const repository = ModelRepository.of(config);
  let failures = 0;
  const rows: string[][] = [['MODEL/VERSION', 'STATUS', 'ROUTE', 'DETAIL']];
  for (const name of await repository.listModels()) {
    const versions = await repository.listVersions(name);
    const checks = new Map<string, Check>();
    for (const version of versions) checks.set(version, await check(repository, name, version, config));
    const valid = new Set(versions.filter((v) => checks.get(v)!.ok));
    const spec = name === config.model ? await readRouting(config) : undefined;
    const routes = routesOf(spec, versions, valid);
    for (const version of versions) {
      const result = checks.get(version)!;
      if (!result.ok) failures += 1;
      const detail = result.ok
        ? `${result.metadata.inputs[0]!.features.length} features -> ${result.metadata.outputs.map((o) => o.name).join(', ')}${variantDetail(result)}`
        : result.message;
      const status = result.ok ? 'ok' : `refused (${result.reason})`;
      rows.push([`${name}/${version}`, status, routes.get(version) ?? '-', detail]);
    }
  }
  process.stdout.write(table(rows));
  return failures === 0 ? 0 : 1;
}

/** `models validate <path>`: checks a version folder (models/<name>/<version>) before it ships. */
export async function validateModel(config: Config, path: string | undefined): Promise<number> {
  if (path === undefined)
    throw new StreamscoreError('USAGE', 'models validate needs a path: models/<name>/<version>');
  const folder = resolve(path);
  const version = basename(folder);
  const name = basename(dirname(folder));
  const result = await check(ModelRepository.of(config, dirname(dirname(folder))), name, version, config);
  if (result.ok) {
    process.stdout.write(
      `${name}/${version}: ok (sha256 ${result.metadata.sha256})${variantDetail(result)}\n`,
    );
    return 0;
  }
  process.stdout.write(`${name}/${version}: refused (${result.reason}): ${result.message}\n`);
  return 1;
}

/** `models describe <name>`: metadata of every version, why any was refused, and the routing. */
export async function describeModel(config: Config, name: string | undefined): Promise<number> {
  if (name === undefined) throw new StreamscoreError('USAGE', 'models describe needs a model name');
  const repository = ModelRepository.of(config);
  const versions = await repository.listVersions(name);
  if (versions.length === 0) {
    throw new StreamscoreError(
      'MODEL_INVALID',
      `Model "${name}" has no versions under ${repository.root}/${name}`,
    );
  }
  const checks = new Map<string, Check>();
  for (const version of versions) checks.set(version, await check(repository, name, version, config));
  const valid = new Set(versions.filter((v) => checks.get(v)!.ok));
  const spec = name === config.model ? await readRouting(config) : undefined;
  const routes = routesOf(spec, versions, valid);
  const lines: string[] = [`model ${name} (${repository.root}/${name})`];
  if (spec !== undefined) {
    lines.push(
      `routing (${config.routingSource === 'topic' ? `settings; serve follows ${config.routingTopic}, see route show` : config.routingFile === '' || config.routingSource === 'settings' ? 'settings' : config.routingFile}): primary ${spec.primary}` +
        `${spec.canary ? `, canary ${spec.canary.version} at ${spec.canary.share}` : ''}` +
        `${spec.shadows.length > 0 ? `, shadows ${spec.shadows.join(', ')}` : ''}`,
    );
  } else {
    lines.push(`routing: not the served model (STREAMSCORE_MODEL=${config.model})`);
  }
  for (const version of versions) {
    const result = checks.get(version)!;
    lines.push(
      '',
      `version ${version}: ${result.ok ? 'ok' : `REFUSED (${result.reason})`}${routes.has(version) ? ` [${routes.get(version)}]` : ''}`,
    );
    if (!result.ok) {
      lines.push(`  why: ${result.message}`);
      continue;
    }
    const m = result.metadata;
    lines.push(
      `  ${m.description ?? ''}`,
      `  created ${m.createdAt ?? '?'}, sha256 ${m.sha256}`,
      `  input ${m.inputs[0]!.tensor}: ${m.inputs[0]!.features.join(', ')}`,
      `  outputs: ${m.outputs.map((o) => `${o.name} (${o.tensor}${o.column === null ? '' : `[:, ${o.column}]`})`).join(', ')}`,
    );
    if (m.threshold !== undefined) lines.push(`  decision threshold: ${m.threshold}`);
    if (m.variant !== undefined) lines.push(`  ${variantDetail(result).slice(2)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) =>
    Math.max(...rows.map((row) => (c === row.length - 1 ? 0 : row[c]!.length))),
  );
  return (
    rows
      .map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '))
      .join('\n') + '\n'
  );
}
