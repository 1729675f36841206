import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout; one line per event worth knowing, never one per record. */
export function createLogger(level: string, name = 'streamscore'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
