/**
 * Where the bench's broker and registry come from: KAFKA_BROKERS and SCHEMA_REGISTRY_URL when both
 * are set, else the local JVM stack (scripts/stack.sh), started here if it is not running and
 * stopped afterwards only if this run started it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Endpoints } from './kafka.js';

export interface Infrastructure extends Endpoints {
  kind: string;
  /** Broker and registry versions where the bench can know them (the stack's pins). */
  kafkaVersion: string;
  registryVersion: string;
  stop(): void;
}

export function chooseInfrastructure(say: (line: string) => void): Infrastructure {
  const { KAFKA_BROKERS, SCHEMA_REGISTRY_URL } = process.env;
  if (KAFKA_BROKERS && SCHEMA_REGISTRY_URL) {
    return {
      kind: 'external (KAFKA_BROKERS, SCHEMA_REGISTRY_URL)',
      brokers: KAFKA_BROKERS,
      registryUrl: SCHEMA_REGISTRY_URL,
      // An external broker does not tell kafkajs its release; BENCH_KAFKA_VERSION lets the caller say.
      kafkaVersion: process.env.BENCH_KAFKA_VERSION ?? 'unknown (external broker)',
      registryVersion: process.env.BENCH_REGISTRY_VERSION ?? 'unknown (external registry)',
      stop: () => undefined,
    };
  }
  const running = spawnSync('bash', ['scripts/stack.sh', 'status'], { encoding: 'utf8' }).status === 0;
  if (!running) {
    say('starting the local JVM stack (scripts/stack.sh up)');
    const up = spawnSync('bash', ['scripts/stack.sh', 'up'], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (up.status !== 0) throw new Error(`scripts/stack.sh up failed with exit code ${up.status}`);
  }
  const status = spawnSync('bash', ['scripts/stack.sh', 'status'], { encoding: 'utf8' });
  const env: Record<string, string> = {};
  for (const match of status.stdout.matchAll(/^(KAFKA_BROKERS|SCHEMA_REGISTRY_URL)=(.*)$/gm))
    env[match[1]!] = match[2]!;
  if (status.status !== 0 || !env.KAFKA_BROKERS || !env.SCHEMA_REGISTRY_URL) {
    throw new Error(`the local stack is not up:\n${status.stdout}${status.stderr}`);
  }
  const pins = stackPins();
  return {
    kind: running ? 'local JVM stack (already running)' : 'local JVM stack (started by this run)',
    brokers: env.KAFKA_BROKERS,
    registryUrl: env.SCHEMA_REGISTRY_URL,
    kafkaVersion: `Apache Kafka ${process.env.STREAMSCORE_KAFKA_VERSION ?? pins.kafka} (KRaft, one broker)`,
    registryVersion: `Apicurio Registry ${process.env.STREAMSCORE_APICURIO_VERSION ?? pins.registry}`,
    stop: () => {
      if (!running && process.env.STREAMSCORE_KEEP_STACK !== '1') {
        spawnSync('bash', ['scripts/stack.sh', 'down'], { stdio: ['ignore', 'ignore', 'inherit'] });
      }
    },
  };
}

/** The versions scripts/stack.sh pins (its `VAR="${OVERRIDE:-x.y.z}"` defaults). */
function stackPins(): { kafka: string; registry: string } {
  const script = readFileSync('scripts/stack.sh', 'utf8');
  const pin = (name: string) =>
    new RegExp(`^${name}="\\$\\{[A-Z_]+:-([^}]+)\\}"`, 'm').exec(script)?.[1] ?? 'unknown';
  return { kafka: pin('KAFKA_VERSION'), registry: pin('APICURIO_VERSION') };
}
