/**
 * streamscore against the secured stack (scripts/stack.sh with STREAMSCORE_STACK_SECURE=1): Kafka
 * on a SASL_SSL listener with SCRAM users and the registry over https behind basic auth, both with
 * certificates from a throw-away CA. `npm test` starts it and names its client settings in
 * SECURED_STACK_ENV. Every command runs at trace level, and no secret may appear in its output.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ServeProcess,
  metricValue,
  runCli,
  uniqueName,
  waitFor,
  type CliRun,
  type TestTopics,
} from './harness.js';

const envFile = process.env.SECURED_STACK_ENV;
if (!envFile) {
  throw new Error(
    'The secured-stack tests need SECURED_STACK_ENV (the stack.env of `STREAMSCORE_STACK_SECURE=1 scripts/stack.sh up`); run them with `npm test`.',
  );
}
/** The client settings the secured stack printed: files for every secret, never a secret. */
const secured: Record<string, string> = Object.fromEntries(
  readFileSync(envFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes('='))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
);
const { STACK_TLS_DIR: tlsDir, ...clientEnv } = secured;
assert.ok(tlsDir, `no STACK_TLS_DIR in ${envFile}`);
const secrets = {
  scram: readFileSync(clientEnv.KAFKA_SASL_PASSWORD_FILE!, 'utf8').trim(),
  registry: readFileSync(clientEnv.SCHEMA_REGISTRY_PASSWORD_FILE!, 'utf8').trim(),
};
const WRONG_PASSWORD = 'not-the-password-7f3a';

/** Everything any process printed in this file, checked for secrets at the end. */
const outputs: string[] = [];

async function run(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  const result = await runCli(
    args,
    {
      STREAMSCORE_LOG_LEVEL: 'trace',
      STREAMSCORE_METRICS_PORT: '0',
      STREAMSCORE_METRICS_HOST: '127.0.0.1',
      ...clientEnv,
      ...env,
    },
    timeoutMs,
  );
  outputs.push(result.stdout, result.stderr);
  return result;
}

function topicsFor(prefix: string): TestTopics {
  const base = uniqueName(prefix);
  return {
    requests: `${base}.requests`,
    predictions: `${base}.predictions`,
    dlq: `${base}.dlq`,
    shadow: `${base}.shadow`,
    group: `${base}-serve`,
  };
}

function topicEnv(topics: TestTopics): Record<string, string> {
  return {
    STREAMSCORE_REQUESTS_TOPIC: topics.requests,
    STREAMSCORE_PREDICTIONS_TOPIC: topics.predictions,
    STREAMSCORE_DLQ_TOPIC: topics.dlq,
    STREAMSCORE_SHADOW_TOPIC: topics.shadow,
    STREAMSCORE_GROUP_ID: topics.group,
  };
}

/** A refusal: exit code 4 within `withinMs`, with this error code and message on stderr. */
function assertRefused(result: CliRun, code: string, message: RegExp, withinMs = 5_000): void {
  assert.equal(result.code, 4, result.stderr);
  assert.match(result.stderr, new RegExp(`^streamscore: ${code} \\(`, 'm'), result.stderr);
  assert.match(result.stderr, message, result.stderr);
  assert.ok(result.ms < withinMs, `took ${result.ms} ms`);
}

