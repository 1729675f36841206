/**
 * The drift monitor when the schema registry goes away: it reaches the registry through a proxy of
 * this test's own, which can stop answering or refuse the credentials, so the shared registry is
 * never touched. A registry that cannot be reached holds records back (not ready, nothing skipped)
 * and they are counted once it answers; a registry that refuses us stops the monitor with status 1.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  REGISTRY_URL,
  ServeProcess,
  createTopics,
  fraudEvents,
  metricValue,
  produceEvents,
  uniqueName,
  waitFor,
  type TestTopics,
} from './harness.js';

/** Forwards HTTP to the registry; `down()` closes its port, `refuse` answers 401 to everything. */
class RegistryProxy {
  refuse = false;
  readonly #target: URL;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;

  constructor(target: string) {
    this.#target = new URL(target);
    this.#server = createServer((incoming, outgoing) => {
      if (this.refuse) {
        outgoing
          .writeHead(401, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error_code: 40101, message: 'Unauthorized' }));
        return;
      }
      const forwarded = request(
        {
          host: this.#target.hostname,
          port: this.#target.port,
          method: incoming.method,
          path: incoming.url,
          headers: { ...incoming.headers, host: this.#target.host },
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      forwarded.on('error', () => outgoing.destroy());
      incoming.pipe(forwarded);
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** The registry's URL through this proxy. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}${this.#target.pathname}`;
  }

  async up(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(this.#port, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  /** Connections are refused from now on, and those open are cut. */
  async down(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

async function readyz(drift: ServeProcess): Promise<number> {
  return (await fetch(`http://127.0.0.1:${drift.metricsPort}/readyz`)).status;
}

function said(drift: ServeProcess, pattern: RegExp): boolean {
  return drift.lines.some((line) => pattern.test(String(line.msg)));
}

describe('drift monitor: the schema registry goes away', () => {
  const owned: (TestTopics & { remove(): Promise<void> })[] = [];
  let proxy: RegistryProxy;
  const processes: ServeProcess[] = [];

  before(async () => {
    proxy = new RegistryProxy(REGISTRY_URL!);
    await proxy.up();
  });
  after(async () => {
    for (const process of processes) await process.stop('SIGKILL');
    await proxy.down().catch(() => undefined);
    for (const topics of owned) await topics.remove();
  });

  /** A drift monitor of fresh topics: it has read no schema id yet but its own report schema's. */
  async function startDrift(): Promise<{ drift: ServeProcess; topics: TestTopics }> {
    const topics = await createTopics('drift-registry', 1);
    owned.push(topics);
    const drift = ServeProcess.start(
      topics,
      {
        SCHEMA_REGISTRY_URL: proxy.url,
        STREAMSCORE_DRIFT_TOPIC: `${topics.requests}.drift`,
        STREAMSCORE_DRIFT_GROUP_ID: uniqueName('drift'),
      },
      'drift',
    );
    processes.push(drift);
    await drift.ready();
    return { drift, topics };
  }

  it('holds records back while it cannot be reached, not ready and skipping none, then counts them', async () => {
    const { drift, topics } = await startDrift();
    await waitFor('the drift monitor to be ready', async () => (await readyz(drift)) === 200);
    await proxy.down();
    await produceEvents(topics.requests, fraudEvents(20, { seed: 51, runId: 'registry-down' }));
    await waitFor('the stall to be said', () => said(drift, /^stalled \(registry\)/), 30_000);
    assert.equal(await readyz(drift), 503);
    // Long enough for several retries.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    let metrics = await drift.metrics();
    assert.equal(metricValue(metrics, 'streamscore_drift_records_skipped_total'), 0);
    assert.equal(metricValue(metrics, 'streamscore_drift_records_read_total', { topic: topics.requests }), 0);
    assert.equal(drift.lines.filter((line) => /^stalled \(registry\)/.test(String(line.msg))).length, 1);
    assert.equal(drift.child.exitCode, null, drift.output());

    await proxy.up();
    await waitFor(
      'the held-back records to be read',
      async () =>
        metricValue(await drift.metrics(), 'streamscore_drift_records_read_total', {
          topic: topics.requests,
        }) === 20,
      30_000,
    );
    assert.ok(said(drift, /^recovered \(registry\)/), drift.output());
    assert.equal(await readyz(drift), 200);
    metrics = await drift.metrics();
    assert.equal(metricValue(metrics, 'streamscore_drift_records_skipped_total'), 0);
    assert.equal((await drift.stop('SIGTERM')).code, 0, drift.output());
  });

  it('stops with status 1 when the registry refuses the credentials', async () => {
    const { drift, topics } = await startDrift();
    proxy.refuse = true;
    try {
      await produceEvents(topics.requests, fraudEvents(1, { seed: 52, runId: 'registry-refuses' }));
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([
        drift.exited,
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 30_000))),
      ]);
      clearTimeout(timer);
      assert.equal(exit?.code, 1, drift.output());
      assert.ok(said(drift, /^drift monitor failed: .*refused the credentials/), drift.output());
    } finally {
      proxy.refuse = false;
    }
  });
});
