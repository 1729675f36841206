import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, secretFlags } from '../../src/config/load.js';
import { problemsOf } from '../support/config.js';

describe('security settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamscore-secrets-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('reads each secret from its _FILE setting, without the trailing newline', () => {
    const config = loadConfig({
      env: {
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME: 'scorer',
        KAFKA_SASL_PASSWORD_FILE: write('sasl', 's3cret-sasl\n'),
        SCHEMA_REGISTRY_USERNAME: 'reader',
        SCHEMA_REGISTRY_PASSWORD_FILE: write('registry', 'reg-pass\r\n'),
      },
    });
    assert.equal(config.kafkaSaslPassword, 's3cret-sasl');
    assert.equal(config.schemaRegistryPassword, 'reg-pass');
  });

  it('refuses a secret given both directly and as a file, and a file it cannot read, never echoing the value', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {
          SCHEMA_REGISTRY_BEARER_TOKEN: 'tok-value',
          SCHEMA_REGISTRY_BEARER_TOKEN_FILE: write('token', 'tok-file'),
          KAFKA_SASL_PASSWORD_FILE: join(dir, 'missing'),
        },
      }),
    );
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(
      problems.join('\n'),
      /SCHEMA_REGISTRY_BEARER_TOKEN_FILE and SCHEMA_REGISTRY_BEARER_TOKEN: give the secret one way/,
    );
    assert.match(problems.join('\n'), /KAFKA_SASL_PASSWORD_FILE: cannot read .*missing: ENOENT/);
    assert.doesNotMatch(problems.join('\n'), /tok-value|tok-file/);
  });

  it('refuses SASL PLAIN without TLS unless allowed', () => {
    const env = { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' };
    assert.match(
      problemsOf(() => loadConfig({ env })).join('\n'),
      /plain without KAFKA_SSL sends the password in clear text/,
    );
    assert.equal(loadConfig({ env: { ...env, KAFKA_SSL: 'true' } }).kafkaSaslMechanism, 'plain');
    assert.equal(loadConfig({ env: { ...env, KAFKA_SASL_PLAIN_WITHOUT_TLS: 'true' } }).kafkaSsl, false);
  });

  it('checks TLS files at start-up and wants a client certificate with its key', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {
          KAFKA_SSL: 'true',
          KAFKA_SSL_CA_FILE: join(dir, 'no-ca.pem'),
          KAFKA_SSL_CERT_FILE: write('client.pem', 'x'),
          SCHEMA_REGISTRY_SSL_KEY_FILE: write('key.pem', 'x'),
        },
      }),
    ).join('\n');
    assert.match(problems, /KAFKA_SSL_CA_FILE: cannot read .*no-ca\.pem/);
    assert.match(problems, /KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE: a client certificate needs both/);
    assert.match(problems, /SCHEMA_REGISTRY_SSL_CERT_FILE and SCHEMA_REGISTRY_SSL_KEY_FILE/);
  });

  it('says a TLS setting without KAFKA_SSL does nothing, and refuses basic auth with a bearer token', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {
          KAFKA_SSL_SERVERNAME: 'broker.example',
          SCHEMA_REGISTRY_USERNAME: 'u',
          SCHEMA_REGISTRY_BEARER_TOKEN: 't',
        },
      }),
    ).join('\n');
    assert.match(problems, /KAFKA_SSL_SERVERNAME: has no effect without KAFKA_SSL=true/);
    assert.match(problems, /takes one kind of credentials/);
  });

  it('names the secret settings given as flags', () => {
    assert.deepEqual(
      secretFlags({ kafkaSaslPassword: 'x', kafkaSaslUsername: 'u', schemaRegistryBearerToken: 't' }),
      ['kafkaSaslPassword', 'schemaRegistryBearerToken'],
    );
  });
});
