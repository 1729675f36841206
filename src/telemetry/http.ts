import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Config } from '../config/options.js';
import { StreamscoreError, describeError } from '../errors.js';
import type { Logger } from './logger.js';

export interface Probes {
  /** Alive: false only when the process should be restarted. */
  healthy(): boolean;
  /** Ready for traffic: e.g. group joined and model loaded. */
  ready(): boolean;
}

export interface TelemetryServer {
  readonly port: number;
  /** The address really bound, host and port (IPv6 in brackets), e.g. `0.0.0.0:9464`. */
  readonly address: string;
  /** Scheme and address, e.g. `https://0.0.0.0:9464`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Who may read /metrics and how (the Prometheus exporter convention, opt-in): TLS with a
 * certificate and key, and basic auth. The probes stay open: a kubelet or load balancer checks
 * them without credentials, and they say nothing beyond ok or not.
 */
export interface TelemetryAccess {
  tls?: { cert: Buffer; key: Buffer };
  basicAuth?: { username: string; password: string };
}

const REALM = 'Basic realm="streamscore metrics", charset="UTF-8"';

/** The access settings, with the certificate and key read (loadConfig checked they are readable). */
export function telemetryAccess(
  config: Pick<Config, 'metricsTlsCertFile' | 'metricsTlsKeyFile' | 'metricsUsername' | 'metricsPassword'>,
): TelemetryAccess {
  const access: TelemetryAccess = {};
  if (config.metricsTlsCertFile !== '' && config.metricsTlsKeyFile !== '') {
    access.tls = {
      cert: readFileSync(config.metricsTlsCertFile),
      key: readFileSync(config.metricsTlsKeyFile),
    };
  }
  if (config.metricsUsername !== '' && config.metricsPassword !== '') {
    access.basicAuth = { username: config.metricsUsername, password: config.metricsPassword };
  }
  return access;
}

/**
 * Whether the request carries the expected basic-auth credentials. Both sides are hashed to equal
 * lengths and compared in constant time, user and password each, so neither the time taken nor an
 * early exit tells how much of either matched.
 */
export function authorized(
  request: IncomingMessage,
  expected: { username: string; password: string },
): boolean {
  const header = request.headers.authorization ?? '';
  const match = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  const decoded = match === null ? '' : Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const username = colon < 0 ? '' : decoded.slice(0, colon);
  const password = colon < 0 ? '' : decoded.slice(colon + 1);
  const user = same(username, expected.username);
  const pass = same(password, expected.password);
  return match !== null && colon >= 0 && user && pass;
}

function same(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Serves /metrics (Prometheus text format), /healthz and /readyz; https and basic auth when `access` says. */
export async function startTelemetryServer(
  registry: Registry,
  probes: Probes,
  options: { port: number; host: string; logger: Logger; access?: TelemetryAccess },
): Promise<TelemetryServer> {
  const access = options.access ?? {};
  const handler: RequestListener = (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics' && access.basicAuth !== undefined && !authorized(request, access.basicAuth)) {
      response
        .writeHead(401, { 'www-authenticate': REALM, 'content-type': 'text/plain' })
        .end('credentials required for /metrics\n');
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => {
          options.logger.error({ err: error }, 'metrics collection failed');
          response.writeHead(500).end();
        },
      );
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const ok = path === '/healthz' ? probes.healthy() : probes.ready();
      response.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
      return;
    }
    response
      .writeHead(404, { 'content-type': 'text/plain' })
      .end('not found: try /metrics, /healthz, /readyz\n');
  };
  let server: Server;
  try {
    server = access.tls === undefined ? createServer(handler) : createTlsServer(access.tls, handler);
  } catch (error) {
    throw new StreamscoreError(
      'CONFIG_INVALID',
      `STREAMSCORE_METRICS_TLS_CERT_FILE and STREAMSCORE_METRICS_TLS_KEY_FILE: cannot serve TLS with them: ${describeError(error)}`,
      { cause: error },
    );
  }
  if (access.basicAuth !== undefined && access.tls === undefined) {
    options.logger.warn(
      'basic auth for /metrics without TLS: the password crosses the network in clear text; set STREAMSCORE_METRICS_TLS_CERT_FILE and STREAMSCORE_METRICS_TLS_KEY_FILE',
    );
  }
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const why =
        error.code === 'EADDRINUSE'
          ? 'the port is in use by another process'
          : error.code === 'EACCES'
            ? 'this user may not listen on it'
            : describeError(error);
      reject(
        new StreamscoreError(
          'METRICS_PORT_UNAVAILABLE',
          `Cannot serve metrics on ${options.host}:${options.port}: ${why} (${error.code ?? 'error'}); set another port, or 0 for any free one`,
          { cause: error, context: { port: options.port } },
        ),
      );
    };
    server.once('error', failed);
    server.listen(options.port, options.host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const port = bound.port;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${port}`;
  return {
    port,
    address,
    url: `${access.tls === undefined ? 'http' : 'https'}://${address}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
