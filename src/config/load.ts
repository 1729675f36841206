import { accessSync, constants, readFileSync } from 'node:fs';
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

  readSecretFiles(config, raw, problems);
  checkSecurity(config, problems);
  if (config.delivery === 'exactly-once' && config.kafkaClient !== 'platformatic')
    problems.push(
      'STREAMSCORE_DELIVERY: exactly-once needs STREAMSCORE_KAFKA_CLIENT=platformatic (kafkajs has no group-fenced transactional offset commits)',
    );
  if (config.routingSource === 'file' && config.routingFile === '')
    problems.push('STREAMSCORE_ROUTING_SOURCE: file needs STREAMSCORE_ROUTING_FILE');
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

/**
 * Paths named by `file` settings must be readable now, and each `secretFile` setting's contents
 * become its secret's value. A secret given both ways is a problem: which one wins would be a guess.
 */
function readSecretFiles(
  config: Record<string, unknown>,
  raw: Map<OptionName, { value: unknown; from: string }>,
  problems: string[],
): void {
  for (const name of OPTION_NAMES) {
    const spec: OptionSpec = OPTIONS[name];
    const path = config[name];
    if (typeof path !== 'string' || path === '') continue;
    if (spec.file === true) {
      try {
        accessSync(path, constants.R_OK);
      } catch (error) {
        problems.push(`${raw.get(name)?.from ?? spec.env}: cannot read ${path}: ${reason(error)}`);
      }
    }
    if (spec.secretFile === undefined) continue;
    const target = spec.secretFile as OptionName;
    const direct = raw.get(target);
    if (direct !== undefined) {
      problems.push(
        `${raw.get(name)?.from ?? spec.env} and ${direct.from}: give the secret one way, not both`,
      );
      continue;
    }
    try {
      config[target] = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      problems.push(`${raw.get(name)?.from ?? spec.env}: cannot read ${path}: ${reason(error)}`);
    }
  }
}

function reason(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : (error as Error).message;
}

function checkSecurity(config: Record<string, unknown>, problems: string[]): void {
  const mechanism = String(config.kafkaSaslMechanism);
  if (mechanism !== 'none' && config.kafkaSaslUsername === '') {
    problems.push(`KAFKA_SASL_USERNAME: required when KAFKA_SASL_MECHANISM is ${mechanism}`);
  }
  if (mechanism === 'plain' && config.kafkaSsl !== true && config.kafkaSaslPlainWithoutTls !== true) {
    problems.push(
      'KAFKA_SASL_MECHANISM: plain without KAFKA_SSL sends the password in clear text; turn on KAFKA_SSL, or set KAFKA_SASL_PLAIN_WITHOUT_TLS=true to accept that',
    );
  }
  for (const name of [
    'kafkaSslCaFile',
    'kafkaSslCertFile',
    'kafkaSslKeyFile',
    'kafkaSslServername',
  ] as const) {
    if (config[name] !== '' && config.kafkaSsl !== true) {
      problems.push(`${OPTIONS[name].env}: has no effect without KAFKA_SSL=true`);
    }
  }
  const pairs = [
    ['kafkaSslCertFile', 'kafkaSslKeyFile', 'a client certificate needs both'],
    ['schemaRegistrySslCertFile', 'schemaRegistrySslKeyFile', 'a client certificate needs both'],
    ['metricsTlsCertFile', 'metricsTlsKeyFile', 'serving TLS needs both'],
    ['metricsUsername', 'metricsPassword', 'basic auth needs both'],
  ] as const;
  for (const [first, second, why] of pairs) {
    if ((config[first] === '') !== (config[second] === '')) {
      problems.push(`${OPTIONS[first].env} and ${OPTIONS[second].env}: ${why}`);
    }
  }
  if (config.schemaRegistryBearerToken !== '' && config.schemaRegistryUsername !== '') {
    problems.push(
      'SCHEMA_REGISTRY_BEARER_TOKEN and SCHEMA_REGISTRY_USERNAME: the registry takes one kind of credentials, not both',
    );
  }
}

/** The secret settings given on this command line: their values are visible to other users (ps). */
export function secretFlags(flags: Partial<Record<OptionName, string>>): OptionName[] {
  return (Object.keys(flags) as OptionName[]).filter((name) => (OPTIONS[name] as OptionSpec).secret === true);
}
