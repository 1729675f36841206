import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { BROKERS, REGISTRY_URL, ServeProcess, createTopics, type TestTopics } from './harness.js';

function run(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['dist/src/cli.js', ...args], {
      env: {
        PATH: process.env.PATH,
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
        STREAMSCORE_LOG_LEVEL: 'warn',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
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
    assert.match(result.stderr, /REGISTRY_UNAVAILABLE .*Cannot register the schema for subject/);
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
