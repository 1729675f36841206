import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommitAfterAcks, nextOffsets, type NextOffset } from '../../bench/relay/commits.js';

const at = (partition: number, offset: bigint): NextOffset => ({
  topic: 't',
  partition,
  offset,
  leaderEpoch: 0,
});

/** A commit function that records each request and finishes when the test says. */
function recorder() {
  const calls: NextOffset[][] = [];
  const finish: (() => void)[] = [];
  let running = 0;
  let most = 0;
  const commit = (offsets: NextOffset[]) => {
    calls.push(offsets);
    running += 1;
    most = Math.max(most, running);
    return new Promise<void>((resolve) =>
      finish.push(() => {
        running -= 1;
        resolve();
      }),
    );
  };
  return { calls, finish, commit, most: () => most };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('CommitAfterAcks (bench relays)', () => {
  it('commits an offset only once every call sent before it is acknowledged', async () => {
    const { calls, finish, commit } = recorder();
    const commits = new CommitAfterAcks(commit, (error) => assert.fail(String(error)));
    const first = commits.sent([at(0, 10n)]);
    const second = commits.sent([at(0, 20n), at(1, 5n)]);
    second();
    await tick();
    assert.equal(calls.length, 0, 'the later call alone commits nothing');
    first();
    await tick();
    assert.deepEqual(calls, [[at(0, 20n), at(1, 5n)]]);
    finish.shift()!();
    await commits.idle();
  });

  it('runs one commit at a time and carries what was acknowledged meanwhile in the next', async () => {
    const { calls, finish, commit, most } = recorder();
    const commits = new CommitAfterAcks(commit, (error) => assert.fail(String(error)));
    commits.sent([at(0, 1n)])();
    await tick();
    commits.sent([at(0, 2n)])();
    commits.sent([at(0, 3n), at(2, 7n)])();
    await tick();
    assert.equal(calls.length, 1);
    finish.shift()!();
    await tick();
    assert.deepEqual(calls[1], [at(0, 3n), at(2, 7n)]);
    finish.shift()!();
    await commits.idle();
    assert.equal(most(), 1);
    assert.equal(commits.pending, 0);
  });

  it('hands a failed commit to onFailure once and commits nothing after it', async () => {
    const failures: unknown[] = [];
    let calls = 0;
    const commits = new CommitAfterAcks(
      () => {
        calls += 1;
        return Promise.reject(new Error('coordinator moved'));
      },
      (error) => failures.push(error),
    );
    commits.sent([at(0, 1n)])();
    await commits.idle();
    commits.sent([at(0, 2n)])();
    await commits.idle();
    assert.equal(calls, 1);
    assert.equal(failures.length, 1);
    assert.match(String(failures[0]), /coordinator moved/);
  });
});

describe('nextOffsets', () => {
  it('gives each partition the offset after its last record, with that record epoch', () => {
    const records = [
      { topic: 't', partition: 0, offset: 4n, leaderEpoch: 1 },
      { topic: 't', partition: 1, offset: 9n, leaderEpoch: 1 },
      { topic: 't', partition: 0, offset: 5n, leaderEpoch: 2 },
      { topic: 'u', partition: 0, offset: 1n },
    ];
    assert.deepEqual(nextOffsets(records), [
      { topic: 't', partition: 0, offset: 6n, leaderEpoch: 2 },
      { topic: 't', partition: 1, offset: 10n, leaderEpoch: 1 },
      { topic: 'u', partition: 0, offset: 2n, leaderEpoch: -1 },
    ]);
  });
});
