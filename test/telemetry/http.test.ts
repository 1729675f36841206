import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry, Counter } from 'prom-client';
import { loadConfig } from '../../src/config/load.js';
import { StreamscoreError } from '../../src/errors.js';
import { startTelemetryServer, telemetryAccess, type TelemetryServer } from '../../src/telemetry/http.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One GET; `ca` makes it https, trusting that certificate only. */
function get(url: string, options: { auth?: string; ca?: Buffer } = {}): Promise<Answer> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const headers = options.auth === undefined ? {} : { authorization: options.auth };
    request(url, { headers, ca: options.ca }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
      );
    })
      .on('error', reject)
      .end();
  });
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('telemetry server', () => {
  const logger = pino({ level: 'silent' });
  const registry = new Registry();
  new Counter({ name: 'test_events_total', help: 'events', registers: [registry] }).inc(3);
  const probes = { healthy: () => true, ready: () => true };
  let dir: string;
  let cert: Buffer;
  let key: Buffer;
  const opened: TelemetryServer[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'streamscore-tls-'));
    // A throw-away self-signed certificate for 127.0.0.1, valid for a day.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'cert.pem'));
    key = readFileSync(join(dir, 'key.pem'));
  });
  after(async () => {
    for (const server of opened) await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(access: Parameters<typeof startTelemetryServer>[2]['access']) {
    const server = await startTelemetryServer(registry, probes, {
      port: 0,
      host: '127.0.0.1',
      logger,
      access,
    });
    opened.push(server);
    return server;
  }

  it('serves everything openly over http by default', async () => {
    const server = await start(undefined);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
    const metrics = await get(`${server.url}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^test_events_total 3$/m);
  });

  it('asks for credentials on /metrics only, and compares them', async () => {
    const server = await start({ basicAuth: { username: 'prometheus', password: 'pä55:word' } });
    const bare = await get(`${server.url}/metrics`);
    assert.equal(bare.status, 401);
    assert.match(String(bare.headers['www-authenticate']), /^Basic realm="streamscore metrics"/);
    assert.doesNotMatch(bare.body, /test_events_total/);
    for (const auth of [
      basic('prometheus', 'pä55:wor'),
      basic('prometheus', 'pä55:word!'),
      basic('Prometheus', 'pä55:word'),
      basic('', ''),
      'Basic !!!',
      'Bearer pä55:word',
      `Basic ${Buffer.from('prometheus').toString('base64')}`,
    ]) {
      assert.equal((await get(`${server.url}/metrics`, { auth })).status, 401, auth);
    }
    const good = await get(`${server.url}/metrics`, { auth: basic('prometheus', 'pä55:word') });
    assert.equal(good.status, 200);
    assert.match(good.body, /^test_events_total 3$/m);
    for (const path of ['/healthz', '/readyz'])
      assert.equal((await get(`${server.url}${path}`)).status, 200, path);
  });

  it('serves https with the certificate given, probes open, /metrics behind basic auth', async () => {
    const server = await start({ tls: { cert, key }, basicAuth: { username: 'u', password: 'p' } });
    assert.equal(server.url, `https://127.0.0.1:${server.port}`);
    assert.equal((await get(`${server.url}/healthz`, { ca: cert })).status, 200);
    assert.equal((await get(`${server.url}/metrics`, { ca: cert })).status, 401);
    const metrics = await get(`${server.url}/metrics`, { ca: cert, auth: basic('u', 'p') });
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^test_events_total 3$/m);
    // Not trusted without the certificate, and no plain http on the same port.
    await assert.rejects(get(`${server.url}/healthz`), /self[- ]signed/i);
    await assert.rejects(get(`http://127.0.0.1:${server.port}/healthz`));
  });

  it('reads its settings: certificate files, a password from a file, both halves of each pair', () => {
    writeFileSync(join(dir, 'password'), 'from-a-file\n');
    const config = loadConfig({
      env: {
        STREAMSCORE_METRICS_TLS_CERT_FILE: join(dir, 'cert.pem'),
        STREAMSCORE_METRICS_TLS_KEY_FILE: join(dir, 'key.pem'),
        STREAMSCORE_METRICS_USERNAME: 'prometheus',
        STREAMSCORE_METRICS_PASSWORD_FILE: join(dir, 'password'),
      },
    });
    const access = telemetryAccess(config);
    assert.deepEqual(access.basicAuth, { username: 'prometheus', password: 'from-a-file' });
    assert.deepEqual(access.tls, { cert, key });
    assert.deepEqual(telemetryAccess(loadConfig({ env: {} })), {});
    assert.throws(
      () =>
        loadConfig({
          env: {
            STREAMSCORE_METRICS_TLS_CERT_FILE: join(dir, 'cert.pem'),
            STREAMSCORE_METRICS_USERNAME: 'u',
          },
        }),
      (error: unknown) =>
        error instanceof StreamscoreError &&
        /STREAMSCORE_METRICS_TLS_CERT_FILE and STREAMSCORE_METRICS_TLS_KEY_FILE: serving TLS needs both/.test(
          error.message,
        ) &&
        /STREAMSCORE_METRICS_USERNAME and STREAMSCORE_METRICS_PASSWORD: basic auth needs both/.test(
          error.message,
        ),
    );
  });

  it('refuses a certificate and key that do not make a TLS server, as a configuration error', async () => {
    await assert.rejects(
      start({ tls: { cert: key, key: cert } }),
      (error: unknown) =>
        error instanceof StreamscoreError &&
        error.code === 'CONFIG_INVALID' &&
        /cannot serve TLS/.test(error.message),
    );
  });
});
