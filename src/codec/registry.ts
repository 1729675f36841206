/**
 * The schema registry over its Confluent-compatible REST API: fetching writer schemas by id and
 * registering ours. Our own small client rather than a library's, because serving depends on
 * telling a registry that is down (stall and retry) from an answer about a schema id (a dead
 * letter), and that is only reliable where we see the transport's error codes and the HTTP status.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { fileURLToPath } from 'node:url';
import {
  SECURITY_CODES,
  StreamscoreError,
  TLS_HOSTNAME_CODE,
  TLS_UNTRUSTED_REASONS,
  describeError,
} from '../errors.js';

export interface RegistryOptions {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  /** Sent as `Authorization: Bearer <token>` (instead of basic auth). */
  bearerToken?: string | undefined;
  /** PEM files for https: the CAs to trust, and a client certificate and key for mutual TLS. */
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** Per request, milliseconds. */
  timeoutMs?: number | undefined;
}

/** An HTTP answer from the registry (any status). */
export interface RegistryAnswer {
  status: number;
  body: unknown;
}

/** Registry answers are small JSON documents; anything larger is refused. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000; // ten seconds

/** Transport error codes that say the registry could not be reached now, and may be later. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
]);

/**
 * One registry, reached with basic auth when a user is given (in the settings, or as user:password
 * in the URL, which is then taken out of the URL). `display` is the URL without credentials: the
 * only form that appears in messages and logs.
 */
export class RegistryClient {
  readonly display: string;
  readonly #base: URL;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;
  readonly #tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };

  constructor(options: RegistryOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new StreamscoreError(
        'CONFIG_INVALID',
        `SCHEMA_REGISTRY_URL: ${JSON.stringify(redactUrl(options.url))} is not a URL (expected http(s)://host:port/path)`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new StreamscoreError(
        'CONFIG_INVALID',
        `SCHEMA_REGISTRY_URL: the scheme must be http or https, got ${url.protocol.replace(':', '')}`,
      );
    }
    let username = options.username ?? '';
    let password = options.password ?? '';
    if (username === '' && url.username !== '') {
      username = decodeURIComponent(url.username);
      password = decodeURIComponent(url.password);
    }
    url.username = '';
    url.password = '';
    url.pathname = url.pathname.replace(/\/+$/, '');
    this.#base = url;
    this.display = url.toString();
    const bearer = options.bearerToken ?? '';
    this.#authorization =
      bearer !== ''
        ? `Bearer ${bearer}`
        : username === ''
          ? undefined
          : `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    this.#tls = {};
    const files = [
      ['ca', options.caFile, 'SCHEMA_REGISTRY_SSL_CA_FILE'],
      ['cert', options.certFile, 'SCHEMA_REGISTRY_SSL_CERT_FILE'],
      ['key', options.keyFile, 'SCHEMA_REGISTRY_SSL_KEY_FILE'],
    ] as const;
    for (const [field, path, env] of files) {
      if (path === undefined || path === '') continue;
      try {
        this.#tls[field] = readFileSync(path);
      } catch (error) {
        throw new StreamscoreError('CONFIG_INVALID', `${env}: cannot read ${path}: ${describeError(error)}`, {
          cause: error,
          context: { path },
        });
      }
    }
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Any HTTP answer, with its JSON body. A registry that cannot be reached, or does not answer in
   * time, throws REGISTRY_UNAVAILABLE; `retriable` says whether waiting may help.
   */
  request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<RegistryAnswer> {
    const url = new URL(`${this.#base.pathname}${path}`, this.#base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {
      accept: 'application/vnd.schemaregistry.v1+json, application/json',
    };
    if (this.#authorization !== undefined) headers.authorization = this.#authorization;
    if (payload !== undefined) {
      headers['content-type'] = 'application/vnd.schemaregistry.v1+json';
      headers['content-length'] = String(payload.length);
    }
    const where = `${method} ${this.display}${path}`;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<RegistryAnswer>((resolve, reject) => {
      const options = { method, headers, timeout: this.#timeoutMs, ...this.#tls };
      const outgoing = send(url, options, (response) => {
        readAnswer(response).then(resolve, (error: unknown) => reject(unreachable(where, error)));
      });
      outgoing.on('timeout', () => {
        outgoing.destroy(
          Object.assign(new Error(`no answer within ${this.#timeoutMs} ms`), { code: 'ETIMEDOUT' }),
        );
      });
      outgoing.on('error', (error) => reject(unreachable(where, error)));
      outgoing.end(payload);
    });
  }

  /** An answer that is not 2xx, as an error: retriable for 5xx, 408 and 429. */
  failure(answer: RegistryAnswer, what: string): StreamscoreError {
    const { status } = answer;
    const detail = registryMessage(answer.body);
    const retriable = status >= 500 || status === 408 || status === 429;
    const refused = status === 401 || status === 403;
    const meaning = refused
      ? `the registry refused the credentials with ${status} (${this.#credentials()})`
      : `the registry answered ${status}`;
    return new StreamscoreError(
      refused ? 'REGISTRY_UNAUTHORIZED' : 'REGISTRY_UNAVAILABLE',
      `${what} at ${this.display}: ${meaning}${detail === undefined ? '' : ` (${detail})`}`,
      { retriable, context: { status } },
    );
  }

  /** Which credentials were sent, by setting name, never their values. */
  #credentials(): string {
    if (this.#authorization === undefined) return 'none were sent: set SCHEMA_REGISTRY_USERNAME / _PASSWORD';
    return this.#authorization.startsWith('Bearer ')
      ? 'SCHEMA_REGISTRY_BEARER_TOKEN'
      : 'SCHEMA_REGISTRY_USERNAME / _PASSWORD';
  }
}

async function readAnswer(response: IncomingMessage): Promise<RegistryAnswer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      response.destroy();
      throw new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown = text;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page, say): kept as text for the message.
  }
  return { status: response.statusCode ?? 0, body };
}

