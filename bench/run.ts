/**
 * `npm run bench`: model ceiling, transport ceiling, per-event baseline and serve at a grid of batch
 * settings, for each model, in one run on one machine and one broker, so every ratio compares
 * numbers taken side by side. Prints the tables and writes the result JSON. See BENCHMARKS.md.
 */
import os from 'node:os';
import { chooseInfrastructure } from './infrastructure.js';
import { createClients } from './kafka.js';
import { describeMachine } from './machine.js';
import { runModel } from './model-run.js';
import type { ModelResult } from './summary.js';
import { USAGE, parsePlan } from './plan.js';
import { formatReport, writeJson, type BenchResult } from './report.js';

const METHOD: Record<string, string> = {
  model_ceiling:
    'ONNX Runtime in the bench process, no Kafka: buildMatrix + ModelRunner.score on generated rows, batches 1-2048 x intra-op threads 1-2; the best rows/s',
  transport_ceiling:
    "the fastest of the relays on each Kafka client (bench/relay/kafkajs.ts: eachBatch; bench/relay/platformatic.ts: the library's consumer stream), drains alternated, each a child process: consume, decode of every record and encode of a Prediction-shaped record with serve's codec, produce with serve's producer for that client (acks=all) per 1000 records with up to 16 calls in flight while the next records are decoded, commit of each partition's offsets once the records before them are acknowledged, serve's client settings, no model; drain of a pre-filled topic",
  java_reference:
    "Kafka's Java perf tools (ProducerPerformance, ConsumerPerformance from kafka-tools, the broker's release) on the same broker: the producer writes records of the model's event size, keys from 1000, acks=all, then the consumer reads them back (its rate from the first fetch, as a drain); CPU over the tool's whole process (JVM start included). The machine's reference, not a ceiling",
  cpu_us_per_event:
    'CPU of the process under test per event, µs: its cores used over the drain (or the paced send) / events per second * 1e6',
  clients:
    "serve at the best grid point on each Kafka client of --clients (STREAMSCORE_KAFKA_CLIENT), drains alternated, each paced at half the best grid drain rate; the grid itself runs on serve's default client",
  baseline: 'serve with STREAMSCORE_BATCH_MAX_ROWS=1: drain of a pre-filled topic',
  drain_rate:
    'events / (arrival of the last output at a consumer of the output topic - the process logging "joined consumer group")',
  paced_latency:
    'serve running, pre-encoded events written on a schedule at half its drain rate; latency = arrival of the prediction at a consumer - event_time (the moment the event was due to be sent); warm-up excluded',
  rss: 'peak resident set (VmHWM from /proc/<pid>/status) of the serve process over the drain and paced runs',
};

function say(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

async function main(): Promise<number> {
  const plan = parsePlan(process.argv.slice(2));
  if (plan === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const started = Date.now();
  const infrastructure = chooseInfrastructure(say);
  say(`infrastructure: ${infrastructure.kind}: ${infrastructure.brokers}, ${infrastructure.registryUrl}`);
  try {
    const clients = createClients(infrastructure);
    const machine = describeMachine(infrastructure.kafkaVersion, infrastructure.registryVersion);
    const models: Record<string, ModelResult> = {};
    for (const model of plan.models)
      models[model] = await runModel(clients, plan, model, infrastructure.kafkaRelease, say);
    const eventCounts: BenchResult['event_counts'] = {};
    for (const model of plan.models) {
      const counts = plan.perModel[model] ?? plan.perModel.heavy!;
      eventCounts[model] = {
        transport: counts.drainEvents,
        baseline: counts.baselineEvents,
        drain: counts.drainEvents,
        paced_seconds: `${plan.pacedWarmupSeconds} warm-up + ${plan.pacedMeasureSeconds} measured`,
        java_records: plan.javaReference ? (plan.javaRecords[model] ?? plan.javaRecords.heavy!) : 0,
      };
    }
    const result: BenchResult = {
      generated_at: new Date(started).toISOString(),
      mode: plan.mode,
      seconds: Math.round((Date.now() - started) / 1_000),
      infrastructure: infrastructure.kind,
      machine,
      load_average_at_end: Math.round(os.loadavg()[0]! * 100) / 100,
      method: METHOD,
      event_counts: eventCounts,
      grid: plan.grid,
      clients: plan.clients,
      models,
    };
    process.stdout.write(`${formatReport(result)}\n`);
    await writeJson(plan.out, result);
    say(`wrote ${plan.out} (${result.seconds} s)`);
    return 0;
  } finally {
    infrastructure.stop();
  }
}

main().then(
  // Exit explicitly: kafkajs and ONNX Runtime may keep timers or threads alive after the run.
  (code) => process.exit(code),
  (error: unknown) => {
    if ((error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(`[bench] ${(error as Error).message}\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(
      `[bench] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
