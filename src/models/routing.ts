import { readFile } from 'node:fs/promises';
import type { Config } from '../config/options.js';
import { StreamscoreError } from '../errors.js';

/** Which versions of one model take traffic, and how. Versions are policies until resolved. */
export interface RoutingSpec {
  /** 'latest' (highest valid version on disk) or a version name. */
  primary: string;
  canary?: { version: string; share: number } | undefined;
  shadows: string[];
  /** Scores a batch the primary or canary fails on, so it is published rather than dead-lettered. */
  fallback?: string | undefined;
}

/**
 * Routing from settings: the routing file when one is set and STREAMSCORE_ROUTING_SOURCE is not
 * settings (its entry for the served model),
 * otherwise STREAMSCORE_MODEL_VERSION / _CANARY_VERSION / _CANARY_SHARE / _SHADOW_VERSIONS.
 */
export async function readRouting(
  config: Pick<
    Config,
    | 'model'
    | 'modelVersion'
    | 'canaryVersion'
    | 'canaryShare'
    | 'shadowVersions'
    | 'fallbackVersion'
    | 'routingFile'
  > &
    Partial<Pick<Config, 'routingSource'>>,
): Promise<RoutingSpec> {
  if (config.routingFile !== '' && config.routingSource !== 'settings') {
    let text: string;
    try {
      text = await readFile(config.routingFile, 'utf8');
    } catch (error) {
      throw new StreamscoreError('CONFIG_INVALID', `Cannot read routing file ${config.routingFile}`, {
        cause: error,
        context: { path: config.routingFile },
      });
    }
    return parseRoutingFile(text, config.model, config.routingFile);
  }
  return checkSpec(
    {
      primary: config.modelVersion,
      canary:
        config.canaryVersion === ''
          ? undefined
          : { version: config.canaryVersion, share: config.canaryShare },
      shadows: [...config.shadowVersions],
      ...(config.fallbackVersion === '' ? {} : { fallback: config.fallbackVersion }),
    },
    'settings',
  );
}

/**
 * The routing file maps model names to their routing:
 * `{ "fraud": { "primary": "latest", "canary": { "version": "3", "share": 0.1 }, "shadows": ["4"] } }`
 */
export function parseRoutingFile(text: string, model: string, where: string): RoutingSpec {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new StreamscoreError('CONFIG_INVALID', `${where}: not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(parsed))
    throw new StreamscoreError('CONFIG_INVALID', `${where}: expected an object keyed by model name`);
  const entry = parsed[model];
  if (entry === undefined) {
    throw new StreamscoreError(
      'CONFIG_INVALID',
      `${where}: no entry for model "${model}" (it has: ${Object.keys(parsed).join(', ') || 'nothing'})`,
    );
  }
  if (!isObject(entry))
    throw new StreamscoreError('CONFIG_INVALID', `${where}: "${model}" must be an object`);
  const problems: string[] = [];
  for (const key of Object.keys(entry)) {
    if (!['primary', 'canary', 'shadows', 'fallback'].includes(key))
      problems.push(`unknown key "${key}" (allowed: primary, canary, shadows, fallback)`);
  }
  const { primary, canary, shadows, fallback } = entry;
  if (fallback !== undefined && fallback !== null && typeof fallback !== 'string')
    problems.push('"fallback" must be a version string');
  if (typeof primary !== 'string') problems.push('"primary" must be a string: "latest" or a version');
  let canarySpec: RoutingSpec['canary'];
  if (canary !== undefined && canary !== null) {
    if (!isObject(canary) || typeof canary.version !== 'string' || typeof canary.share !== 'number') {
      problems.push('"canary" must be { "version": string, "share": number from 0 to 1 }');
    } else {
      canarySpec = { version: canary.version, share: canary.share };
    }
  }
  if (shadows !== undefined && !(Array.isArray(shadows) && shadows.every((s) => typeof s === 'string'))) {
    problems.push('"shadows" must be a list of version strings');
  }
  if (problems.length > 0) {
    throw new StreamscoreError('CONFIG_INVALID', `${where}: model "${model}": ${problems.join('; ')}`);
  }
  return checkSpec(
    {
      primary: primary as string,
      canary: canarySpec,
      shadows: (shadows as string[] | undefined) ?? [],
      ...(typeof fallback === 'string' && fallback !== '' ? { fallback } : {}),
    },
    `${where}: model "${model}"`,
  );
}

/** The rules every routing obeys, wherever it comes from; throws CONFIG_INVALID naming each broken one. */
export function checkSpec(spec: RoutingSpec, where: string): RoutingSpec {
  const problems: string[] = [];
  if (spec.primary === '') problems.push('primary version is empty');
  if (spec.canary !== undefined) {
    const { share, version } = spec.canary;
    if (!(share >= 0 && share <= 1)) problems.push(`canary share ${share} is not between 0 and 1`);
    if (version === 'latest') problems.push('the canary must name a version, not "latest"');
  }
  if (spec.shadows.includes('latest')) problems.push('shadows must name versions, not "latest"');
  if (spec.fallback === 'latest') problems.push('the fallback must name a version, not "latest"');
  if (new Set(spec.shadows).size !== spec.shadows.length) problems.push('a shadow version is listed twice');
  if (problems.length > 0) throw new StreamscoreError('CONFIG_INVALID', `${where}: ${problems.join('; ')}`);
  return spec;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
