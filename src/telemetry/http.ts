import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
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
  close(): Promise<void>;
}

/** Serves /metrics (Prometheus text format), /healthz and /readyz. */
export async function startTelemetryServer(
  registry: Registry,
  probes: Probes,
  options: { port: number; host: string; logger: Logger },
): Promise<TelemetryServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
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
  });
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
  return {
    port,
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
