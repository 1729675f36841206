import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { progressView } from '../../src/backfill/progress.js';
import type { Logger } from '../../src/telemetry/logger.js';

describe('backfill progress', () => {
  it('off a terminal, writes one JSON line per interval with the rate and the time left', () => {
    const lines: { fields: Record<string, unknown>; msg: string }[] = [];
    const logger = {
      info: (fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg }),
    } as unknown as Logger;
    const view = progressView({ job: 'j', logger, terminal: false, everyMs: 60_000 });
    const sample = {
      done: 500,
      total: 2_000,
      scored: 480,
      deadLettered: 20,
      partitions: 4,
      finishedPartitions: 1,
    };
    view.update(sample);
    view.update({ ...sample, done: 900 });
    view.stop();
    assert.equal(lines.length, 1, 'at most one line per interval');
    const { fields, msg } = lines[0]!;
    assert.equal(msg, 'backfill progress');
    assert.equal(fields.job, 'j');
    assert.equal(fields.done, 500);
    assert.equal(fields.total, 2_000);
    assert.equal(fields.finishedPartitions, 1);
    const rate = fields.eventsPerSecond as number;
    assert.ok(rate > 0, 'a rate from the events this process finished');
    assert.ok(Math.abs((fields.etaSeconds as number) - 1_500 / rate) < 0.1 + 1_500 / rate / 100);
  });
});
