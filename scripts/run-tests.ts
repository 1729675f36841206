/**
 * `npm test`: the unit tests and the integration tests against a real Kafka broker and schema
 * registry, in one node:test run. The infrastructure is chosen in this order, and said at the start:
 *   1. KAFKA_BROKERS and SCHEMA_REGISTRY_URL, when both are set (an existing cluster);
 *   2. containers (Kafka in KRaft mode and Apicurio Registry), when a container runtime answers;
 *   3. the local JVM stack (scripts/stack.sh), started here if it is not running.
 * The secured variant of the JVM stack (SASL_SSL, https registry with basic auth; its own ports) is
 * always started too, or reused, for integration/secured.test.ts: SECURED_STACK_ENV names its
 * client settings.
 * What this run started, it stops (set STREAMSCORE_KEEP_STACK=1 to keep the JVM stacks up).
 * `--unit` runs the unit tests only, with no infrastructure.
 *
 * The integration tests run once per supported Kafka client (STREAMSCORE_KAFKA_CLIENT, which every
 * process they start takes): the unit tests and the first client's run go together, then the
 * integration tests again for each other client. STREAMSCORE_TEST_CLIENTS=a,b picks clients.
 * STREAMSCORE_TEST_DELIVERY=a,b picks the delivery modes integration/delivery.test.ts checks
 * (at-least-once, exactly-once; both by default, exactly-once with the platformatic client only).
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensureLocalStack, ensureSecuredStack } from './local-stack.js';

const KAFKA_IMAGE = 'apache/kafka:4.4.0';
const REGISTRY_IMAGE = 'apicurio/apicurio-registry:3.0.9';
const KAFKA_CLIENTS = ['kafkajs', 'platformatic'];

function clientsToTest(): string[] {
  const chosen = process.env.STREAMSCORE_TEST_CLIENTS;
  if (chosen === undefined || chosen === '') return KAFKA_CLIENTS;
  const clients = chosen.split(',').map((client) => client.trim());
  const unknown = clients.filter((client) => !KAFKA_CLIENTS.includes(client));
  if (unknown.length > 0 || clients.length === 0) {
    throw new Error(
      `STREAMSCORE_TEST_CLIENTS: unknown client ${unknown.join(', ')} (${KAFKA_CLIENTS.join(', ')})`,
    );
  }
  return clients;
}

interface Infrastructure {
  kind: string;
  brokers: string;
  registryUrl: string;
  stop(): Promise<void>;
}

function say(message: string): void {
  process.stdout.write(`[streamscore tests] ${message}\n`);
}

function testFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .flatMap((entry) => {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) return testFiles(path);
      return entry.endsWith('.test.js') ? [path] : [];
    })
    .sort();
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asks the container runtime itself; a docker CLI with no engine behind it does not count. */
async function containers(): Promise<Infrastructure | undefined> {
  let tc: typeof import('testcontainers');
  try {
    tc = await import('testcontainers');
    await withTimeout(tc.getContainerRuntimeClient(), 20_000, 'container runtime');
  } catch (error) {
    say(`no container runtime (${(error as Error).message.split('\n')[0]}); using the local JVM stack`);
    return undefined;
  }
  const hostPort = await freePort();
  // Kafka advertises the address clients must use, so the host port is fixed before start.
  const kafka = await new tc.GenericContainer(KAFKA_IMAGE)
    .withExposedPorts({ container: 9092, host: hostPort })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
      KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${hostPort}`,
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .withWaitStrategy(tc.Wait.forLogMessage(/Kafka Server started/))
    .start();
  const registry = await new tc.GenericContainer(REGISTRY_IMAGE)
    .withExposedPorts(8080)
    .withWaitStrategy(tc.Wait.forHttp('/apis/ccompat/v7/subjects', 8080))
    .start();
  return {
    kind: `containers (${KAFKA_IMAGE}, ${REGISTRY_IMAGE})`,
    brokers: `127.0.0.1:${hostPort}`,
    registryUrl: `http://${registry.getHost()}:${registry.getMappedPort(8080)}/apis/ccompat/v7`,
    stop: async () => {
      await registry.stop();
      await kafka.stop();
    },
  };
}

function jvmStack(): Infrastructure {
  const stack = ensureLocalStack({ say, output: 'inherit' });
  return {
    kind: stack.startedHere ? 'local JVM stack (started by this run)' : 'local JVM stack (already running)',
    brokers: stack.brokers,
    registryUrl: stack.registryUrl,
    stop: () => {
      stack.stop();
      return Promise.resolve();
    },
  };
}

async function chooseInfrastructure(): Promise<Infrastructure> {
  const { KAFKA_BROKERS, SCHEMA_REGISTRY_URL } = process.env;
  if (KAFKA_BROKERS && SCHEMA_REGISTRY_URL) {
    return {
      kind: 'external (KAFKA_BROKERS, SCHEMA_REGISTRY_URL)',
      brokers: KAFKA_BROKERS,
      registryUrl: SCHEMA_REGISTRY_URL,
      stop: () => Promise.resolve(),
    };
  }
  return (await containers()) ?? jvmStack();
}

function runNodeTest(files: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit', env });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function main(): Promise<number> {
  const unitOnly = process.argv.includes('--unit');
  const unit = testFiles('dist/test');
  const integration = unitOnly ? [] : testFiles('dist/integration');
  if (unit.length === 0) throw new Error('no unit tests found under dist/test: run `npm run build` first');
  if (unitOnly) return runNodeTest(unit, process.env);
  if (integration.length === 0) throw new Error('no integration tests found under dist/integration');
  const clients = clientsToTest();

  const infrastructure = await chooseInfrastructure();
  say(`infrastructure: ${infrastructure.kind}`);
  say(`KAFKA_BROKERS=${infrastructure.brokers} SCHEMA_REGISTRY_URL=${infrastructure.registryUrl}`);
  let secured: ReturnType<typeof ensureSecuredStack> | undefined;
  try {
    secured = ensureSecuredStack({ say, output: 'inherit' });
    say(
      `secured stack: ${secured.startedHere ? 'started by this run' : 'already running'} (${secured.envFile})`,
    );
    // The runner's own settings are not streamscore's: the CLI refuses unknown STREAMSCORE_ names.
    const { STREAMSCORE_TEST_CLIENTS: _clients, STREAMSCORE_KEEP_STACK: _keep, ...inherited } = process.env;
    const env = {
      ...inherited,
      KAFKA_BROKERS: infrastructure.brokers,
      SCHEMA_REGISTRY_URL: infrastructure.registryUrl,
      SECURED_STACK_ENV: secured.envFile,
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
    };
    const failed: string[] = [];
    for (const [index, client] of clients.entries()) {
      say(`integration tests with STREAMSCORE_KAFKA_CLIENT=${client}`);
      const files = index === 0 ? [...unit, ...integration] : integration;
      const code = await runNodeTest(files, { ...env, STREAMSCORE_KAFKA_CLIENT: client });
      if (code !== 0) failed.push(client);
    }
    if (failed.length > 0) say(`failed with: ${failed.join(', ')}`);
    return failed.length === 0 ? 0 : 1;
  } finally {
    secured?.stop();
    await infrastructure.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`[streamscore tests] ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
