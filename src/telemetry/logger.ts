import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines; one line per event worth knowing, never one per record. Commands whose stdout is
 * data (tail) log to stderr, so their output can be piped into jq and the like.
 */
export function createLogger(level: string, destination: 'stdout' | 'stderr' = 'stdout'): Logger {
  return pino(
    { name: 'streamscore', level, base: { pid: process.pid } },
    pino.destination(destination === 'stdout' ? 1 : 2),
  );
}
