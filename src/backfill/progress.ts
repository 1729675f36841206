/**
 * A backfill's progress: on a terminal, a bar (cli-progress) with events done of the total, the
 * rate and the time left; otherwise one JSON line every few seconds through the log, for whatever
 * collects the job's output.
 */
import cliProgress from 'cli-progress';
import type { Logger } from '../telemetry/logger.js';

export interface ProgressSample {
  /** Offsets of the job's ranges behind committed positions, or finished here. */
  done: number;
  total: number;
  /** Events this process scored and dead-lettered. */
  scored: number;
  deadLettered: number;
  partitions: number;
  finishedPartitions: number;
}

export interface ProgressView {
  update(sample: ProgressSample): void;
  stop(): void;
}

/** Rounded to one decimal, for lines people read. */
function tenths(value: number): number {
  return Math.round(value * 10) / 10;
}

export function progressView(options: {
  job: string;
  logger: Logger;
  terminal: boolean;
  /** Between JSON lines when not on a terminal, ms. */
  everyMs?: number;
}): ProgressView {
  const started = performance.now();
  const rate = (scored: number) => scored / Math.max(0.001, (performance.now() - started) / 1_000);
  if (!options.terminal) {
    const everyMs = options.everyMs ?? 5_000;
    let lastAt = Number.NEGATIVE_INFINITY;
    return {
      update(sample) {
        const now = performance.now();
        if (now - lastAt < everyMs) return;
        lastAt = now;
        const perSecond = rate(sample.scored + sample.deadLettered);
        const left = Math.max(0, sample.total - sample.done);
        options.logger.info(
          {
            job: options.job,
            ...sample,
            eventsPerSecond: Math.round(perSecond),
            etaSeconds: perSecond > 0 ? tenths(left / perSecond) : null,
          },
          'backfill progress',
        );
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      format: `${options.job} [{bar}] {percentage}% | {value}/{total} events | {speed} events/s | ETA {eta_formatted} | partitions {finishedPartitions}/{partitions}`,
      etaBuffer: 50,
      hideCursor: true,
      stopOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let begun = false;
  return {
    update(sample) {
      const payload = {
        speed: Math.round(rate(sample.scored + sample.deadLettered)),
        partitions: sample.partitions,
        finishedPartitions: sample.finishedPartitions,
      };
      if (!begun) {
        begun = true;
        bar.start(sample.total, sample.done, payload);
      }
      bar.setTotal(sample.total);
      bar.update(Math.min(sample.done, sample.total), payload);
    },
    stop() {
      if (begun) bar.stop();
    },
  };
}
