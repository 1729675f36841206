/** The machine and software a run measured, recorded beside its numbers so runs can be compared. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import os from 'node:os';

export interface MachineInfo {
  cpu_model: string;
  cores: number;
  memory_gb: number;
  /** 1-minute load average when the run started: other work on the machine skews every number. */
  load_average_at_start: number;
  platform: string;
  versions: Record<string, string>;
  /** The commit measured, and whether src/ had uncommitted changes (null outside a git checkout). */
  source: { commit: string; src_modified: boolean } | null;
}

const PACKAGES = [
  'onnxruntime-node',
  'kafkajs',
  '@platformatic/kafka',
  '@kafkajs/confluent-schema-registry',
  'avsc',
];

export function describeMachine(broker: string, registry: string): MachineInfo {
  const cpus = os.cpus();
  const versions: Record<string, string> = { node: process.version };
  for (const name of PACKAGES) versions[name] = packageVersion(name);
  versions.kafka_broker = broker;
  versions.schema_registry = registry;
  return {
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memory_gb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    load_average_at_start: Math.round(os.loadavg()[0]! * 100) / 100,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    versions,
    source: gitSource(),
  };
}

function gitSource(): MachineInfo['source'] {
  const commit = spawnSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' });
  if (commit.status !== 0) return null;
  const status = spawnSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' });
  return { commit: commit.stdout.trim(), src_modified: status.stdout.trim() !== '' };
}

/** The installed version, read from the package's own package.json (found next to its entry point). */
function packageVersion(name: string): string {
  const require = createRequire(import.meta.url);
  try {
    let dir = dirname(require.resolve(name));
    for (let i = 0; i < 6; i += 1) {
      try {
        const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
          name?: string;
          version?: string;
        };
        if (manifest.name === name && manifest.version) return manifest.version;
      } catch {
        // No package.json at this level: keep walking up.
      }
      dir = dirname(dir);
    }
  } catch {
    // Not resolvable from here.
  }
  return 'unknown';
}
