import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuMicrosPerEvent } from '../../bench/cpu.js';
import { parsePlan } from '../../bench/plan.js';

describe('bench plan', () => {
  it('runs serve on both Kafka clients and the Java reference by default', () => {
    const plan = parsePlan(['--quick'])!;
    assert.deepEqual(plan.clients, ['kafkajs', 'platformatic']);
    assert.equal(plan.javaReference, true);
  });

  it('takes --clients and --no-java', () => {
    const plan = parsePlan(['--clients', ' platformatic ,platformatic', '--no-java'])!;
    assert.deepEqual(plan.clients, ['platformatic']);
    assert.equal(plan.javaReference, false);
  });

  it('refuses a client it does not know, naming the ones it does', () => {
    assert.throws(
      () => parsePlan(['--clients', 'kafkajs,rdkafka']),
      (error: Error & { code?: string }) =>
        error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' &&
        /rdkafka/.test(error.message) &&
        /kafkajs, platformatic/.test(error.message),
    );
    assert.throws(() => parsePlan(['--clients', ',']), /no client/);
  });
});

describe('CPU per event', () => {
  it('is cores / events per second in µs, or null without the process CPU', () => {
    assert.equal(cpuMicrosPerEvent({ process_cores: 1.5, machine_busy_cores: 2 }, 50_000), 30);
    assert.equal(cpuMicrosPerEvent({ process_cores: null, machine_busy_cores: 2 }, 50_000), null);
    assert.equal(cpuMicrosPerEvent({ process_cores: 1, machine_busy_cores: 2 }, 0), null);
  });
});
