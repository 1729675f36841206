import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Batch sizes in rows: powers of two up to the largest batch anyone should configure. */
const ROW_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
/** Inference time in seconds: 0.1 ms to 5 s. */
const INFERENCE_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** End-to-end latency in seconds: 1 ms to 1 minute. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The serve metrics, created on a registry that the caller owns (never the global one), so tests
 * and several pipelines in one process do not collide.
 */
export function createServeMetrics(registry: Registry) {
  const registers = [registry];
  const metrics = {
    registry,
    eventsConsumed: new Counter({
      name: 'streamscore_events_consumed_total',
      help: 'Records read from the requests topic.',
      labelNames: ['topic'] as const,
      registers,
    }),
    predictionsPublished: new Counter({
      name: 'streamscore_predictions_published_total',
      help: 'Predictions acknowledged by the broker.',
      labelNames: ['model', 'version', 'route'] as const,
      registers,
    }),
    deadLetters: new Counter({
      name: 'streamscore_dead_letters_total',
      help: 'Records written to the dead-letter topic, by reason code.',
      labelNames: ['reason'] as const,
      registers,
    }),
    batchRows: new Histogram({
      name: 'streamscore_batch_rows',
      help: 'Rows per runtime call.',
      labelNames: ['model', 'version', 'route'] as const,
      buckets: ROW_BUCKETS,
      registers,
    }),
    inferenceSeconds: new Histogram({
      name: 'streamscore_inference_seconds',
      help: 'ONNX Runtime time per runtime call, including tensor building.',
      labelNames: ['model', 'version', 'route'] as const,
      buckets: INFERENCE_BUCKETS,
      registers,
    }),
    endToEndSeconds: new Histogram({
      name: 'streamscore_end_to_end_seconds',
      help: 'From the event time to the acknowledgement of its prediction.',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    stageSeconds: new Histogram({
      name: 'streamscore_stage_seconds',
      help: "Where an event spends its time, once per fetch or batch: fetch (record timestamp to serve taking in the oldest record of a fetch), queue (taken in to its batch being scored, linger included; the batch's oldest event), score (runtime call and encoding), publish (handed to the producer to acknowledged).",
      labelNames: ['stage'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    consumerLag: new Gauge({
      name: 'streamscore_consumer_lag_messages',
      help: 'High watermark minus the next offset to read, per partition, as of the last fetch.',
      labelNames: ['topic', 'partition'] as const,
      registers,
    }),
    pendingEvents: new Gauge({
      name: 'streamscore_pending_events',
      help: 'Events consumed but not yet published (the backpressure measure).',
      registers,
    }),
    backpressureSeconds: new Counter({
      name: 'streamscore_backpressure_seconds_total',
      help: 'Time fetching was held back because too many events were pending.',
      registers,
    }),
    commits: new Counter({
      name: 'streamscore_offset_commits_total',
      help: 'Offset commits, by result.',
      labelNames: ['result'] as const,
      registers,
    }),
    modelInfo: new Gauge({
      name: 'streamscore_model_info',
      help: 'Live model versions and their route (value 1); unrouted versions disappear.',
      labelNames: ['model', 'version', 'route', 'sha256'] as const,
      registers,
    }),
    modelLoads: new Counter({
      name: 'streamscore_model_loads_total',
      help: 'Model version loads: result ok, or refused with the reason (checksum, unlisted, external_path, too_large, signature, warmup, load, metadata, not_found).',
      labelNames: ['model', 'version', 'result', 'reason'] as const,
      registers,
    }),
    routingRejected: new Counter({
      name: 'streamscore_routing_rejected_total',
      help: 'Routing records from the routing topic not applied (the last good routing keeps serving), by reason: a refusal reason of a version it names, or invalid, undecodable.',
      labelNames: ['model', 'reason'] as const,
      registers,
    }),
    routingRecordTime: new Gauge({
      name: 'streamscore_routing_updated_at_seconds',
      help: 'updated_at of the routing-topic record this replica runs, Unix seconds (0 while it runs its settings).',
      labelNames: ['model'] as const,
      registers,
    }),
    modelLoadSeconds: new Histogram({
      name: 'streamscore_model_load_seconds',
      help: 'Time to load, validate and warm up a model version.',
      labelNames: ['model'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    stalled: new Gauge({
      name: 'streamscore_stalled',
      help: ' 1 while the pipeline waits on infrastructure, by reason (broker, registry, publish, inference); /readyz answers 503 meanwhile.',
      labelNames: ['reason'] as const,
      registers,
    }),
    inferenceRestarts: new Counter({
      name: 'streamscore_inference_restarts_total',
      help: 'Inference worker threads that died and were started again.',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    inferenceRetries: new Counter({
      name: 'streamscore_inference_retries_total',
      help: 'Runtime calls made again after a failure: to isolate the rows that fail (bisect), after a worker restart, or while a version fails every call (stall).',
      labelNames: ['model', 'version', 'why'] as const,
      registers,
    }),
    revokedEvents: new Counter({
      name: 'streamscore_revoked_events_total',
      help: 'Events dropped before scoring because their partition moved to another replica (it scores them).',
      registers,
    }),
    deadLetterValuesOmitted: new Counter({
      name: 'streamscore_dead_letter_values_omitted_total',
      help: "Dead letters written without the original value (or key), because the copy would exceed the dead-letter topic's max.message.bytes.",
      registers,
    }),
    shadowPublished: new Counter({
      name: 'streamscore_shadow_predictions_published_total',
      help: 'Shadow records acknowledged by the broker.',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    fallbackEvents: new Counter({
      name: 'streamscore_fallback_events_total',
      help: 'Events a version failed on (runtime error or non-finite output) that its fallback scored and published (route fallback).',
      labelNames: ['model', 'version', 'fallback_version'] as const,
      registers,
    }),
    circuitOpen: new Gauge({
      name: 'streamscore_circuit_open',
      help: '1 while a version is out of routing after failing batch after batch (until its files or the routing change).',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    cacheHits: new Counter({
      name: 'streamscore_cache_hits_total',
      help: 'Events whose outputs came from the prediction cache (an identical feature row scored before by this version).',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    cacheMisses: new Counter({
      name: 'streamscore_cache_misses_total',
      help: 'Events looked up in the prediction cache and scored by the runtime.',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    cacheEvictions: new Counter({
      name: 'streamscore_cache_evictions_total',
      help: 'Prediction cache entries dropped to stay within STREAMSCORE_CACHE_ENTRIES and STREAMSCORE_CACHE_MAX_MB.',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    cacheEntries: new Gauge({
      name: 'streamscore_cache_entries',
      help: 'Entries in the prediction cache of a version (0 once its routing is gone).',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    shadowDropped: new Counter({
      name: 'streamscore_shadow_dropped_total',
      help: 'Shadow records not written, by reason (queue_full, inference_failed, missing_feature, non_finite_output, publish_failed, failed).',
      labelNames: ['model', 'version', 'reason'] as const,
      registers,
    }),
  };
  costGauges(metrics, registers);
  return metrics;
}

/** Sums of a metric's values by model/version label pair ("model/version"). */
async function byVersion(
  metric: {
    get(): Promise<{ values: { value: number; labels: object; metricName?: string }[] }>;
  },
  suffix?: string,
): Promise<Map<string, number>> {
  const sums = new Map<string, number>();
  for (const { value, labels, metricName } of (await metric.get()).values) {
    if (suffix !== undefined && metricName?.endsWith(suffix) !== true) continue;
    const { model, version } = labels as { model?: string; version?: string };
    const key = `${model}/${version}`;
    sums.set(key, (sums.get(key) ?? 0) + value);
  }
  return sums;
}

/**
 * What a prediction costs, computed at each scrape from the process's CPU time and the runtime
 * calls (averages over the process's life): `streamscore cost` turns them into money.
 */
function costGauges(
  metrics: {
    predictionsPublished: Counter<'model' | 'version' | 'route'>;
    inferenceSeconds: Histogram<'model' | 'version' | 'route'>;
  },
  registers: Registry[],
): void {
  new Gauge({
    name: 'streamscore_cpu_seconds_per_prediction',
    help: 'Process CPU time (user + system, every thread) per prediction published, over the life of the process.',
    registers,
    async collect() {
      const published = [...(await byVersion(metrics.predictionsPublished)).values()].reduce(
        (a, b) => a + b,
        0,
      );
      const { user, system } = process.cpuUsage();
      if (published > 0) this.set((user + system) / 1e6 / published);
    },
  });
  new Gauge({
    name: 'streamscore_inference_seconds_per_prediction',
    help: 'Runtime time per prediction published, by version (cached predictions cost none), over the life of the process.',
    labelNames: ['model', 'version'] as const,
    registers,
    async collect() {
      const seconds = await byVersion(metrics.inferenceSeconds, '_sum');
      const published = await byVersion(metrics.predictionsPublished);
      this.reset();
      for (const [key, count] of published) {
        if (count <= 0) continue;
        const [model, version] = key.split('/') as [string, string];
        this.set({ model, version }, (seconds.get(key) ?? 0) / count);
      }
    },
  });
}

export type ServeMetrics = ReturnType<typeof createServeMetrics>;

export function createRegistry(withProcessMetrics = true): Registry {
  const registry = new Registry();
  if (withProcessMetrics) collectDefaultMetrics({ register: registry, prefix: 'streamscore_' });
  return registry;
}
