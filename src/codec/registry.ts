import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
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
 * The client compares the subject's compatibility level with the one it is given before it
 * registers, and refuses on a mismatch. Registries answer that lookup differently: Confluent's
 * gives 404 for a subject without a level of its own, Apicurio's gives 200 with NONE once the
 * subject exists. So we read the level the registry reports and pass that: the client's check
 * always agrees, and the registry's own compatibility rules still decide on the POST.
 */
export async function registerValueSchema(
  registry: SchemaRegistry,
  options: RegistryOptions,
  topic: string,
  schema: Record<string, unknown>,
): Promise<number> {
  const subject = `${topic}-value`;
  try {
    const compatibility = await subjectCompatibility(options, subject);
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject, compatibility, updateConfig: false },
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

/** The level GET /config/<subject> reports, or undefined where the subject has none (404). */
async function subjectCompatibility(
  options: RegistryOptions,
  subject: string,
): Promise<COMPATIBILITY | undefined> {
  const headers: Record<string, string> = {
    accept: 'application/vnd.schemaregistry.v1+json, application/json',
  };
  if (options.username) {
    headers.authorization = `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}`;
  }
  const url = `${options.url.replace(/\/+$/, '')}/config/${encodeURIComponent(subject)}`;
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  if (response.status === 404) return undefined;
  if (!response.ok) {
    throw Object.assign(new Error(`GET ${url} answered ${response.status}`), { status: response.status });
  }
  const body = (await response.json()) as { compatibilityLevel?: unknown; compatibility?: unknown };
  const level = body.compatibilityLevel ?? body.compatibility;
  return typeof level === 'string' ? (level.toUpperCase() as COMPATIBILITY) : undefined;
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

/** Confluent wire framing: magic byte 0, then the schema id (4 bytes, big-endian), then the payload. */
export const MAGIC_BYTE = 0;
export const HEADER_BYTES = 5;

/** What the registry client's getSchema() gives for any schema type: the codec of the payload. */
export interface WireSchema {
  fromBuffer(buffer: Buffer): unknown;
  toBuffer(payload: object): Buffer;
}
