import { spawnSync, type StdioOptions } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LocalStack {
  /** True when this call started it (and stop() will stop it). */
  startedHere: boolean;
  brokers: string;
  registryUrl: string;
  /** Stops the stack if this call started it, unless STREAMSCORE_KEEP_STACK=1. */
  stop(): void;
}

/**
 * The local JVM stack (scripts/stack.sh), for the test runner and the benchmarks: reuses a running
 * one, or starts it, and reads the client settings from `stack.sh status`.
 */
export function ensureLocalStack(options: {
  say: (message: string) => void;
  output: StdioOptions;
}): LocalStack {
  const running = spawnSync('bash', ['scripts/stack.sh', 'status'], { encoding: 'utf8' }).status === 0;
  if (!running) {
    options.say(
      'starting the local JVM stack (scripts/stack.sh up); the first run downloads Kafka and Apicurio',
    );
    const up = spawnSync('bash', ['scripts/stack.sh', 'up'], { stdio: options.output });
    if (up.status !== 0) throw new Error(`scripts/stack.sh up failed with exit code ${up.status}`);
  }
  const status = spawnSync('bash', ['scripts/stack.sh', 'status'], { encoding: 'utf8' });
  const env: Record<string, string> = {};
  for (const match of status.stdout.matchAll(/^(KAFKA_BROKERS|SCHEMA_REGISTRY_URL)=(.*)$/gm))
    env[match[1]!] = match[2]!;
  if (status.status !== 0 || !env.KAFKA_BROKERS || !env.SCHEMA_REGISTRY_URL) {
    throw new Error(`the local stack is not up:\n${status.stdout}${status.stderr}`);
  }
  return {
    startedHere: !running,
    brokers: env.KAFKA_BROKERS,
    registryUrl: env.SCHEMA_REGISTRY_URL,
    stop: () => {
      if (!running && process.env.STREAMSCORE_KEEP_STACK !== '1') {
        spawnSync('bash', ['scripts/stack.sh', 'down'], { stdio: options.output });
      }
    },
  };
}

export interface SecuredStack {
  /** True when this call started it (and stop() will stop it). */
  startedHere: boolean;
  /** A file of the client settings (KEY=VALUE lines): secrets appear only as file names. */
  envFile: string;
  stop(): void;
}

/**
 * The secured variant of the local stack (STREAMSCORE_STACK_SECURE=1 scripts/stack.sh), on its own
 * ports: reuses a running one or starts it.
 */
export function ensureSecuredStack(options: {
  say: (message: string) => void;
  output: StdioOptions;
}): SecuredStack {
  const env = { ...process.env, STREAMSCORE_STACK_SECURE: '1' };
  const running = spawnSync('bash', ['scripts/stack.sh', 'status'], { encoding: 'utf8', env }).status === 0;
  if (!running)
    options.say('starting the secured local stack (STREAMSCORE_STACK_SECURE=1 scripts/stack.sh up)');
  const up = spawnSync('bash', ['scripts/stack.sh', 'up'], {
    encoding: 'utf8',
    env,
    stdio: ['ignore', 'pipe', options.output === 'inherit' ? 'inherit' : 'pipe'],
  });
  if (up.status !== 0 || !/^KAFKA_SSL=true$/m.test(up.stdout)) {
    throw new Error(`the secured stack did not start (exit ${up.status}):\n${up.stdout}${up.stderr ?? ''}`);
  }
  const envFile = join(mkdtempSync(join(tmpdir(), 'streamscore-secured-')), 'stack.env');
  writeFileSync(envFile, up.stdout);
  return {
    startedHere: !running,
    envFile,
    stop: () => {
      if (!running && process.env.STREAMSCORE_KEEP_STACK !== '1') {
        spawnSync('bash', ['scripts/stack.sh', 'down'], { stdio: options.output, env });
      }
    },
  };
}
