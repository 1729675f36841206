/**
 * The machine's reference: Kafka's own Java client, as its perf tools drive it (the classes behind
 * kafka-producer-perf-test and kafka-consumer-perf-test, from the kafka-tools jar that
 * bench/java-tools.sh fetches), on the bench's broker in the same run. The producer writes records
 * of the model's event size with keys from as many entities as the bench's events (acks=all); the
 * consumer then reads them back. These are not a ceiling for serve: no Avro, no model, and a
 * client that uses every core. They say how much of the machine and broker a Node client leaves.
 *
 * CPU is the tool's process over its whole life (JVM start and JIT included), from bash's `times`
 * for the finished child: an upper bound on the client's own cost per record.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { attempt, type Failed } from './attempt.js';
import { createCaseTopics, registerFeatureSchema, removeCaseTopics, type BenchClients } from './kafka.js';
import { round } from './stats.js';
import type { Workload } from './workload.js';

export interface JavaProducerResult {
  records: number;
  records_per_s: number;
  mb_per_s: number;
  avg_latency_ms: number;
  p50_ms: number;
  p99_ms: number;
  max_latency_ms: number;
  /** The same after the first fifth of the records (the tool's --warmup-records), when it printed them. */
  steady_records_per_s: number | null;
}

export interface JavaConsumerResult {
  records: number;
  /** From the first fetch to the last record (the tool's fetch.nMsg.sec): group join left out, as in a drain. */
  records_per_s: number;
  /** From the tool's start, group join included (nMsg.sec). */
  records_per_s_with_join: number;
  mb_per_s: number;
  rebalance_ms: number;
  fetch_ms: number;
}

export interface ToolCpu {
  /** user + system CPU seconds of the tool's process, JVM start included. */
  cpu_seconds: number;
  wall_seconds: number;
  /** cpu_seconds / wall_seconds. */
  cores: number;
  /** cpu_seconds / records * 1e6. */
  cpu_us_per_record: number;
}

export interface JavaReference {
  /** Kafka release of the tools (the broker's where the bench knows it). */
  version: string;
  record_bytes: number;
  keys: number;
  producer: (JavaProducerResult & ToolCpu) | Failed;
  consumer: (JavaConsumerResult & ToolCpu) | Failed;
}

/** Distinct keys the producer tool draws from: as many entities as the bench's events have (workload.ts). */
const KEYS = 1_000;
/** The most one tool may run, JVM start included, before it is stopped and reported as failed. */
const TOOL_TIMEOUT_MS = 180_000;
/** Events encoded to find the model's event size. */
const SIZE_SAMPLE = 200;

/** `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, P ms 50th, ..., P ms 99th, ...` */
const PRODUCER_LINE =
  /^(\d+) (steady state )?records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th/;

export function parseProducerOutput(text: string): JavaProducerResult {
  let total: JavaProducerResult | undefined;
  let steady: number | null = null;
  for (const line of text.split('\n')) {
    const match = PRODUCER_LINE.exec(line.trim());
    if (match === null) continue;
    if (match[2] !== undefined) {
      steady = Math.round(Number(match[3]));
      continue;
    }
    total = {
      records: Number(match[1]),
      records_per_s: Math.round(Number(match[3])),
      mb_per_s: Number(match[4]),
      avg_latency_ms: Number(match[5]),
      max_latency_ms: Number(match[6]),
      p50_ms: Number(match[7]),
      p99_ms: Number(match[9]),
      steady_records_per_s: null,
    };
  }
  if (total === undefined) throw new Error(`no summary line ("N records sent, ...") in:\n${tail(text)}`);
  return { ...total, steady_records_per_s: steady };
}

/** The CSV line under `start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, ...`. */
export function parseConsumerOutput(text: string): JavaConsumerResult {
  const lines = text.split('\n').map((line) => line.trim());
  const at = lines.findIndex((line) => line.startsWith('start.time,'));
  if (at < 0 || lines[at + 1] === undefined)
    throw new Error(`no "start.time, ..." header and line under it in:\n${tail(text)}`);
  const header = lines[at]!.split(',').map((name) => name.trim());
  const values = lines[at + 1]!.split(',').map((value) => value.trim());
  const field = (name: string): number => {
    const value = Number(values[header.indexOf(name)]);
    if (!Number.isFinite(value))
      throw new Error(`consumer perf: no number for ${name} in "${lines[at + 1]}"`);
    return value;
  };
  return {
    records: field('data.consumed.in.nMsg'),
    records_per_s: Math.round(field('fetch.nMsg.sec')),
    records_per_s_with_join: Math.round(field('nMsg.sec')),
    mb_per_s: round(field('fetch.MB.sec'), 2),
    rebalance_ms: field('rebalance.time.ms'),
    fetch_ms: field('fetch.time.ms'),
  };
}

/** `times` in bash: its second line is the user and system time of the shell's finished children. */
export function parseChildTimes(text: string): number | undefined {
  const lines = text
    .trim()
    .split('\n')
    .filter((line) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(line.trim()));
  const children = lines.at(-1);
  if (children === undefined || lines.length < 2) return undefined;
  let seconds = 0;
  for (const [, minutes, rest] of children.trim().matchAll(/(\d+)m([\d.]+)s/g)) {
    seconds += Number(minutes) * 60 + Number(rest);
  }
  return seconds;
}

