import { randomUUID } from 'node:crypto';
import { RecordDecoder } from '../codec/records.js';
import { RegistrySchemas } from '../codec/schemas.js';
import { registryClient } from './connect.js';
import type { Config } from '../config/options.js';
import { SECURITY_CODES, describeError, isStreamscoreError } from '../errors.js';
import { createKafka, securityFailure, unlessRefused } from '../kafka/client.js';
import { createLogger } from '../telemetry/logger.js';

export interface TailOptions {
  topic: string;
  count: number;
  timeoutMs: number;
}

/**
 * `streamscore tail`: prints records of a topic as JSON lines, values decoded through the registry
 * (dead-letter records show their headers and the raw value as base64). It reads from the start
 * with a throw-away group and commits nothing, so it never disturbs serve replicas.
 */
export async function tail(config: Config, options: TailOptions): Promise<number> {
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'stderr');
  const kafka = createKafka(config, logger);
  const records = new RecordDecoder(new RegistrySchemas(registryClient(config)), config.maxValueBytes);
  const consumer = kafka.consumer({ groupId: `streamscore-tail-${randomUUID()}`, maxWaitTimeInMs: 250 });
  await unlessRefused(kafka, consumer.connect()).catch((error: unknown) => {
    throw securityFailure(error, config) ?? error;
  });
  let printed = 0;
  let refused = false;
  try {
    await consumer.subscribe({ topic: options.topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, options.timeoutMs);
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            if (printed >= options.count || refused) return;
            const headers: Record<string, string> = {};
            for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
            let value: unknown = null;
            if (message.value !== null) {
              const decoded = await records.decode(message.value).catch((error: unknown) => {
                // Refused credentials or trust would refuse every record alike: stop and say so.
                if (isStreamscoreError(error) && SECURITY_CODES.has(error.code)) {
                  refused = true;
                  reject(error);
                }
                return { ok: false as const, message: describeError(error) };
              });
              if (refused) return;
              value = decoded.ok
                ? decoded.record
                : { undecodable: decoded.message, base64: message.value.toString('base64') };
            }
            const line = {
              partition,
              offset: message.offset,
              key: message.key?.toString() ?? null,
              headers,
              value,
            };
            process.stdout.write(
              `${JSON.stringify(line, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}\n`,
            );
            printed += 1;
            if (printed >= options.count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return printed > 0 ? 0 : 3;
}
