/**
 * kafkajs's log lines, re-levelled for an operator. kafkajs logs at error level much that it then
 * handles itself: a response with a retriable protocol error, a group rebalancing, a connection
 * attempt during a broker restart. streamscore says once, in its own words, when such trouble
 * stalls serving (PipelineHealth) or stops it; so an alert on error lines means something.
 *
 *   error  what kafkajs gives up on (a crash it does not restart from, a request it will not retry)
 *   warn   a consumer crash it restarts from; any other kafkajs warning or error
 *   info   routine group events (rebalance, rejoin)
 *   debug  retried protocol errors and connection attempts; kafkajs's info chatter
 */
import { createRequire } from 'node:module';
import { logLevel, type LogEntry } from 'kafkajs';
import type { Logger } from '../telemetry/logger.js';

interface ProtocolError {
  type: string;
  retriable: boolean;
  message: string;
}

/** Group membership answers that only mean "join again", which kafkajs does. */
const ROUTINE_GROUP_TYPES = new Set([
  'REBALANCE_IN_PROGRESS',
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'NOT_COORDINATOR_FOR_GROUP',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'GROUP_LOAD_IN_PROGRESS',
  'MEMBER_ID_REQUIRED',
]);

/**
 * kafkajs logs a protocol error by its message only; its own table gives each message's type and
 * whether kafkajs retries it. Messages of retried or routine errors map to true.
 */
const HANDLED_MESSAGES: ReadonlyMap<string, boolean> = (() => {
  try {
    const table = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as {
      errorCodes?: ProtocolError[];
    };
    return new Map(
      (table.errorCodes ?? []).map((error) => [
        error.message,
        error.retriable || ROUTINE_GROUP_TYPES.has(error.type),
      ]),
    );
  } catch {
    return new Map();
  }
})();

/** Line prefixes kafkajs uses for what it retries by itself. */
const RETRIED = ['Connection error', 'Connection timeout', 'Failed to connect', 'Failed to send messages'];
const ROUTINE = ['The group is rebalancing', 'The coordinator is not aware of this member'];

export type Level = 'error' | 'warn' | 'info' | 'debug';

export function levelOf(level: logLevel, message: string, entry: Record<string, unknown>): Level {
  if (level > logLevel.WARN) return 'debug';
  if (ROUTINE.some((prefix) => message.startsWith(prefix))) return 'info';
  if (RETRIED.some((prefix) => message.startsWith(prefix))) return 'debug';
  if (
    message.startsWith('Response ') &&
    typeof entry.error === 'string' &&
    HANDLED_MESSAGES.get(entry.error) === true
  ) {
    return 'debug';
  }
  if (message.startsWith('Restarting the consumer') || message.startsWith('Crash:')) return 'warn';
  return level === logLevel.ERROR ? 'error' : 'warn';
}

/** The latest connection failure seen, so a message about an unreachable cluster can name it. */
export interface ConnectionTrouble {
  last: string | undefined;
}

export function kafkaLogCreator(logger: Logger, trouble: ConnectionTrouble) {
  const log = logger.child({ component: 'kafkajs' });
  return () =>
    ({ level, log: entry }: LogEntry): void => {
      const { message, ...rest } = entry;
      if (message.startsWith('Connection error') || message.startsWith('Connection timeout'))
        trouble.last = message;
      log[levelOf(level, message, rest)](rest, message);
    };
}

let quieted = false;

/**
 * Process warnings as Node prints them, less one that means nothing to a user: kafkajs's request
 * queue arms its throttle check with a negative delay (Node 24 warns and waits 1 ms, which is what
 * kafkajs meant). Once per process; anything that creates kafkajs clients may call it.
 */
export function quietKafkajsTimers(): void {
  if (quieted) return;
  quieted = true;
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning' && warning.stack?.includes('requestQueue') === true) return;
    if (process.env.NODE_NO_WARNINGS === '1' || process.execArgv.includes('--no-warnings')) return;
    process.stderr.write(`(node:${process.pid}) ${warning.name}: ${warning.message}\n`);
  });
}
