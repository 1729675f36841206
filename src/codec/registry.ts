import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { StreamscoreError } from '../errors.js';

export type { SchemaRegistry };

export interface RegistryOptions {
  url: string;
  username?: string;
  password?: string;
}

export function createRegistry(options: RegistryOptions): SchemaRegistry {
  const auth =
    options.username !== undefined && options.username !== ''
      ? { username: options.username, password: options.password ?? '' }
      : undefined;
  // The client retries transient failures itself; a few quick tries keep a down registry from
  // hanging a decode for long before our own retry loop takes over.
  return new SchemaRegistry({
    host: options.url,
    ...(auth ? { auth } : {}),
    clientId: 'streamscore',
    retry: { retries: 2, initialRetryTimeInSecs: 0.1, maxRetryTimeInSecs: 2 },
  });
}

/** schemas/<file> shipped with the package. */
export async function readSchemaFile(file: string): Promise<Record<string, unknown>> {
  const path = fileURLToPath(new URL(`../../../schemas/${file}`, import.meta.url));
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new StreamscoreError('SCHEMA_INVALID', `Cannot read schema ${path}`, {
      cause: error,
      context: { path },
    });
  }
}

/**
 * Registers an Avro schema under `<topic>-value` (TopicNameStrategy) and returns its id.
 *
 * The client compares the subject's compatibility level with the one it was given before it
 * registers. Registries differ in what they answer for a subject without its own level (a 404, or
 * the global level), so we pass no level at all: the registry's own policy decides, as it would
 * for any other producer.
 */
export async function registerValueSchema(
  registry: SchemaRegistry,
  topic: string,
  schema: Record<string, unknown>,
): Promise<number> {
  const subject = `${topic}-value`;
  try {
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject, compatibility: undefined },
    );
    return id;
  } catch (error) {
    throw new StreamscoreError(
      'REGISTRY_UNAVAILABLE',
      `Cannot register the schema for subject ${subject}: ${(error as Error).message}`,
      { cause: error, context: { topic }, retriable: isRegistryTransient(error) },
    );
  }
}

/**
 * True for failures worth retrying (network, 5xx, 429); false for answers that will not change,
 * such as 404 for an unknown schema id. Reads status codes and error codes, never message text.
 */
export function isRegistryTransient(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const status = (error as { status?: unknown }).status;
  if (typeof status === 'number') return status >= 500 || status === 429 || status === 408;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return true; // ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND...
  const cause = (error as { cause?: unknown }).cause;
  return cause !== undefined && isRegistryTransient(cause);
}

/** An HTTP 404 from the registry: the schema id (or subject) does not exist. */
export function isRegistryNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { status?: unknown }).status === 404;
}
