import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseInstant, parseOffsets, parseRange, rangeSize, resolveRange } from '../../src/backfill/range.js';
import { isStreamscoreError } from '../../src/errors.js';

const usageError = (pattern: RegExp) => (error: unknown) =>
  isStreamscoreError(error) && error.code === 'USAGE' && pattern.test(error.message);

describe('backfill range: parsing', () => {
  it('reads ISO-8601 with a zone, a bare date as midnight UTC, and epoch milliseconds', () => {
    assert.equal(parseInstant('2026-11-01T00:00:00Z', '--from'), Date.UTC(2026, 10, 1));
    assert.equal(parseInstant('2026-11-01T02:30:00+02:00', '--from'), Date.UTC(2026, 10, 1, 0, 30));
    assert.equal(parseInstant('2026-11-01', '--from'), Date.UTC(2026, 10, 1));
    assert.equal(parseInstant('1793577600000', '--to'), 1_793_577_600_000);
  });

  it('refuses a time without a zone, a malformed one, and one past what dates hold', () => {
    for (const text of [
      '2026-11-01T00:00:00',
      'yesterday',
      '2026-13-45T00:00:00Z',
      '99999999999999999',
      '-5',
      '',
    ]) {
      assert.throws(() => parseInstant(text, '--from'), usageError(/--from: .* is not a time/), text);
    }
  });

  it('reads partition offsets and refuses repeats and junk', () => {
    assert.deepEqual(
      parseOffsets('0:1200, 1:980,2:0', '--from-offsets'),
      new Map([
        [0, 1200n],
        [1, 980n],
        [2, 0n],
      ]),
    );
    assert.throws(() => parseOffsets('0:1,0:2', '--from-offsets'), usageError(/partition 0 is given twice/));
    for (const text of ['0=5', '0:', ':5', '0:-1', 'a:1', '0:1,']) {
      assert.throws(() => parseOffsets(text, '--from-offsets'), usageError(/is not PARTITION:OFFSET/), text);
    }
  });

  it('needs a start, takes now as the default end, and refuses from after to or two of a kind', () => {
    assert.throws(() => parseRange({}), usageError(/needs where to start/));
    assert.deepEqual(parseRange({ from: 'beginning' }), { from: { kind: 'beginning' }, to: { kind: 'now' } });
    assert.throws(
      () => parseRange({ from: '2026-11-08T00:00:00Z', to: '2026-11-01T00:00:00Z' }),
      usageError(/--from 2026-11-08T00:00:00.000Z is after --to 2026-11-01T00:00:00.000Z/),
    );
    assert.throws(() => parseRange({ from: 'beginning', fromOffsets: '0:1' }), usageError(/not both/));
    assert.throws(
      () => parseRange({ from: 'beginning', to: 'now', toOffsets: '0:1' }),
      usageError(/not both/),
    );
    assert.throws(() => parseRange({ from: 'now' }), usageError(/--from: "now" is not a time/));
  });
});

describe('backfill range: resolving against the topic', () => {
  const partitions = [
    { partition: 0, low: 0n, high: 100n },
    { partition: 1, low: 40n, high: 60n },
    { partition: 2, low: 10n, high: 10n },
  ];

  it('maps times through the offset-for-time lookup, [from, to), within what each partition holds', async () => {
    const asked: number[] = [];
    const ranges = await resolveRange(
      { from: { kind: 'time', ms: 1_000 }, to: { kind: 'time', ms: 2_000 } },
      partitions,
      (ms) => {
        asked.push(ms);
        // A time past the last record is the partition's end, as the broker answers.
        return Promise.resolve(
          new Map(
            ms === 1_000
              ? [
                  [0, 20n],
                  [1, 45n],
                  [2, 10n],
                ]
              : [
                  [0, 70n],
                  [1, 60n],
                  [2, 10n],
                ],
          ),
        );
      },
    );
    assert.deepEqual(asked, [1_000, 2_000]);
    assert.deepEqual(ranges.get(0), { start: 20n, end: 70n });
    assert.deepEqual(ranges.get(1), { start: 45n, end: 60n });
    assert.deepEqual(ranges.get(2), { start: 10n, end: 10n });
    assert.equal(rangeSize(ranges.values()), 65n);
  });

  it('beginning and now are the low and high offsets', async () => {
    const ranges = await resolveRange({ from: { kind: 'beginning' }, to: { kind: 'now' } }, partitions, () =>
      Promise.reject(new Error('no time lookup needed')),
    );
    assert.deepEqual(
      [...ranges.values()],
      [
        { start: 0n, end: 100n },
        { start: 40n, end: 60n },
        { start: 10n, end: 10n },
      ],
    );
  });

  it('with offsets: unlisted partitions are left out at the start and read to their end at the end', async () => {
    const ranges = await resolveRange(
      {
        from: { kind: 'offsets', offsets: new Map([[0, 5n]]) },
        to: { kind: 'offsets', offsets: new Map([[1, 50n]]) },
      },
      partitions,
      () => Promise.reject(new Error('no time lookup needed')),
    );
    assert.deepEqual(ranges.get(0), { start: 5n, end: 100n });
    assert.deepEqual(ranges.get(1), { start: 60n, end: 60n });
    // Offsets outside what the partition holds are brought inside it.
    const clamped = await resolveRange(
      {
        from: { kind: 'offsets', offsets: new Map([[1, 0n]]) },
        to: { kind: 'offsets', offsets: new Map([[1, 500n]]) },
      },
      partitions,
      () => Promise.reject(new Error('unused')),
    );
    assert.deepEqual(clamped.get(1), { start: 40n, end: 60n });
  });

  it('refuses a partition the topic lacks, and offsets from after to', async () => {
    await assert.rejects(
      resolveRange(
        { from: { kind: 'offsets', offsets: new Map([[7, 0n]]) }, to: { kind: 'now' } },
        partitions,
        () => Promise.reject(new Error('unused')),
      ),
      usageError(/partition 7 does not exist; the topic has partitions 0-2/),
    );
    await assert.rejects(
      resolveRange(
        {
          from: { kind: 'offsets', offsets: new Map([[0, 50n]]) },
          to: { kind: 'offsets', offsets: new Map([[0, 10n]]) },
        },
        partitions,
        () => Promise.reject(new Error('unused')),
      ),
      usageError(/partition 0: --from-offsets 50 is after --to-offsets 10/),
    );
  });
});
