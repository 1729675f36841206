import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { problemsOf } from '../support/config.js';

describe('loadConfig', () => {
  it('gives defaults and freezes the result', () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.batchMaxRows, 256);
    assert.deepEqual(config.kafkaBrokers, ['127.0.0.1:9092']);
    assert.ok(Object.isFrozen(config));
  });

  it('takes file < env < flags, converting types', () => {
    const dir = mkdtempSync(join(tmpdir(), 'streamscore-config-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(
        file,
        JSON.stringify({ batchMaxRows: 10, batchLingerMs: 3, kafkaBrokers: ['a:1', 'b:2'] }),
      );
      const config = loadConfig({
        file,
        env: { STREAMSCORE_BATCH_LINGER_MS: '7', STREAMSCORE_CREATE_TOPICS: 'false' },
        flags: { batchLingerMs: '9' },
      });
      assert.equal(config.batchMaxRows, 10);
      assert.equal(config.batchLingerMs, 9);
      assert.equal(config.createTopics, false);
      assert.deepEqual(config.kafkaBrokers, ['a:1', 'b:2']);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('takes exactly-once delivery on the platformatic client only', () => {
    const config = loadConfig({ env: { STREAMSCORE_DELIVERY: 'exactly-once' } });
    assert.equal(config.delivery, 'exactly-once');
    assert.equal(loadConfig({ env: {} }).delivery, 'at-least-once');
    const problems = problemsOf(() =>
      loadConfig({ env: { STREAMSCORE_DELIVERY: 'exactly-once', STREAMSCORE_KAFKA_CLIENT: 'kafkajs' } }),
    );
    assert.equal(problems.length, 1);
    assert.match(
      problems[0]!,
      /STREAMSCORE_DELIVERY: exactly-once needs STREAMSCORE_KAFKA_CLIENT=platformatic/,
    );
    assert.match(
      problemsOf(() => loadConfig({ env: { STREAMSCORE_DELIVERY: 'twice' } }))[0]!,
      /STREAMSCORE_DELIVERY/,
    );
  });

  it('reports every problem at once, naming the key and what is allowed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'streamscore-config-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ batchmaxrows: 3, bogus: 1 }));
      const problems = problemsOf(() =>
        loadConfig({
          file,
          env: {
            STREAMSCORE_BATCH_MAX_ROWS: 'many',
            STREAMSCORE_EXECUTION_PROVIDER: 'tpu',
            STREAMSCORE_TYPO: '1',
            KAFKA_SASL_MECHANISM: 'scram-sha-256',
            KAFKA_SASL_PASSWORD: 'hunter2',
          },
          flags: { batchLingerMs: '-1', metricsPort: '1.5' },
        }),
      );
      const text = problems.join('\n');
      assert.equal(problems.length, 8, text);
      assert.match(text, /unknown key "batchmaxrows" \(did you mean "batchMaxRows"\?\)/);
      assert.match(text, /unknown key "bogus"/);
      assert.match(text, /STREAMSCORE_BATCH_MAX_ROWS: "many" is not valid: expected a number/);
      assert.match(text, /STREAMSCORE_EXECUTION_PROVIDER: "tpu" is not valid: allowed values are cpu, cuda/);
      assert.match(text, /unknown variable STREAMSCORE_TYPO/);
      assert.match(text, /--batch-linger-ms: "-1" is not valid: must be at least 0/);
      assert.match(text, /--metrics-port: "1.5" is not valid: expected a whole number/);
      assert.match(text, /KAFKA_SASL_USERNAME: required/);
      assert.doesNotMatch(text, /hunter2/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('reports an unreadable or malformed file', () => {
    assert.match(
      problemsOf(() => loadConfig({ file: '/nonexistent/streamscore.json', env: {} }))[0]!,
      /cannot read/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'streamscore-config-'));
    try {
      writeFileSync(join(dir, 'c.json'), '{nope');
      assert.match(
        problemsOf(() => loadConfig({ file: join(dir, 'c.json'), env: {} }))[0]!,
        /not valid JSON/,
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('takes routing from the file only when one is named, and the source from a fixed list', () => {
    assert.equal(loadConfig({ env: {} }).routingSource, 'auto');
    const problems = problemsOf(() => loadConfig({ env: { STREAMSCORE_ROUTING_SOURCE: 'file' } }));
    assert.deepEqual(problems, ['STREAMSCORE_ROUTING_SOURCE: file needs STREAMSCORE_ROUTING_FILE']);
    const bad = problemsOf(() => loadConfig({ env: { STREAMSCORE_ROUTING_SOURCE: 'disk' } }));
    assert.match(bad[0]!, /allowed values are auto, settings, file, topic/);
  });
});
