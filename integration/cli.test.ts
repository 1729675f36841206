import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { createServer } from 'node:net';
import {
  runCli,
  BROKERS,
  REGISTRY_URL,
  ServeProcess,
  createTopics,
  sleep,
  waitFor,
  type TestTopics,
} from './harness.js';

function run(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000) {
  return runCli(args, { STREAMSCORE_LOG_LEVEL: 'warn', ...env }, timeoutMs);
}

describe('streamscore CLI', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  before(async () => {
    topics = await createTopics('cli', 2);
  });
  after(async () => topics.remove());

  it('produce -> serve -> tail: predictions a user can read', async () => {
    const env = {
      KAFKA_BROKERS: BROKERS!,
      SCHEMA_REGISTRY_URL: REGISTRY_URL!,
      STREAMSCORE_REQUESTS_TOPIC: topics.requests,
      STREAMSCORE_PREDICTIONS_TOPIC: topics.predictions,
      STREAMSCORE_DLQ_TOPIC: topics.dlq,
      STREAMSCORE_SHADOW_TOPIC: topics.shadow,
      STREAMSCORE_GROUP_ID: topics.group,
    };
    const produced = await run(['produce', '--count', '120', '--rate', '0', '--run-id', 'cli'], env);
    assert.equal(produced.code, 0, produced.stderr);
    const serve = ServeProcess.start(topics);
    try {
      await serve.ready();
      const tail = await run(['tail', '--count', '120', '--timeout-ms', '45000'], env);
      assert.equal(tail.code, 0, `${tail.stderr}\nserve:\n${serve.output()}`);
      const lines = tail.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { value: { request_id: string; outputs: { score: number } } });
      assert.equal(lines.length, 120);
      assert.ok(
        lines.every((line) => line.value.request_id.startsWith('cli-') && line.value.outputs.score >= 0),
      );
    } finally {
      assert.equal((await serve.stop('SIGTERM')).code, 0, serve.output());
    }
  });

  it('fails fast with a clear message when the broker cannot be reached', async () => {
    const result = await run(['serve', '--metrics-port', '0'], {
      KAFKA_BROKERS: '127.0.0.1:1',
      KAFKA_CONNECT_TIMEOUT_MS: '2000',
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /KAFKA_UNAVAILABLE .*Cannot reach Kafka at 127\.0\.0\.1:1 \(KAFKA_BROKERS\)/);
  });

  it('fails with a clear message when the registry cannot be reached', async () => {
    const result = await run(['serve', '--metrics-port', '0'], {
      KAFKA_BROKERS: BROKERS!,
      SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1/apis/ccompat/v7',
      STREAMSCORE_REQUESTS_TOPIC: topics.requests,
      STREAMSCORE_PREDICTIONS_TOPIC: topics.predictions,
      STREAMSCORE_DLQ_TOPIC: topics.dlq,
      STREAMSCORE_SHADOW_TOPIC: topics.shadow,
    });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /REGISTRY_UNAVAILABLE .*Cannot register the schema for subject .*the registry cannot be reached: .*ECONNREFUSED/,
    );
    assert.doesNotMatch(result.stderr, /fetch failed/);
  });

  it('stops cleanly on SIGTERM while the cluster does not answer at start-up', async () => {
    const child = spawn(process.execPath, ['dist/src/cli.js', 'serve', '--metrics-port', '0'], {
      env: {
        PATH: process.env.PATH,
        KAFKA_BROKERS: '127.0.0.1:1',
        KAFKA_CONNECT_TIMEOUT_MS: '60000',
      },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor('serve to be connecting', () => /metrics on/.test(stdout), 20_000);
    await sleep(500);
    const signalled = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stdout);
    assert.ok(Date.now() - signalled < 5_000, 'exits at once, without waiting for the connect timeout');
    assert.match(stdout, /"msg":"shutting down"/);
  });

  it('stops cleanly on SIGTERM before its group is joined', async () => {
    // A member already in the group makes the next join wait for a rebalance (up to a heartbeat).
    const member = ServeProcess.start(topics);
    let joining: ServeProcess | undefined;
    try {
      await member.ready();
      joining = ServeProcess.start(topics);
      const started = joining;
      await waitFor('the second replica to reach Kafka', () =>
        started.lines.some((line) => /metrics on/.test(String(line.msg))),
      );
      await sleep(300);
      const joinedAlready = joining.lines.some((line) => line.msg === 'joined consumer group');
      joining.child.kill('SIGTERM');
      const exit = await joining.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, joining.output());
      assert.equal(
        joinedAlready,
        false,
        'the signal must come before the join for this test to mean anything',
      );
      assert.ok(
        joining.lines.every((line) => Number(line.level) < 50),
        joining.output(),
      );
    } finally {
      await member.stop('SIGKILL');
      await joining?.stop('SIGKILL');
    }
  });

  it('names what failed: a missing CUDA provider, a busy metrics port', async () => {
    const cuda = await run(['serve', '--execution-provider', 'cuda']);
    assert.equal(cuda.code, 1);
    assert.match(cuda.stderr, /EXECUTION_PROVIDER_UNAVAILABLE .*"cuda" is not installed/);
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as { port: number }).port;
      const result = await run(['serve', '--metrics-port', String(port), '--metrics-host', '127.0.0.1']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /METRICS_PORT_UNAVAILABLE .*the port is in use/);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      busy.close();
    }
  });

  it('refuses a missing model, a bad setting and an unknown flag, naming what is allowed', async () => {
    const missing = await run(['serve', '--model', 'nosuchmodel']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /MODEL_INVALID .*nosuchmodel/);
    const badVersion = await run(['serve', '--model-version', '99']);
    assert.match(
      badVersion.stderr,
      /primary "99" \(99: version "99" is not on disk; versions on disk: 1, 2\)/,
    );
    const badSetting = await run(['serve'], {
      STREAMSCORE_BATCH_MAX_ROWS: '0',
      STREAMSCORE_EXECUTION_PROVIDER: 'gpu',
    });
    assert.equal(badSetting.code, 2);
    assert.match(badSetting.stderr, /STREAMSCORE_BATCH_MAX_ROWS: "0" is not valid: must be at least 1/);
    assert.match(badSetting.stderr, /allowed values are cpu, cuda/);
    const badFlag = await run(['serve', '--batch-size', '3']);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Unknown option '--batch-size'/);
    const help = await run(['serve', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /STREAMSCORE_BATCH_LINGER_MS/);
  });
});
