/**
 * `npm run bench:latency`: end-to-end latency of serve (and, with --relay, of the no-model transport
 * relay) at one batch setting and one paced rate, without the full bench. For tuning a setting
 * before a full run, or checking what a change does to the tail. Same method as the full bench's
 * paced case (see BENCHMARKS.md); nothing is written unless --out is given.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarizeProfile } from './profile.js';
import { drain, paced, type DrainResult, type PacedResult } from './cases.js';
import { chooseInfrastructure } from './infrastructure.js';
import { createClients, type CaseTopics } from './kafka.js';
import { kafkaClientEnv, serveClientProblem, startRelay, startServe } from './targets.js';
import { loadWorkload } from './workload.js';
import { KAFKA_CLIENTS, type KafkaClientName } from './plan.js';

const USAGE = `Usage: npm run bench:latency -- --rate EVENTS_PER_S [options]
       npm run bench:latency -- --drain EVENTS [options]

  --model NAME        fraud (default) or heavy
  --rate N            events per second to send
  --drain N           first drain N pre-filled events at the same setting (saturation rate); with
                      --relay, each client's relay drains them too
  --rows N            STREAMSCORE_BATCH_MAX_ROWS (default 1024)
  --linger MS         STREAMSCORE_BATCH_LINGER_MS (default 20)
  --threads N         STREAMSCORE_INFERENCE_THREADS (default 1)
  --seconds N         measured seconds after a 3 s warm-up (default 15)
  --repeat N          paced runs of serve (default 1)
  --profile           run serve under node --cpu-prof and print where it spent time
  --relay             also pace the no-model transport relay on each Kafka client at the same rate
  --hop               also time one Kafka hop at the same rate: the load generator's events read
                      back from the requests topic (the floor under serve's two hops)
  --no-serve          skip serve (with --relay or --hop)
  --client NAME       serve's Kafka client (STREAMSCORE_KAFKA_CLIENT): kafkajs or platformatic
  --env KEY=VALUE     extra environment for serve (repeatable)
  --out FILE          write the results as JSON`;

function say(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function describe(result: PacedResult): string {
  return (
    `p50/p95/p99/max ${result.p50_ms}/${result.p95_ms}/${result.p99_ms}/${result.max_ms} ms ` +
    `(from send p99 ${result.from_send.p99_ms} ms, sender lag max ${result.producer_max_lag_ms} ms, bench loop delay ` +
    `max ${result.bench_loop_delay_ms.max_ms} ms), ` +
    `${result.measured} events, CPU ${result.cpu.process_cores}/${result.cpu.machine_busy_cores}` +
    (result.serve?.avg_batch_rows !== undefined ? `, avg batch ${result.serve.avg_batch_rows}` : '') +
    (result.rss_mb !== undefined ? `, RSS ${result.rss_mb} MB` : '') +
    Object.entries(result.serve?.stages ?? {})
      .map(([stage, s]) => `\n  ${stage}: mean ${s.mean_ms} ms, p99 <= ${s.p99_le_ms} ms (${s.count})`)
      .join('')
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'fraud' },
      rate: { type: 'string' },
      drain: { type: 'string' },
      rows: { type: 'string', default: '1024' },
      linger: { type: 'string', default: '20' },
      threads: { type: 'string', default: '1' },
      seconds: { type: 'string', default: '15' },
      repeat: { type: 'string', default: '1' },
      relay: { type: 'boolean', default: false },
      hop: { type: 'boolean', default: false },
      'no-serve': { type: 'boolean', default: false },
      env: { type: 'string', multiple: true, default: [] },
      client: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const rate = Number(values.rate ?? 0);
  const drainEvents = Number(values.drain ?? 0);
  if (values.help || !(rate > 0 || drainEvents > 0)) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const settings = {
    batchMaxRows: Number(values.rows),
    lingerMs: Number(values.linger),
    threads: Number(values.threads),
  };
  const extraEnv: Record<string, string> = {};
  for (const pair of values.env) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--env wants KEY=VALUE, got ${pair}`);
    extraEnv[pair.slice(0, at)] = pair.slice(at + 1);
  }
  if (values.client !== undefined) {
    if (!(KAFKA_CLIENTS as readonly string[]).includes(values.client))
      throw new Error(
        `--client: ${JSON.stringify(values.client)}; expected one of ${KAFKA_CLIENTS.join(', ')}`,
      );
    const problem = serveClientProblem(values.client as KafkaClientName);
    if (problem !== undefined) throw new Error(`--client ${values.client}: ${problem}`);
    Object.assign(extraEnv, kafkaClientEnv(values.client as KafkaClientName));
  }
  const seconds = Number(values.seconds);
  const infrastructure = chooseInfrastructure(say);
  try {
    const clients = createClients(infrastructure);
    const workload = await loadWorkload(values.model);
    const results: Record<string, (PacedResult | DrainResult)[]> = {
      drain: [],
      serve: [],
      relay: [],
      hop: [],
    };
    const start = (t: CaseTopics) =>
      startServe(clients.endpoints, t, workload, settings, undefined, extraEnv);
    const drainRuns = drainEvents > 0 ? Number(values.repeat) : 0;
    for (let i = 0; i < drainRuns; i += 1) {
      for (const client of values.relay ? KAFKA_CLIENTS : []) {
        const result = await drain(
          clients,
          workload,
          `${values.model}-relay-${client}-drain`,
          drainEvents,
          (t) => startRelay(clients.endpoints, t, workload, client),
          300_000,
        );
        say(
          `relay (${client}) drain: ${result.events_per_s} ev/s (${result.seconds} s), CPU ${result.cpu.process_cores}/` +
            `${result.cpu.machine_busy_cores}, ${result.cpu_us_per_event} µs/ev, RSS ${result.rss_mb} MB`,
        );
        results.drain!.push(result);
      }
      if (values['no-serve']) continue;
      const result = await drain(clients, workload, `${values.model}-drain`, drainEvents, start, 300_000);
      say(
        `serve ${settings.batchMaxRows}/${settings.lingerMs} ms/t${settings.threads} drain: ` +
          `${result.events_per_s} ev/s (${result.seconds} s), CPU ${result.cpu.process_cores}/` +
          `${result.cpu.machine_busy_cores}, ${result.cpu_us_per_event} µs/ev, avg batch ` +
          `${result.serve?.avg_batch_rows}, RSS ${result.rss_mb} MB`,
      );
      results.drain!.push(result);
    }
    if (!(rate > 0)) {
      await writeReport(values.out, { model: values.model, settings, env: extraEnv, results });
      return 0;
    }
    const name = `latency-${values.model}-b${settings.batchMaxRows}-l${settings.lingerMs}.cpuprofile`;
    const profiling = values.profile ? { dir: join('bench', 'results'), name } : undefined;
    const serveRuns = values['no-serve'] ? 0 : Number(values.repeat);
    for (let i = 0; i < serveRuns; i += 1) {
      const result = await paced(clients, workload, `${values.model}-latency`, rate, 3, seconds, (t) =>
        startServe(clients.endpoints, t, workload, settings, profiling, extraEnv),
      );
      say(`serve ${settings.batchMaxRows}/${settings.lingerMs} ms/t${settings.threads}: ${describe(result)}`);
      results.serve!.push(result);
    }
    for (const client of values.relay ? KAFKA_CLIENTS : []) {
      const result = await paced(
        clients,
        workload,
        `${values.model}-relay-${client}`,
        rate,
        3,
        seconds,
        (t) => startRelay(clients.endpoints, t, workload, client),
      );
      say(`relay (${client}): ${describe(result)}`);
      results.relay!.push(result);
    }
    if (values.hop) {
      const result = await paced(clients, workload, `${values.model}-hop`, rate, 3, seconds, undefined);
      say(`one hop: ${describe(result)}`);
      results.hop!.push(result);
    }
    if (profiling !== undefined) {
      const summary = await summarizeProfile(join(profiling.dir, profiling.name));
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    }
    await writeReport(values.out, { model: values.model, rate, settings, env: extraEnv, results });
    return 0;
  } finally {
    infrastructure.stop();
  }
}

async function writeReport(out: string | undefined, report: unknown): Promise<void> {
  if (out !== undefined) await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `[bench] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
