/**
 * CPU used by one process and by the whole machine between two moments, from /proc. It tells
 * whether a process was limited by its own main thread (near 1 core) or starved by the rest of
 * the machine (machine near all cores busy while the process got less than one).
 */
import { readFile } from 'node:fs/promises';

/** /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second on every arch it ships. */
const TICKS_PER_SECOND = 100;

export interface CpuSnapshot {
  at: number;
  processTicks: number | undefined;
  machineBusyTicks: number;
}

export interface CpuUse {
  /** CPU seconds per wall second: 1 = one core fully busy. */
  process_cores: number | null;
  machine_busy_cores: number;
}

export async function cpuSnapshot(pid: number | undefined): Promise<CpuSnapshot> {
  const machine = await readFile('/proc/stat', 'utf8');
  // cpu user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait.
  const fields = machine.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const busy = fields.reduce((sum, value, i) => (i === 3 || i === 4 ? sum : sum + value), 0);
  let processTicks: number | undefined;
  if (pid !== undefined) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      processTicks = Number(rest[11]) + Number(rest[12]); // utime + stime
    } catch {
      processTicks = undefined;
    }
  }
  return { at: Date.now(), processTicks, machineBusyTicks: busy };
}

export function cpuBetween(from: CpuSnapshot, to: CpuSnapshot): CpuUse {
  const seconds = Math.max(0.001, (to.at - from.at) / 1_000);
  const cores = (ticks: number) => Math.round((ticks / TICKS_PER_SECOND / seconds) * 100) / 100;
  return {
    process_cores:
      from.processTicks === undefined || to.processTicks === undefined
        ? null
        : cores(to.processTicks - from.processTicks),
    machine_busy_cores: cores(to.machineBusyTicks - from.machineBusyTicks),
  };
}

/**
 * Microseconds of the process's CPU per event: cores used / events per second * 1e6 (1 core at
 * 50,000 events/s is 20 µs an event). Null where the process's CPU could not be read.
 */
export function cpuMicrosPerEvent(use: CpuUse, eventsPerSecond: number): number | null {
  if (use.process_cores === null || !(eventsPerSecond > 0)) return null;
  return Math.round((use.process_cores / eventsPerSecond) * 1e6 * 10) / 10;
}