describe('on a SASL_SSL broker and an https registry with basic auth', () => {
  const processes: ServeProcess[] = [];
  let topics: TestTopics;
  before(() => {
    topics = topicsFor('secured');
  });
  after(async () => {
    for (const p of processes) {
      await p.stop('SIGKILL');
      outputs.push(p.output());
    }
  });

  it('serve, produce, tail and drift work: predictions flow and drift reads them', async () => {
    const driftTopic = `${topics.requests}.drift`;
    const serve = ServeProcess.start(topics, { ...clientEnv, STREAMSCORE_LOG_LEVEL: 'trace' });
    processes.push(serve);
    await serve.ready(60_000);
    const drift = ServeProcess.start(
      topics,
      {
        ...clientEnv,
        STREAMSCORE_LOG_LEVEL: 'trace',
        STREAMSCORE_DRIFT_TOPIC: driftTopic,
        STREAMSCORE_DRIFT_GROUP_ID: uniqueName('secured-drift'),
        STREAMSCORE_DRIFT_WINDOW_EVENTS: '50',
      },
      'drift',
    );
    processes.push(drift);
    await drift.ready(60_000);

    // Mutual TLS on top of SCRAM: the broker checks the client certificate it is given.
    const produced = await run(['produce', '--count', '200', '--rate', '0', '--run-id', 'secured'], {
      ...topicEnv(topics),
      KAFKA_SSL_CERT_FILE: join(tlsDir, 'client.pem'),
      KAFKA_SSL_KEY_FILE: join(tlsDir, 'client.key'),
    });
    assert.equal(produced.code, 0, produced.stderr);

    // The other SCRAM mechanism, and the host name given as KAFKA_SSL_SERVERNAME.
    const tail = await run(['tail', '--count', '200', '--timeout-ms', '60000'], {
      ...topicEnv(topics),
      KAFKA_SASL_MECHANISM: 'scram-sha-256',
      KAFKA_SSL_SERVERNAME: 'localhost',
      STREAMSCORE_LOG_LEVEL: 'warn',
    });
    assert.equal(tail.code, 0, `${tail.stderr}\nserve:\n${serve.output()}`);
    const ids = new Set(
      tail.stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { value: { request_id: string } }).value.request_id),
    );
    assert.equal(ids.size, 200);

    await waitFor(
      'the drift monitor to read every request',
      async () =>
        metricValue(await drift.metrics(), 'streamscore_drift_records_read_total', {
          topic: topics.requests,
        }) === 200,
      60_000,
    );
    assert.equal((await drift.stop('SIGTERM')).code, 0, drift.output());
    const reports = await run(['tail', '--topic', driftTopic, '--count', '1', '--timeout-ms', '30000']);
    assert.equal(reports.code, 0, reports.stderr);
    assert.match(reports.stdout, /"model_version"/);

    const metrics = await serve.metrics();
    assert.equal(metricValue(metrics, 'streamscore_predictions_published_total'), 200);
    outputs.push(metrics);
    assert.equal((await serve.stop('SIGTERM')).code, 0, serve.output());
    outputs.push(serve.output(), drift.output());
  });

  it('a wrong SCRAM password fails fast with KAFKA_AUTH_FAILED, for serve and for produce', async () => {
    const wrong = { KAFKA_SASL_PASSWORD_FILE: '', KAFKA_SASL_PASSWORD: WRONG_PASSWORD };
    assertRefused(
      await run(['produce', '--count', '1'], { ...topicEnv(topics), ...wrong }),
      'KAFKA_AUTH_FAILED',
      /refused SASL SCRAM-SHA-512 authentication for user "scorer"/,
    );
    assertRefused(
      await run(['serve'], { ...topicEnv(topicsFor('secured-wrong')), ...wrong }),
      'KAFKA_AUTH_FAILED',
      /SCRAM-SHA-512/,
    );
  });

  it('a CA that did not sign the broker certificate fails fast with TLS_UNTRUSTED', async () => {
    assertRefused(
      await run(['tail', '--count', '1'], {
        ...topicEnv(topics),
        KAFKA_SSL_CA_FILE: join(tlsDir, 'other-ca.pem'),
      }),
      'TLS_UNTRUSTED',
      /Kafka at localhost:\d+: the broker's certificate is not trusted: .*\(SELF_SIGNED_CERT_IN_CHAIN\)/,
    );
  });

  it('a host name the certificate does not carry fails fast with TLS_HOSTNAME_MISMATCH', async () => {
    const port = clientEnv.KAFKA_BROKERS!.split(':')[1]!;
    assertRefused(
      await run(['produce', '--count', '1'], { ...topicEnv(topics), KAFKA_BROKERS: `127.0.0.1:${port}` }),
      'TLS_HOSTNAME_MISMATCH',
      /ERR_TLS_CERT_ALTNAME_INVALID/,
    );
    assertRefused(
      await run(['produce', '--count', '1'], { ...topicEnv(topics), KAFKA_SSL_SERVERNAME: 'broker.invalid' }),
      'TLS_HOSTNAME_MISMATCH',
      /KAFKA_SSL_SERVERNAME/,
    );
  });

  it('the registry: a wrong password is REGISTRY_UNAUTHORIZED, an untrusted CA is TLS_UNTRUSTED', async () => {
    assertRefused(
      await run(['produce', '--count', '1'], {
        ...topicEnv(topics),
        SCHEMA_REGISTRY_PASSWORD_FILE: '',
        SCHEMA_REGISTRY_PASSWORD: WRONG_PASSWORD,
      }),
      'REGISTRY_UNAUTHORIZED',
      /refused the credentials with 401/,
    );
    assertRefused(
      await run(['produce', '--count', '1'], {
        ...topicEnv(topics),
        SCHEMA_REGISTRY_SSL_CA_FILE: join(tlsDir, 'other-ca.pem'),
      }),
      'TLS_UNTRUSTED',
      /the registry's certificate is not trusted/,
    );
  });

  it('a secret given as a flag works and is warned about, without being echoed', async () => {
    const result = await run(['produce', '--count', '1', '--kafka-sasl-password', secrets.scram], {
      ...topicEnv(topics),
      KAFKA_SASL_PASSWORD_FILE: '',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /warning: --kafka-sasl-password puts a secret on the command line, where other users of this host can read it/,
    );
    assert.match(result.stderr, /KAFKA_SASL_PASSWORD_FILE instead/);
  });

  it('no secret appears in any output, at trace level', () => {
    assert.ok(outputs.join('').length > 10_000, 'too little output to judge');
    const basic = Buffer.from(`streamscore:${secrets.registry}`).toString('base64');
    for (const [name, secret] of Object.entries({ ...secrets, basic, wrong: WRONG_PASSWORD })) {
      const found = outputs.findIndex((text) => text.includes(secret));
      assert.equal(found, -1, `the ${name} secret appears in output ${found}`);
    }
  });
});
