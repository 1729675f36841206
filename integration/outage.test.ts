/**
 * A broker that dies (kill -9) and comes back, with serve consuming and a producer writing through
 * the outage: serve stalls (not ready) while the broker is away, scores again within seconds of it
 * answering, and every event the broker acknowledged is scored. The test starts a broker of its own
 * (scripts/stack.sh with other ports), so killing it disturbs no other test.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import type { Prediction } from '../src/codec/predictions.js';
import {
  ServeProcess,
  metricValue,
  registerFeatureSchema,
  registry,
  sleep,
  uniqueName,
  waitFor,
  fraudEvents,
} from './harness.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** scripts/stack.sh for a private broker only; resolves with its output, rejects on failure. */
function stack(command: 'up' | 'down' | 'status', env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/stack.sh', command], {
      env: { ...process.env, ...env, STREAMSCORE_STACK_SERVICES: 'kafka' },
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('exit', (code) =>
      code === 0 || command === 'status' ? resolve(output) : reject(new Error(output)),
    );
  });
}

describe('serve: the broker dies and comes back', () => {
  let env: Record<string, string>;
  let brokers: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    const port = await freePort();
    env = {
      KAFKA_PORT: String(port),
      KAFKA_CONTROLLER_PORT: String(await freePort()),
      REGISTRY_PORT: String(port),
    };
    brokers = `127.0.0.1:${port}`;
    await stack('up', env);
  });
  after(async () => {
    await serve?.stop('SIGKILL');
    await stack('down', env);
  });

  it('stalls while it is away, scores again within seconds of it answering, loses nothing', async () => {
    const kafka = new Kafka({
      clientId: 'outage-test',
      brokers: [brokers],
      logLevel: logLevel.NOTHING,
      retry: { initialRetryTime: 100, maxRetryTime: 500, retries: 5 },
    });
    const base = uniqueName('outage');
    const topics = {
      requests: `${base}.requests`,
      predictions: `${base}.predictions`,
      dlq: `${base}.dlq`,
      shadow: `${base}.shadow`,
      group: `${base}-serve`,
    };
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [topics.requests, topics.predictions, topics.dlq, topics.shadow].map((topic) => ({
        topic,
        numPartitions: 3,
      })),
    });
    await admin.disconnect();
    const schemaId = await registerFeatureSchema(topics.requests);
    serve = ServeProcess.start(topics, { KAFKA_BROKERS: brokers, STREAMSCORE_COMMIT_INTERVAL_MS: '100' });
    await serve.ready();
    const current = serve;
    const published = async () =>
      metricValue(await current.metrics(), 'streamscore_predictions_published_total');
    const readiness = async () => (await fetch(`http://127.0.0.1:${current.metricsPort}/readyz`)).status;

    // A producer that keeps writing through the outage; an event counts once the broker took it.
    const producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 0 },
    });
    await producer.connect();
    const events = fraudEvents(100_000, { seed: 41, runId: 'outage' });
    const acknowledged: string[] = [];
    /** When the first events after the restart were taken: scoring can resume no earlier. */
    let firstAckAfter: number | undefined;
    const restart: { back?: number } = {};
    let next = 0;
    let producing = true;
    const writer = (async () => {
      while (producing) {
        const chunk = events.slice(next, next + 50);
        try {
          const messages = [];
          for (const event of chunk) {
            messages.push({
              key: event.entity_key,
              value: await registry.encode(schemaId, { ...event, event_time: Date.now() }),
            });
          }
          await producer.send({ topic: topics.requests, messages, acks: -1 });
          acknowledged.push(...chunk.map((event) => event.request_id));
          next += chunk.length;
          if (restart.back !== undefined) firstAckAfter ??= Date.now();
        } catch {
          // Not taken: the same events are written again once the broker answers.
        }
        await sleep(100);
      }
    })();

    await waitFor('predictions to flow', async () => (await published()) >= 500);
    const status = await stack('status', env);
    const pid = /kafka\s+running\s+pid\s+(\d+)/.exec(status)?.[1];
    assert.ok(pid !== undefined, status);
    process.kill(Number(pid), 'SIGKILL');
    const killedAt = Date.now();
    let sawNotReady = false;
    const watching = (async () => {
      while (restart.back === undefined) {
        if ((await readiness()) === 503) sawNotReady = true;
        await sleep(250);
      }
    })();
    await sleep(8_000);
    await stack('up', env);
    const back = Date.now();
    restart.back = back;
    await watching;
    assert.ok(sawNotReady, '/readyz answered 503 while the broker was away');
    const before = await published();
    await waitFor(
      'scoring to resume',
      async () => firstAckAfter !== undefined && (await published()) > before,
      30_000,
    );
    const resumedAfter = Date.now() - Math.max(back, firstAckAfter!);
    await waitFor('serve to be ready again', async () => (await readiness()) === 200, 30_000);
    await sleep(2_000);
    producing = false;
    await writer;
    await producer.disconnect();

    const expected = new Set(acknowledged);
    const consumer = kafka.consumer({ groupId: uniqueName('outage-check'), maxWaitTimeInMs: 200 });
    const scored = new Map<string, number>();
    await consumer.connect();
    await consumer.subscribe({ topic: topics.predictions, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          const { request_id } = (await registry.decode(message.value!)) as Prediction;
          scored.set(request_id, (scored.get(request_id) ?? 0) + 1);
        }
      },
    });
    await waitFor(
      'every acknowledged event to be scored',
      () => [...expected].every((id) => scored.has(id)),
      60_000,
    ).catch(() => undefined);
    await consumer.disconnect();
    const missing = [...expected].filter((id) => !scored.has(id));
    const repeats = [...scored.values()].reduce((sum, n) => sum + n - 1, 0);
    process.stdout.write(
      `# outage test: the restarted broker answered after ${back - killedAt} ms; scoring resumed ${resumedAfter} ms after it took new events; ${expected.size} events, ${repeats} repeats\n`,
    );
    assert.deepEqual(
      missing.slice(0, 10),
      [],
      `${missing.length} of ${expected.size} acknowledged events never scored`,
    );
    assert.ok(resumedAfter < 5_000, `scoring resumed ${resumedAfter} ms after the broker answered`);
    assert.ok(
      serve.lines.some((line) => line.stall === 'broker' && /stalled/.test(String(line.msg))),
      'the stall is logged',
    );
  });
});
