import { StreamscoreError, describeError } from '../errors.js';
import type { BatchOutputs, ModelRunner } from './runner.js';

/** The outcome of scoring a batch: outputs for every row, and the rows that failed and why. */
export interface IsolatedOutputs {
  /** Output name -> one value per row of the batch (undefined meaning for failed rows). */
  outputs: BatchOutputs;
  /** Row index -> why that row could not be scored (its own data made the model fail). */
  failed: Map<number, string>;
}

export type RetryReason = 'bisect' | 'restart';

/** A version failed on a batch and on a probe batch of zeros: the version is at fault, not the data. */
export class VersionFailingError extends StreamscoreError {
  constructor(model: string, version: string, cause: unknown) {
    super(
      'INFERENCE_FAILED',
      `${model}/${version} fails on every batch, a probe batch of zeros included: ${describeError(cause)}`,
      { cause, retriable: true, context: { model, version } },
    );
  }
}

/**
 * Scores `count` rows in one runtime call, and when that call fails, finds the rows at fault
 * instead of failing them all: a failure is first checked against a probe batch of zeros the same
 * size (a version that fails that is failing as a whole: VersionFailingError, and no row is blamed),
 * then the batch is split in halves until each failing row stands alone. A worker thread that died
 * is restarted by the session and the same rows are tried once more before they are suspected.
 * Outputs that are not finite are failures of their row, under the same probe. Errors that are not
 * the runtime's (a programming error) are thrown as they are.
 *
 * `build(rows)` makes a fresh matrix of the given rows (each runtime call takes its matrix over).
 */
export async function scoreIsolating(
  runner: ModelRunner,
  count: number,
  build: (rows: readonly number[]) => Float32Array,
  onRetry: (why: RetryReason) => void = () => undefined,
): Promise<IsolatedOutputs> {
  const { name: model, version } = runner.metadata;
  const failed = new Map<number, string>();
  let probed = false;

  const suspect = async (cause: unknown, rows: number): Promise<void> => {
    if (probed) return;
    probed = true;
    if (!(await runner.probe(rows))) throw new VersionFailingError(model, version, cause);
  };

  const run = async (rows: readonly number[]): Promise<BatchOutputs> => {
    try {
      return await runner.score(build(rows), rows.length);
    } catch (error) {
      if (!isRuntimeFailure(error) || !(error as StreamscoreError).retriable) throw error;
      onRetry('restart');
      return runner.score(build(rows), rows.length);
    }
  };

  type Outcome = { ok: true; result: BatchOutputs } | { ok: false; error: unknown };
  const tryRows = async (rows: readonly number[]): Promise<Outcome> => {
    try {
      return { ok: true, result: await run(rows) };
    } catch (error) {
      if (!isRuntimeFailure(error)) throw error;
      return { ok: false, error };
    }
  };

  const attempt = async (rows: readonly number[], outcome: Outcome): Promise<void> => {
    if (!outcome.ok) {
      await suspect(outcome.error, rows.length);
      if (rows.length === 1) {
        failed.set(rows[0]!, describeError(outcome.error));
        return;
      }
      const half = Math.ceil(rows.length / 2);
      for (const part of [rows.slice(0, half), rows.slice(half)]) {
        onRetry('bisect');
        await attempt(part, await tryRows(part));
      }
      return;
    }
    const bad: [number, string][] = [];
    for (let i = 0; i < rows.length; i += 1) {
      for (const [name, values] of outcome.result) {
        const value = values[i]!;
        if (!Number.isFinite(value)) {
          bad.push([rows[i]!, `output "${name}" is ${value}`]);
          break;
        }
        outputs.get(name)![rows[i]!] = value;
      }
    }
    if (bad.length > 0) {
      await suspect(
        new Error(`${bad.length} of ${rows.length} rows gave outputs that are not finite (${bad[0]![1]})`),
        rows.length,
      );
      for (const [row, why] of bad) failed.set(row, why);
    }
  };

  const all = Array.from({ length: count }, (_, row) => row);
  const first = await tryRows(all);
  // The common case: one call, every output finite; its columns are the batch's outputs as they are.
  if (first.ok && [...first.result.values()].every((values) => values.every(Number.isFinite))) {
    return { outputs: first.result, failed };
  }
  // Isolating: outputs are gathered row by row from the calls that succeed.
  const outputs: BatchOutputs = new Map();
  for (const output of runner.metadata.outputs) outputs.set(output.name, new Float64Array(count));
  await attempt(all, first);
  return { outputs, failed };
}

function isRuntimeFailure(error: unknown): boolean {
  return error instanceof StreamscoreError && error.code === 'INFERENCE_FAILED';
}
