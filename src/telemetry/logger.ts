import { pino, type Logger } from 'pino';

export type { Logger };

const SECRET_KEYS = [
  'password',
  'passphrase',
  'authorization',
  'kafkaSaslPassword',
  'kafkaSslKeyPassword',
  'schemaRegistryPassword',
  'schemaRegistryBearerToken',
];
const SECRET_PATHS = SECRET_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);

/**
 * JSON lines; one line per event worth knowing, never one per record. Commands whose stdout is
 * data (tail) log to stderr, so their output can be piped into jq and the like.
 */
export function createLogger(level: string, destination: 'stdout' | 'stderr' = 'stdout'): Logger {
  return pino(
    {
      name: 'streamscore',
      level,
      base: { pid: process.pid },
      // Secrets are never logged on purpose; these paths are the net under a mistake.
      redact: { paths: SECRET_PATHS, censor: '<secret>' },
    },
    pino.destination(destination === 'stdout' ? 1 : 2),
  );
}
