import { StreamscoreError, describeError } from '../errors.js';

/** One sample of Prometheus text: a name, its labels, its value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition (the lines that carry samples; comments are skipped). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = Number(match[4]);
    if (Number.isFinite(value)) samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

export interface Prices {
  /** Price of one core for one hour. */
  coreHour: number;
  /** Price of one GPU for one hour, when inference runs on one; 0 otherwise. */
  gpuHour: number;
  /** ONNX Runtime intra-op threads the replica runs with: a second of runtime call is this many core-seconds. */
  inferenceThreads: number;
}

export interface VersionCost {
  model: string;
  version: string;
  predictions: number;
  /** Runtime seconds per prediction of this version (cache hits included, at no runtime cost). */
  inferenceSecondsPerPrediction: number;
  /** CPU seconds per prediction: this version's runtime time, plus an even share of the rest. */
  cpuSecondsPerPrediction: number;
  costPerMillion: number;
}

export interface CostReport {
  processCpuSeconds: number;
  predictions: number;
  /** CPU not spent in runtime calls (decode, batching, encode, Kafka), per prediction. */
  sharedCpuSecondsPerPrediction: number;
  versions: VersionCost[];
  prices: Prices;
}

/**
 * The cost of a prediction from a replica's counters (averages over the replica's life): process
 * CPU is split into the runtime calls of each version (seconds x intra-op threads) and the rest,
 * which every prediction shares evenly; a core-hour price turns CPU seconds into money, and a
 * GPU-hour price, if given, is charged on the runtime seconds.
 */
export function costReport(samples: readonly Sample[], prices: Prices): CostReport {
  const sum = (name: string, filter: (labels: Record<string, string>) => boolean = () => true) =>
    samples.filter((s) => s.name === name && filter(s.labels)).reduce((total, s) => total + s.value, 0);
  const processCpuSeconds = sum('streamscore_process_cpu_seconds_total');
  const versions = new Map<string, { model: string; version: string }>();
  for (const s of samples) {
    if (s.name !== 'streamscore_predictions_published_total') continue;
    const { model, version } = s.labels;
    if (model !== undefined && version !== undefined) versions.set(`${model}/${version}`, { model, version });
  }
  const rows = [...versions.values()].map(({ model, version }) => {
    const mine = (labels: Record<string, string>) => labels.model === model && labels.version === version;
    return {
      model,
      version,
      predictions: sum('streamscore_predictions_published_total', mine),
      inferenceSeconds: sum('streamscore_inference_seconds_sum', mine),
    };
  });
  const predictions = rows.reduce((total, r) => total + r.predictions, 0);
  const inferenceCpu = rows.reduce((total, r) => total + r.inferenceSeconds * prices.inferenceThreads, 0);
  const shared = predictions > 0 ? Math.max(0, processCpuSeconds - inferenceCpu) / predictions : 0;
  const perMillion = (seconds: number, hourPrice: number) => (seconds * 1e6 * hourPrice) / 3_600;
  return {
    processCpuSeconds,
    predictions,
    sharedCpuSecondsPerPrediction: shared,
    prices,
    versions: rows
      .filter((r) => r.predictions > 0)
      .map((r) => {
        const inference = r.inferenceSeconds / r.predictions;
        const cpu = shared + inference * prices.inferenceThreads;
        return {
          model: r.model,
          version: r.version,
          predictions: r.predictions,
          inferenceSecondsPerPrediction: inference,
          cpuSecondsPerPrediction: cpu,
          costPerMillion: perMillion(cpu, prices.coreHour) + perMillion(inference, prices.gpuHour),
        };
      })
      .sort((a, b) => `${a.model}/${a.version}`.localeCompare(`${b.model}/${b.version}`)),
  };
}

/** `streamscore cost`: reads a replica's /metrics and prints what a million predictions cost. */
export async function cost(options: { url: string; prices: Prices; json: boolean }): Promise<number> {
  let text: string;
  try {
    const response = await fetch(options.url, { signal: AbortSignal.timeout(10_000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    text = await response.text();
  } catch (error) {
    throw new StreamscoreError(
      'USAGE',
      `--metrics-url ${options.url}: cannot read metrics: ${describeError(error)}`,
    );
  }
  const report = costReport(parsePrometheus(text), options.prices);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  if (report.versions.length === 0) {
    process.stdout.write(`no predictions published yet at ${options.url}\n`);
    return 3;
  }
  const lines = [
    `${report.predictions} predictions, ${report.processCpuSeconds.toFixed(1)} CPU s; outside the runtime ` +
      `${(report.sharedCpuSecondsPerPrediction * 1e6).toFixed(1)} µs CPU a prediction; ` +
      `core-hour ${options.prices.coreHour}${options.prices.gpuHour > 0 ? `, GPU-hour ${options.prices.gpuHour}` : ''}`,
    '',
    'MODEL/VERSION  PREDICTIONS  INFERENCE µs/PRED  CPU µs/PRED  COST PER 1M',
    ...report.versions.map(
      (v) =>
        `${`${v.model}/${v.version}`.padEnd(13)}  ${String(v.predictions).padStart(11)}  ${(v.inferenceSecondsPerPrediction * 1e6).toFixed(2).padStart(17)}  ${(v.cpuSecondsPerPrediction * 1e6).toFixed(2).padStart(11)}  ${v.costPerMillion.toFixed(6).padStart(11)}`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
