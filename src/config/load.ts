import { readFileSync } from 'node:fs';
import { StreamscoreError } from '../errors.js';
import { OPTIONS, flagName, type Config, type OptionName, type OptionSpec } from './options.js';

export interface ConfigSources {
  /** Path of a JSON file with camelCase keys. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from the command line, keyed by option name (camelCase). */
  flags?: Partial<Record<OptionName, string>>;
}

const ENV_PREFIX = 'STREAMSCORE_';
const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];

/**
 * Reads every source, checks every value, and reports every problem at once in one error, so a
 * user fixes a config in one pass. The result is frozen.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  const raw = new Map<OptionName, { value: unknown; from: string }>();

  if (sources.file !== undefined) {
    for (const [key, value] of Object.entries(readConfigFile(sources.file, problems))) {
      if (isOptionName(key)) raw.set(key, { value, from: `${sources.file}: "${key}"` });
      else problems.push(`${sources.file}: unknown key "${key}"${suggest(key)}`);
    }
  }

  const knownEnv = new Set<string>(OPTION_NAMES.map((name) => OPTIONS[name].env));
  for (const [variable, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (variable.startsWith(ENV_PREFIX) && !knownEnv.has(variable)) {
      problems.push(`environment: unknown variable ${variable}`);
    }
  }
  for (const name of OPTION_NAMES) {
    const value = env[OPTIONS[name].env];
    if (value !== undefined && value !== '') raw.set(name, { value, from: OPTIONS[name].env });
  }
  for (const [name, value] of Object.entries(sources.flags ?? {})) {
    if (isOptionName(name) && value !== undefined) raw.set(name, { value, from: `--${flagName(name)}` });
  }

  const config: Record<string, unknown> = {};
  for (const name of OPTION_NAMES) {
    const spec: OptionSpec = OPTIONS[name];
    const given = raw.get(name);
    if (given === undefined) {
      config[name] = spec.default;
      continue;
    }
    const parsed = parseValue(spec, given.value);
    if (typeof parsed === 'object' && parsed !== null && 'problem' in parsed) {
      const shown = spec.secret ? '<secret>' : JSON.stringify(given.value);
      problems.push(`${given.from}: ${shown} is not valid: ${parsed.problem}`);
    } else {
      config[name] = parsed;
    }
  }

  if (config.kafkaSaslMechanism !== 'none' && config.kafkaSaslUsername === '') {
    problems.push(
      `KAFKA_SASL_USERNAME: required when KAFKA_SASL_MECHANISM is ${String(config.kafkaSaslMechanism)}`,
    );
  }
  if (problems.length > 0) {
    throw new StreamscoreError(
      'CONFIG_INVALID',
      `Invalid configuration (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n  - ${problems.join('\n  - ')}`,
      { context: { problems } },
    );
  }
  return Object.freeze(config) as Config;
}

function isOptionName(key: string): key is OptionName {
  return Object.hasOwn(OPTIONS, key);
}

function suggest(key: string): string {
  const lower = key.toLowerCase();
  const close = OPTION_NAMES.find((name) => name.toLowerCase() === lower);
  return close === undefined ? '' : ` (did you mean "${close}"?)`;
}

function readConfigFile(path: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    problems.push(`--config: cannot read ${path}: ${(error as Error).message}`);
    return {};
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      problems.push(`${path}: expected a JSON object of settings`);
      return {};
    }
    return parsed as Record<string, unknown>;
  } catch (error) {
    problems.push(`${path}: not valid JSON: ${(error as Error).message}`);
    return {};
  }
}

type Parsed = string | number | boolean | readonly string[] | { problem: string };

function parseValue(spec: OptionSpec, value: unknown): Parsed {
  switch (spec.kind) {
    case 'string': {
      if (typeof value !== 'string') return { problem: 'expected a string' };
      if (spec.choices && !spec.choices.includes(value)) {
        return { problem: `allowed values are ${spec.choices.join(', ')}` };
      }
      return value;
    }
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1') return true;
      if (value === 'false' || value === '0') return false;
      return { problem: 'expected true or false' };
    }
    case 'integer':
    case 'number': {
      const number =
        typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : NaN;
      if (typeof value === 'string' && value.trim() === '') return { problem: 'expected a number' };
      if (!Number.isFinite(number)) return { problem: 'expected a number' };
      if (spec.kind === 'integer' && !Number.isInteger(number)) return { problem: 'expected a whole number' };
      if (spec.min !== undefined && number < spec.min) return { problem: `must be at least ${spec.min}` };
      if (spec.max !== undefined && number > spec.max) return { problem: `must be at most ${spec.max}` };
      return number;
    }
    case 'list': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
      if (items === undefined || !items.every((item) => typeof item === 'string')) {
        return { problem: 'expected a comma-separated list' };
      }
      const trimmed = items.map((item) => item.trim()).filter((item) => item !== '');
      if (trimmed.length < (spec.min ?? 0)) return { problem: `expected at least ${spec.min} entries` };
      return Object.freeze(trimmed);
    }
  }
}