/** The tools' class path (fetched with mvn on first use), or a thrown error saying why not. */
export async function javaToolsClassPath(version: string): Promise<string> {
  const { code, stdout, stderr } = await run('bash', [join('bench', 'java-tools.sh'), version], 600_000);
  if (code !== 0) throw new Error(`bench/java-tools.sh ${version} failed (exit ${code}):\n${tail(stderr)}`);
  return stdout.trim().split('\n').at(-1)!;
}

export async function runJavaReference(
  clients: BenchClients,
  workload: Workload,
  version: string,
  records: number,
  say: (line: string) => void,
): Promise<JavaReference> {
  const classPath = await javaToolsClassPath(version);
  const topics = await createCaseTopics(clients.kafka, `${workload.model}-java`);
  const group = `${topics.group}-java`;
  try {
    const recordBytes = await eventBytes(clients, workload, topics.requests);
    const brokers = clients.endpoints.brokers;
    say(`  producer: ${records} records of ${recordBytes} B, keys from ${KEYS}, acks=all`);
    const producer = await attempt(async () => {
      const tool = await runTool(classPath, 'org.apache.kafka.tools.ProducerPerformance', [
        '--bootstrap-server',
        brokers,
        '--topic',
        topics.requests,
        '--num-records',
        String(records),
        '--warmup-records',
        String(Math.floor(records / 5)),
        '--record-size',
        String(recordBytes),
        '--throughput',
        '-1',
        '--key-distribution',
        'random',
        '--record-key-range',
        String(KEYS),
        '--command-property',
        'acks=all',
        'client.id=streamscore-bench-java',
      ]);
      const result = parseProducerOutput(tool.stdout);
      return { ...result, ...toolCpu(tool, result.records) };
    });
    say(`  consumer: the same ${records} records`);
    const consumer =
      'error' in producer
        ? { error: 'skipped: the producer tool wrote no records' }
        : await attempt(async () => {
            const tool = await runTool(classPath, 'org.apache.kafka.tools.ConsumerPerformance', [
              '--bootstrap-server',
              brokers,
              '--topic',
              topics.requests,
              '--num-records',
              String(records),
              '--group',
              group,
              '--timeout',
              '30000',
              '--command-property',
              'client.id=streamscore-bench-java',
            ]);
            const result = parseConsumerOutput(tool.stdout);
            return { ...result, ...toolCpu(tool, result.records) };
          });
    return { version, record_bytes: recordBytes, keys: KEYS, producer, consumer };
  } finally {
    await removeCaseTopics(clients.kafka, topics, [group]);
  }
}

/** The mean size of the model's events as the bench writes them (Avro with Confluent framing). */
async function eventBytes(clients: BenchClients, workload: Workload, topic: string): Promise<number> {
  const schemaId = await registerFeatureSchema(clients, topic);
  const generator = workload.generator(3, topic);
  let bytes = 0;
  for (let i = 0; i < SIZE_SAMPLE; i += 1) {
    bytes += (await clients.registry.encode(schemaId, generator.next())).length;
  }
  return Math.round(bytes / SIZE_SAMPLE);
}

interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wallSeconds: number;
  cpuSeconds: number | undefined;
}

function toolCpu(tool: ToolRun, records: number): ToolCpu {
  if (tool.cpuSeconds === undefined) throw new Error(`no CPU times from bash's times:\n${tail(tool.stderr)}`);
  return {
    cpu_seconds: round(tool.cpuSeconds, 2),
    wall_seconds: round(tool.wallSeconds, 2),
    cores: round(tool.cpuSeconds / tool.wallSeconds, 2),
    cpu_us_per_record: round((tool.cpuSeconds / records) * 1e6, 1),
  };
}

/** One tool in a JVM under bash, whose `times` then reports the JVM's CPU on stderr's last lines. */
async function runTool(classPath: string, mainClass: string, args: string[]): Promise<ToolRun> {
  const java = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const started = performance.now();
  const script = '"$@"; status=$?; times >&2; exit $status';
  const result = await run(
    'bash',
    [
      '-c',
      script,
      'java-tool',
      java,
      '-Xmx512m',
      '-Dlog4j2.level=WARN',
      '-cp',
      classPath,
      mainClass,
      ...args,
    ],
    TOOL_TIMEOUT_MS,
  );
  const wallSeconds = (performance.now() - started) / 1_000;
  if (result.code !== 0)
    throw new Error(
      `${mainClass} exited with ${result.code}:\n${tail(result.stdout)}\n${tail(result.stderr)}`,
    );
  return { ...result, wallSeconds, cpuSeconds: parseChildTimes(result.stderr) };
}

function run(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout stops the JVM under bash too.
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr
      .setEncoding('utf8')
      .on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-20_000)));
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is already gone: nothing left to stop.
      }
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === null ? null : -1), stdout, stderr });
    });
  });
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-15).join('\n');
}
