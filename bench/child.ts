/**
 * A Node.js child process under test (serve, or the transport relay) whose stdout is pino JSON
 * lines. Both log `joined consumer group` with pino's `time` (epoch ms), which is where the bench
 * starts the clock of a drain; the process's peak resident memory is read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface ChildOptions {
  /** Script path relative to the repository root, e.g. dist/src/cli.js. */
  script: string;
  args: string[];
  env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
}

export interface LogLine {
  msg?: unknown;
  time?: unknown;
  level?: unknown;
  [field: string]: unknown;
}

export class ChildUnderTest {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderr = '';

  constructor(options: ChildOptions) {
    this.child = spawn(process.execPath, [...(options.nodeFlags ?? []), options.script, ...options.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', KAFKAJS_NO_PARTITIONER_WARNING: '1', ...options.env },
    });
    let buffered = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) {
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ msg: line });
        }
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      // Keep the tail only: a crash loop must not grow the bench's memory.
      this.#stderr = (this.#stderr + chunk).slice(-8_000);
    });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Epoch ms of the first `joined consumer group` line; rejects if the process exits or times out. */
  async joined(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const line = this.lines.find((l) => l.msg === 'joined consumer group');
      if (line !== undefined) return typeof line.time === 'number' ? line.time : Date.now();
      if (!this.running) break;
      await sleep(20);
    }
    const why = this.running
      ? `did not join its group within ${timeoutMs} ms`
      : `exited (${this.child.exitCode ?? this.child.signalCode}) before joining its group`;
    throw new Error(`${this.describe()} ${why}:\n${this.output()}`);
  }

  /** Port of serve's metrics server, from its `metrics on` line. */
  metricsPort(): number | undefined {
    const line = this.lines.find((l) => typeof l.port === 'number' && String(l.msg).startsWith('metrics on'));
    return line?.port as number | undefined;
  }

  async metrics(): Promise<string | undefined> {
    const port = this.metricsPort();
    if (port === undefined) return undefined;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return response.text();
  }

  /** Peak resident set size so far (VmHWM), in MB; undefined once the process is gone. */
  async peakRssMb(): Promise<number | undefined> {
    const pid = this.child.pid;
    if (pid === undefined || !this.running) return undefined;
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
      return match ? Number(match[1]) / 1_024 : undefined;
    } catch {
      return undefined;
    }
  }

  /** Lines at warn level or worse (pino: 40 and up), for the report's notes. */
  problems(): LogLine[] {
    return this.lines.filter((l) => typeof l.level === 'number' && l.level >= 40);
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
  async stop(graceMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.running) this.child.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  output(): string {
    const tail = this.lines.slice(-40).map((l) => JSON.stringify(l));
    return `${tail.join('\n')}\n${this.#stderr}`;
  }

  describe(): string {
    return `pid ${this.child.pid} (${this.child.spawnargs.slice(1).join(' ')})`;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
