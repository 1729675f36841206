import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChildTimes, parseConsumerOutput, parseProducerOutput } from '../../bench/java-perf.js';

describe('Java perf tool output (bench reference)', () => {
  it('reads the producer summary and its steady-state line', () => {
    const text = [
      'Warmup first 20000 records. Steady state results will print after the complete test summary.',
      '51008 records sent, 10199.6 records/sec (2.33 MB/sec), 1103.2 ms avg latency, 1796.0 ms max latency.',
      '100000 records sent, 39840.637450 records/sec (9.12 MB/sec), 654.26 ms avg latency, 1220.00 ms max latency, 619 ms 50th, 1130 ms 95th, 1206 ms 99th, 1217 ms 99.9th.',
      '80000 steady state records sent, 42689.434365 records/sec (9.77 MB/sec), 760.05 ms avg latency, 1220.00 ms max latency, 755 ms 50th, 1144 ms 95th, 1207 ms 99th, 1217 ms 99.9th.',
    ].join('\n');
    assert.deepEqual(parseProducerOutput(text), {
      records: 100_000,
      records_per_s: 39_841,
      mb_per_s: 9.12,
      avg_latency_ms: 654.26,
      max_latency_ms: 1220,
      p50_ms: 619,
      p99_ms: 1206,
      steady_records_per_s: 42_689,
    });
  });

  it('reads the consumer CSV line under its header', () => {
    const text = [
      'start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec',
      '2026-12-01 10:26:22:102, 2026-12-01 10:26:23:381, 23.1637, 18.1108, 100000, 78186.0829, 794, 485, 47.7602, 206185.5670',
    ].join('\n');
    assert.deepEqual(parseConsumerOutput(text), {
      records: 100_000,
      records_per_s: 206_186,
      records_per_s_with_join: 78_186,
      mb_per_s: 47.76,
      rebalance_ms: 794,
      fetch_ms: 485,
    });
  });

  it('says what it looked for when a tool printed no summary', () => {
    assert.throws(() => parseProducerOutput('Exception in thread "main"'), /no summary line/);
    assert.throws(() => parseConsumerOutput('WARN nothing consumed'), /start\.time/);
  });

  it("takes the finished children's CPU from bash's times", () => {
    assert.equal(parseChildTimes('noise\n0m0.002s 0m0.001s\n1m2.500s 0m1.250s\n'), 63.75);
    assert.equal(parseChildTimes('0m0.002s 0m0.001s\n'), undefined);
  });
});