/** The registry could not be reached: says why, from the error's code, never its text. */
function unreachable(where: string, error: unknown): StreamscoreError {
  const code =
    typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : '';
  if (code === TLS_HOSTNAME_CODE) {
    return new StreamscoreError(
      'TLS_HOSTNAME_MISMATCH',
      `${where}: TLS failed: the registry's certificate does not name this host: ${describeError(error)} (${code})`,
      { cause: error, context: { check: code } },
    );
  }
  const untrusted = TLS_UNTRUSTED_REASONS[code];
  if (untrusted !== undefined) {
    return new StreamscoreError(
      'TLS_UNTRUSTED',
      `${where}: TLS failed: the registry's certificate is not trusted: ${untrusted} (${code}); set SCHEMA_REGISTRY_SSL_CA_FILE to the CA that signed it`,
      { cause: error, context: { check: code } },
    );
  }
  return new StreamscoreError(
    'REGISTRY_UNAVAILABLE',
    `${where}: the registry cannot be reached: ${describeError(error)}${code === '' ? '' : ` (${code})`}`,
    { cause: error, retriable: TRANSIENT_CODES.has(code), context: { code } },
  );
}

/** The error text a registry puts in its answer, shortened. */
function registryMessage(body: unknown): string | undefined {
  if (typeof body === 'object' && body !== null) {
    const { message, error_code: code } = body as { message?: unknown; error_code?: unknown };
    if (typeof message === 'string')
      return `${typeof code === 'number' ? `${code}: ` : ''}${message.slice(0, 300)}`;
  }
  if (typeof body === 'string' && body !== '') return body.slice(0, 300);
  return undefined;
}

/** A URL with any user:password taken out, for messages. */
function redactUrl(text: string): string {
  return text.replace(/\/\/[^/@\s]*@/, '//***@');
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
 * Registers an Avro schema under `<topic>-value` (TopicNameStrategy) and returns its id. The
 * registry's own compatibility rules for the subject decide whether it is accepted; registering a
 * schema the subject already has returns its existing id.
 */
export async function registerValueSchema(
  registry: RegistryClient,
  topic: string,
  schema: Record<string, unknown>,
): Promise<number> {
  const subject = `${topic}-value`;
  const what = `Cannot register the schema for subject ${subject}`;
  let answer: RegistryAnswer;
  try {
    answer = await registry.request('POST', `/subjects/${encodeURIComponent(subject)}/versions`, {
      schema: JSON.stringify(schema),
      schemaType: 'AVRO',
    });
  } catch (error) {
    if (error instanceof StreamscoreError) {
      const code = SECURITY_CODES.has(error.code) ? error.code : 'REGISTRY_UNAVAILABLE';
      throw new StreamscoreError(code, `${what}: ${error.message}`, {
        cause: error,
        retriable: error.retriable,
        context: { topic },
      });
    }
    throw error;
  }
  const id = (answer.body as { id?: unknown } | undefined)?.id;
  if (answer.status === 409 || answer.status === 422) {
    // The subject's compatibility rule (or the schema itself) refuses it: nothing a retry changes.
    const failure = registry.failure(answer, what);
    throw new StreamscoreError(
      'SCHEMA_INVALID',
      `${what}: the registry refuses it as ${answer.status === 409 ? 'incompatible with the versions before it' : 'invalid'}: ${failure.message}`,
      { context: { topic, status: answer.status } },
    );
  }
  if (answer.status >= 300 || typeof id !== 'number') {
    throw answer.status >= 300
      ? registry.failure(answer, what)
      : new StreamscoreError('REGISTRY_UNAVAILABLE', `${what}: the answer has no schema id`);
  }
  return id;
}

/** Confluent wire framing: magic byte 0, then the schema id (4 bytes, big-endian), then the payload. */
export const MAGIC_BYTE = 0;
export const HEADER_BYTES = 5;
