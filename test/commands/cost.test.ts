import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costReport, parsePrometheus } from '../../src/commands/cost.js';
import { createRegistry, createServeMetrics } from '../../src/telemetry/metrics.js';

const TEXT = `# HELP streamscore_process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE streamscore_process_cpu_seconds_total counter
streamscore_process_cpu_seconds_total 30
streamscore_predictions_published_total{model="heavy",version="1",route="primary"} 400000
streamscore_predictions_published_total{model="heavy",version="2",route="canary"} 100000
streamscore_predictions_published_total{model="heavy",version="2",route="primary"} 100000
streamscore_inference_seconds_sum{model="heavy",version="1",route="primary"} 16
streamscore_inference_seconds_sum{model="heavy",version="2",route="canary"} 1
streamscore_inference_seconds_sum{model="heavy",version="2",route="primary"} 1
streamscore_inference_seconds_count{model="heavy",version="2",route="primary"} 99
`;

describe('streamscore cost', () => {
  it('parses Prometheus text, labels and escapes included', () => {
    const samples = parsePrometheus(`${TEXT}odd_metric{a="x\\"y",b="z"} 1.5e3\nnot a sample\n`);
    assert.deepEqual(samples.at(-1), { name: 'odd_metric', labels: { a: 'x"y', b: 'z' }, value: 1_500 });
    assert.equal(samples.filter((s) => s.name === 'streamscore_inference_seconds_sum').length, 3);
  });

  it('splits process CPU into each version runtime time and an even share of the rest', () => {
    const report = costReport(parsePrometheus(TEXT), { coreHour: 0.036, gpuHour: 0, inferenceThreads: 1 });
    // 30 CPU s, 18 of them in runtime calls: 12 s over 600,000 predictions = 20 µs each.
    assert.equal(report.predictions, 600_000);
    assert.ok(Math.abs(report.sharedCpuSecondsPerPrediction - 20e-6) < 1e-12);
    const [v1, v2] = report.versions;
    assert.equal(v1!.version, '1');
    assert.ok(Math.abs(v1!.inferenceSecondsPerPrediction - 40e-6) < 1e-12);
    assert.ok(Math.abs(v1!.cpuSecondsPerPrediction - 60e-6) < 1e-12);
    // 60 µs x 1e6 = 60 core-seconds = 1/60 core-hour, at 0.036 a core-hour.
    assert.ok(Math.abs(v1!.costPerMillion - 0.0006) < 1e-12);
    assert.equal(v2!.predictions, 200_000);
    assert.ok(Math.abs(v2!.cpuSecondsPerPrediction - 30e-6) < 1e-12);
    const gpu = costReport(parsePrometheus(TEXT), { coreHour: 0, gpuHour: 3.6, inferenceThreads: 1 });
    assert.ok(Math.abs(gpu.versions[1]!.costPerMillion - (10e-6 * 1e6 * 3.6) / 3_600) < 1e-12);
    const threads = costReport(parsePrometheus(TEXT), { coreHour: 1, gpuHour: 0, inferenceThreads: 2 });
    // 36 core-seconds of runtime calls is more than the process used: nothing is left to share.
    assert.equal(threads.sharedCpuSecondsPerPrediction, 0);
  });

  it('serves the per-prediction figures as gauges computed at each scrape', async () => {
    const registry = createRegistry(false);
    const metrics = createServeMetrics(registry);
    metrics.predictionsPublished.inc({ model: 'fraud', version: '2', route: 'primary' }, 300);
    metrics.predictionsPublished.inc({ model: 'fraud', version: '2', route: 'canary' }, 100);
    metrics.inferenceSeconds.observe({ model: 'fraud', version: '2', route: 'primary' }, 0.003);
    metrics.inferenceSeconds.observe({ model: 'fraud', version: '2', route: 'canary' }, 0.001);
    const samples = parsePrometheus(await registry.metrics());
    const perPrediction = samples.find((s) => s.name === 'streamscore_inference_seconds_per_prediction');
    assert.deepEqual(perPrediction?.labels, { model: 'fraud', version: '2' });
    assert.ok(Math.abs(perPrediction.value - 0.004 / 400) < 1e-15);
    const cpu = samples.find((s) => s.name === 'streamscore_cpu_seconds_per_prediction');
    const { user, system } = process.cpuUsage();
    assert.ok(cpu !== undefined && cpu.value > 0 && cpu.value <= (user + system) / 1e6 / 400);
  });
});
