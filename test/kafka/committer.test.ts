import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { Committer } from '../../src/kafka/committer.js';
import { OffsetLedger, type TopicPartitionOffset } from '../../src/kafka/offsets.js';
import type { Logger } from '../../src/telemetry/logger.js';

const INTERVAL_MS = 1_000;
/** A wall clock far from 0, as in production, so the first commit is not held back by the interval. */
const NOW = 1_700_000_000_000;

/** A commit function whose calls stay pending until the test settles them, in the order made. */
class HeldCommits {
  readonly calls: TopicPartitionOffset[][] = [];
  readonly #pending: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  #inFlight = 0;
  maxInFlight = 0;

  readonly commit = (offsets: TopicPartitionOffset[]): Promise<void> => {
    this.calls.push(offsets);
    this.#inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
    return new Promise<void>((resolve, reject) => this.#pending.push({ resolve, reject })).finally(
      () => (this.#inFlight -= 1),
    );
  };

  ack(): void {
    this.#pending.shift()!.resolve();
  }

  fail(error: unknown): void {
    this.#pending.shift()!.reject(error);
  }
}

interface LogLine {
  level: 'warn' | 'info';
  msg: string;
}

/** Only the levels the committer speaks at; anything else would be a surprise worth a crash. */
function capturingLogger(lines: LogLine[]): Logger {
  return {
    warn: (_fields: object, msg: string) => lines.push({ level: 'warn', msg }),
    info: (_fields: object, msg: string) => lines.push({ level: 'info', msg }),
  } as unknown as Logger;
}

function setup() {
  const ledger = new OffsetLedger();
  const commits = new HeldCommits();
  const logged: LogLine[] = [];
  const results: boolean[] = [];
  const committer = new Committer({
    ledger,
    commit: commits.commit,
    intervalMs: INTERVAL_MS,
    logger: capturingLogger(logged),
    onResult: (ok) => results.push(ok),
  });
  /** Takes offsets in on a partition and marks them finished, as a published batch does. */
  const finish = (partition: number, ...offsets: string[]) => {
    for (const offset of offsets) ledger.lease('t', partition).track(offset).done = true;
  };
  return { ledger, commits, logged, results, committer, finish };
}

/** Lets the promise chains behind a settled commit run (setImmediate is not faked here). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Moves the fake clock and lets whatever the fired timers started run on. */
async function advance(ms: number): Promise<void> {
  mock.timers.tick(ms);
  await settle();
}

describe('Committer', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: NOW }));
  afterEach(() => mock.timers.reset());

  it('commits at most once per interval, however often it is asked', async () => {
    const { commits, committer, finish } = setup();
    finish(0, '0');
    finish(1, '40');
    committer.schedule();
    committer.schedule();
    await advance(0);
    assert.deepEqual(commits.calls, [
      [
        { topic: 't', partition: 0, offset: '1' },
        { topic: 't', partition: 1, offset: '41' },
      ],
    ]);
    commits.ack();
    await settle();

    for (let offset = 1; offset <= 5; offset += 1) {
      finish(0, String(offset));
      committer.schedule();
    }
    await advance(INTERVAL_MS - 1);
    assert.equal(commits.calls.length, 1, 'the interval since the last commit has not passed yet');
    await advance(1);
    assert.deepEqual(commits.calls.slice(1), [[{ topic: 't', partition: 0, offset: '6' }]]);
    commits.ack();
    await advance(INTERVAL_MS * 5);
    assert.equal(commits.calls.length, 2, 'five schedule() calls make one commit');
  });

  it('does not commit when no offset moved since the last commit', async () => {
    const { ledger, commits, committer, finish } = setup();
    ledger.lease('t', 0).track('0');
    committer.schedule();
    await advance(INTERVAL_MS * 3);
    assert.deepEqual(commits.calls, [], 'offset 0 is still in flight: nothing is finished');

    finish(1, '7');
    committer.schedule();
    await advance(0);
    assert.equal(commits.calls.length, 1);
    commits.ack();
    await settle();
    committer.schedule();
    await advance(INTERVAL_MS * 3);
    assert.equal(commits.calls.length, 1, 'partition 1 was committed at 8 and has not moved');
  });

  it('waits for a commit in flight before starting the next, instead of overlapping it', async () => {
    const { commits, committer, finish } = setup();
    finish(0, '0');
    committer.schedule();
    await advance(0);
    assert.equal(commits.calls.length, 1);

    finish(0, '1');
    committer.schedule();
    await advance(INTERVAL_MS * 10);
    assert.equal(commits.calls.length, 1, 'the first commit is still unanswered');

    commits.ack();
    await settle();
    await advance(0);
    assert.deepEqual(commits.calls[1], [{ topic: 't', partition: 0, offset: '2' }]);
    assert.equal(commits.maxInFlight, 1);
    commits.ack();
    await settle();
  });

  it('logs a failing streak once, and the next commit carries the offsets that failed', async () => {
    const { commits, logged, results, committer, finish } = setup();
    finish(0, '0', '1');
    committer.schedule();
    await advance(0);
    commits.fail(new Error('REBALANCE_IN_PROGRESS'));
    await settle();
    assert.deepEqual(results, [false]);
    assert.deepEqual(
      logged.map((line) => line.level),
      ['warn'],
    );

    finish(1, '5');
    committer.schedule();
    await advance(INTERVAL_MS);
    assert.deepEqual(
      commits.calls[1],
      [
        { topic: 't', partition: 0, offset: '2' },
        { topic: 't', partition: 1, offset: '6' },
      ],
      'partition 0 was never committed, so it is committed again',
    );
    commits.fail(new Error('REBALANCE_IN_PROGRESS'));
    await settle();
    assert.deepEqual(results, [false, false]);
    assert.equal(logged.length, 1, 'a second failure in the same streak is not logged');

    committer.schedule();
    await advance(INTERVAL_MS);
    assert.equal(commits.calls.length, 3);
    commits.ack();
    await settle();
    assert.deepEqual(results, [false, false, true]);
    assert.deepEqual(
      logged.map((line) => line.level),
      ['warn', 'info'],
    );

    finish(0, '2');
    committer.schedule();
    await advance(INTERVAL_MS);
    assert.deepEqual(commits.calls[3], [{ topic: 't', partition: 0, offset: '3' }]);
    commits.fail(new Error('NOT_COORDINATOR'));
    await settle();
    assert.deepEqual(
      logged.map((line) => line.level),
      ['warn', 'info', 'warn'],
      'a new streak is logged again',
    );
  });

  it('close() commits what is finished now, after the commit in flight, and ignores later schedule()', async () => {
    const { commits, committer, finish } = setup();
    finish(0, '0');
    committer.schedule();
    await advance(0);
    finish(0, '1', '2');
    committer.schedule();

    let closed = false;
    const closing = committer.close().then(() => (closed = true));
    await settle();
    assert.equal(commits.calls.length, 1, 'the last commit waits for the one in flight');
    commits.ack();
    await settle();
    assert.deepEqual(
      commits.calls[1],
      [{ topic: 't', partition: 0, offset: '3' }],
      'committed without waiting for the interval',
    );
    assert.equal(closed, false, 'close() waits for its commit to be answered');
    commits.ack();
    await closing;

    finish(0, '3');
    committer.schedule();
    await advance(INTERVAL_MS * 5);
    assert.equal(commits.calls.length, 2);
  });

  it('abandon() stops without a last commit', async () => {
    const { commits, committer, finish } = setup();
    finish(0, '0');
    committer.schedule();
    committer.abandon();
    await advance(INTERVAL_MS * 5);
    finish(0, '1');
    committer.schedule();
    await advance(INTERVAL_MS * 5);
    assert.deepEqual(commits.calls, []);
  });
});
