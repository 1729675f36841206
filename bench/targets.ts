import { readFileSync } from 'node:fs';
/**
 * The processes a case can measure: `streamscore serve` at some batch settings, or the transport
 * relay. Both read the same environment, so the only difference between them is the work done.
 */
import { join } from 'node:path';
import { OPTIONS, type OptionSpec } from '../src/config/options.js';
import { ChildUnderTest } from './child.js';
import type { CaseTopics, Endpoints } from './kafka.js';
import type { KafkaClientName } from './plan.js';
import type { Workload } from './workload.js';

export interface ServeSettings {
  batchMaxRows: number;
  lingerMs: number;
  threads: number;
}

export interface Profiling {
  dir: string;
  name: string;
}

function commonEnv(endpoints: Endpoints, topics: CaseTopics): Record<string, string> {
  return {
    KAFKA_BROKERS: endpoints.brokers,
    SCHEMA_REGISTRY_URL: endpoints.registryUrl,
    STREAMSCORE_REQUESTS_TOPIC: topics.requests,
    STREAMSCORE_PREDICTIONS_TOPIC: topics.predictions,
    STREAMSCORE_DLQ_TOPIC: topics.dlq,
    STREAMSCORE_GROUP_ID: topics.group,
    // The bench created the case's topics; serve must not create its defaults on a shared broker.
    STREAMSCORE_CREATE_TOPICS: 'false',
    STREAMSCORE_LOG_LEVEL: 'info',
  };
}

/** serve's setting that picks its Kafka client; without it, serve runs its default client. */
const CLIENT_SETTING = 'STREAMSCORE_KAFKA_CLIENT';

export function kafkaClientEnv(client: KafkaClientName): Record<string, string> {
  return { [CLIENT_SETTING]: client };
}

/**
 * Why serve, as built, cannot be run on this client, or undefined when it can: its settings must
 * have STREAMSCORE_KAFKA_CLIENT and allow the client.
 */
export function serveClientProblem(client: KafkaClientName): string | undefined {
  return serveSettingProblem(CLIENT_SETTING, client);
}

/** serve's setting read from the environment variable `env`, if serve as built has one. */
export function serveSetting(env: string): OptionSpec | undefined {
  const specs: readonly OptionSpec[] = Object.values(OPTIONS);
  return specs.find((candidate) => candidate.env === env);
}

/**
 * Why serve, as built, cannot take `env` set to `value`, or undefined when it can. serve refuses
 * STREAMSCORE_ variables it does not know and values outside a setting's choices, so a setting it
 * lacks would only fail the case after a join timeout; this says so before anything starts.
 */
export function serveSettingProblem(env: string, value: string): string | undefined {
  const spec = serveSetting(env);
  if (spec === undefined) return `serve has no ${env} setting yet (src/config/options.ts)`;
  if (spec.choices !== undefined && !spec.choices.includes(value))
    return `serve's ${env} takes ${spec.choices.join(', ')}, not ${value}`;
  return undefined;
}

export function startServe(
  endpoints: Endpoints,
  topics: CaseTopics,
  workload: Workload,
  settings: ServeSettings,
  profiling?: Profiling,
  extraEnv: Record<string, string> = {},
  script = join('dist', 'src', 'cli.js'),
): ChildUnderTest {
  return new ChildUnderTest({
    script,
    args: ['serve'],
    nodeFlags: [
      ...launcherFlags(script),
      ...(profiling
        ? ['--cpu-prof', '--cpu-prof-dir', profiling.dir, '--cpu-prof-name', profiling.name]
        : []),
    ],
    env: {
      ...commonEnv(endpoints, topics),
      STREAMSCORE_MODEL: workload.model,
      STREAMSCORE_MODEL_VERSION: workload.version,
      STREAMSCORE_BATCH_MAX_ROWS: String(settings.batchMaxRows),
      STREAMSCORE_BATCH_LINGER_MS: String(settings.lingerMs),
      STREAMSCORE_INFERENCE_THREADS: String(settings.threads),
      STREAMSCORE_METRICS_PORT: '0',
      STREAMSCORE_METRICS_HOST: '127.0.0.1',
      ...extraEnv,
    },
  });
}

/**
 * `streamscore backfill` over the whole pre-filled requests topic into the case's predictions
 * topic: the same settings and environment as startServe, a fresh job per case.
 */
export function startBackfill(
  endpoints: Endpoints,
  topics: CaseTopics,
  workload: Workload,
  settings: ServeSettings,
): ChildUnderTest {
  return new ChildUnderTest({
    script: join('dist', 'src', 'cli.js'),
    args: [
      'backfill',
      '--from',
      'beginning',
      '--version',
      workload.version,
      '--output',
      topics.predictions,
      '--dead-letter-topic',
      topics.dlq,
      '--job',
      topics.group,
    ],
    env: {
      ...commonEnv(endpoints, topics),
      STREAMSCORE_MODEL: workload.model,
      STREAMSCORE_BATCH_MAX_ROWS: String(settings.batchMaxRows),
      STREAMSCORE_BATCH_LINGER_MS: String(settings.lingerMs),
      STREAMSCORE_INFERENCE_THREADS: String(settings.threads),
      STREAMSCORE_METRICS_PORT: '0',
      STREAMSCORE_METRICS_HOST: '127.0.0.1',
    },
  });
}

/** The transport relay on one Kafka client (bench/relay/<client>.ts). */
export function startRelay(
  endpoints: Endpoints,
  topics: CaseTopics,
  workload: Workload,
  client: KafkaClientName,
): ChildUnderTest {
  return new ChildUnderTest({
    script: join('dist', 'bench', 'relay', `${client}.js`),
    args: [],
    env: {
      ...commonEnv(endpoints, topics),
      BENCH_RELAY_OUTPUTS: workload.outputNames.join(','),
      BENCH_RELAY_FEATURES: workload.featureNames.join(','),
    },
  });
}

/**
 * The Node flags the script's own launcher line passes (`#!/usr/bin/env -S node FLAGS`), so serve
 * runs here as the installed `streamscore` command (and the container image) run it.
 */
export function launcherFlags(script: string): string[] {
  let first: string;
  try {
    first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  } catch {
    return [];
  }
  const match = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
  return match === null ? [] : match[1]!.trim().split(/\s+/);
}
