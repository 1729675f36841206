/**
 * Where the bench's broker and registry come from: KAFKA_BROKERS and SCHEMA_REGISTRY_URL when both
 * are set, else the local JVM stack (scripts/stack.sh), started here if it is not running and
 * stopped afterwards only if this run started it.
 */
import { ensureLocalStack } from '../scripts/local-stack.js';
import { readFileSync } from 'node:fs';
import type { Endpoints } from './kafka.js';

export interface Infrastructure extends Endpoints {
  kind: string;
  /** Broker and registry versions where the bench can know them (the stack's pins). */
  kafkaVersion: string;
  registryVersion: string;
  /**
   * The Kafka release the Java reference tools are fetched at: the local stack's, or for an external
   * broker BENCH_KAFKA_RELEASE (e.g. 4.4.0), else the stack's pin.
   */
  kafkaRelease: string;
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
      kafkaRelease: process.env.BENCH_KAFKA_RELEASE ?? stackPins().kafka,
      stop: () => undefined,
    };
  }
  const stack = ensureLocalStack({ say, output: ['ignore', 'ignore', 'inherit'] });
  const pins = stackPins();
  const release = process.env.STREAMSCORE_KAFKA_VERSION ?? pins.kafka;
  return {
    kind: stack.startedHere ? 'local JVM stack (started by this run)' : 'local JVM stack (already running)',
    brokers: stack.brokers,
    registryUrl: stack.registryUrl,
    kafkaVersion: `Apache Kafka ${release} (KRaft, one broker)`,
    kafkaRelease: release,
    registryVersion: `Apicurio Registry ${process.env.STREAMSCORE_APICURIO_VERSION ?? pins.registry}`,
    stop: () => stack.stop(),
  };
}

/** The versions scripts/stack.sh pins (its `VAR="${OVERRIDE:-x.y.z}"` defaults). */
function stackPins(): { kafka: string; registry: string } {
  const script = readFileSync('scripts/stack.sh', 'utf8');
  const pin = (name: string) =>
    new RegExp(`^${name}="\\$\\{[A-Z_]+:-([^}]+)\\}"`, 'm').exec(script)?.[1] ?? 'unknown';
  return { kafka: pin('KAFKA_VERSION'), registry: pin('APICURIO_VERSION') };
}
