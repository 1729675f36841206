/**
 * Model ceiling: ONNX Runtime in this process, no Kafka, through the code serve runs per batch
 * (buildMatrix from validated feature maps, then ModelRunner.score).
 */
import { ModelRunner } from '../src/inference/runner.js';
import { buildMatrix } from '../src/inference/tensor.js';
import type { Workload } from './workload.js';

export const BATCH_SIZES = [1, 8, 32, 128, 512, 2048] as const;
export const THREAD_COUNTS = [1, 2] as const;

export interface ModelPoint {
  threads: number;
  batch: number;
  /** buildMatrix + score, as serve pays per batch. */
  rows_per_s: number;
  /** score alone, on a matrix already built: the runtime's own rate. */
  score_only_rows_per_s: number;
  calls: number;
}

export interface ModelCeiling {
  points: ModelPoint[];
  best: ModelPoint;
}

/** Runs a few calls first so allocation and JIT warm-up stay out of the timing. */
const WARMUP_CALLS = 5;

export async function measureModelCeiling(
  workload: Workload,
  secondsPerPoint: number,
): Promise<ModelCeiling> {
  const largest = BATCH_SIZES[BATCH_SIZES.length - 1]!;
  const generator = workload.generator(7, 'ceiling');
  const rows = Array.from({ length: largest }, () => generator.next().features);
  const points: ModelPoint[] = [];
  for (const threads of THREAD_COUNTS) {
    const runner = await ModelRunner.load(workload.loaded, { executionProvider: 'cpu', threads });
    try {
      for (const batch of BATCH_SIZES)
        points.push(await measurePoint(runner, rows.slice(0, batch), threads, secondsPerPoint));
    } finally {
      await runner.release();
    }
  }
  const best = points.reduce((a, b) => (b.rows_per_s > a.rows_per_s ? b : a));
  return { points, best };
}

async function measurePoint(
  runner: ModelRunner,
  rows: Record<string, number>[],
  threads: number,
  seconds: number,
): Promise<ModelPoint> {
  const batch = rows.length;
  for (let i = 0; i < WARMUP_CALLS; i += 1) await runner.score(buildMatrix(rows, runner.featureNames), batch);
  let buildMs = 0;
  let scoreMs = 0;
  let calls = 0;
  const deadline = performance.now() + seconds * 1_000;
  while (performance.now() < deadline) {
    const t0 = performance.now();
    const matrix = buildMatrix(rows, runner.featureNames);
    const t1 = performance.now();
    await runner.score(matrix, batch);
    const t2 = performance.now();
    buildMs += t1 - t0;
    scoreMs += t2 - t1;
    calls += 1;
  }
  const total = calls * batch;
  return {
    threads,
    batch,
    rows_per_s: Math.round((total / (buildMs + scoreMs)) * 1_000),
    score_only_rows_per_s: Math.round((total / scoreMs) * 1_000),
    calls,
  };
}
