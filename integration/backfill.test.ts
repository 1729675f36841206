/**
 * `streamscore backfill` on the real broker: a timestamp range scores exactly the events inside
 * it; a job killed with SIGKILL and started again loses nothing and repeats only what it had not
 * committed; two processes of one job share its partitions; --compare-with agrees with a
 * computation made here from the two topics; bad arguments exit 2 before anything is written.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Prediction } from '../src/codec/predictions.js';
import type { FeatureEvent } from '../src/codec/requests.js';
import {
  ServeProcess,
  collect,
  createTopics,
  decodeAll,
  fraudEvents,
  kafka,
  produceEvents,
  sleep,
  uniqueName,
  waitFor,
  type TestTopics,
} from './harness.js';

type Topics = TestTopics & { remove(): Promise<void> };

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
});

/** Fresh topics; the job's output and dead-letter topics and its group are removed afterwards too. */
async function setup(prefix: string, partitions: number): Promise<{ topics: Topics; output: string }> {
  const topics = await createTopics(prefix, partitions);
  const output = `${topics.requests}.backfill`;
  cleanups.push(async () => {
    await topics.remove();
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const mine = [output, `${output}.dlq`].filter((topic) => existing.has(topic));
      if (mine.length > 0) await admin.deleteTopics({ topics: mine });
      const groups = (await admin.listGroups()).groups
        .map((g) => g.groupId)
        .filter((id) => id.startsWith('streamscore-backfill.') && id.includes(prefix));
      if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
    } finally {
      await admin.disconnect();
    }
  });
  return { topics, output };
}

function backfill(topics: TestTopics, args: string[], env: Record<string, string> = {}): ServeProcess {
  return ServeProcess.start(topics, { STREAMSCORE_SESSION_TIMEOUT_MS: '6000', ...env }, 'backfill', args);
}

async function exitOf(process: ServeProcess, timeoutMs = 120_000): Promise<number | null> {
  const timer = setTimeout(() => void process.stop('SIGKILL'), timeoutMs);
  const { code } = await process.exited;
  clearTimeout(timer);
  return code;
}

async function predictions(topic: string, count: number): Promise<Prediction[]> {
  return decodeAll<Prediction>(await collect(topic, { count, timeoutMs: 60_000, settleMs: 500 }));
}

/** Records written to a topic so far (the sum of its partitions' end offsets). */
async function written(topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  } catch {
    return 0;
  } finally {
    await admin.disconnect();
  }
}

function summaryOf(process: ServeProcess): Record<string, unknown> {
  const line = process.lines.find((l) => /^backfill finished/.test(String(l.msg)));
  assert.ok(line, `no summary line:\n${process.output()}`);
  return line;
}

describe('backfill', () => {
  it('scores exactly the events whose timestamps fall in the range, each once', async () => {
    const { topics, output } = await setup('bf-range', 4);
    const start = Date.now() - 3_600_000;
    const from = start + 10_000;
    const to = from + 50_000;
    const before = fraudEvents(2_000, { seed: 1, runId: 'before' });
    const inside = fraudEvents(50_000, { seed: 2, runId: 'inside' });
    const afterRange = fraudEvents(2_000, { seed: 3, runId: 'after' });
    const all = [...before, ...inside, ...afterRange];
    // One record a millisecond: before in [start, start + 2 s), inside in [from, to), after from `to` on.
    await produceEvents(topics.requests, all, {
      timeOf: (i) => (i < 2_000 ? start + i : i < 52_000 ? from + (i - 2_000) : to + (i - 52_000)),
    });
    const job = uniqueName('bf-range');
    const run = backfill(topics, [
      '--from',
      new Date(from).toISOString(),
      '--to',
      String(to),
      '--version',
      '2',
      '--output',
      output,
      '--job',
      job,
    ]);
    assert.equal(await exitOf(run), 0, run.output());
    const summary = summaryOf(run);
    assert.equal(summary.scored, 50_000);
    assert.equal(summary.deadLettered, 0);
    assert.equal(summary.jobComplete, true);

    const scored = await predictions(output, 50_000);
    assert.equal(scored.length, 50_000, 'one prediction per event, no repeats in a clean run');
    const ids = new Set(scored.map((p) => p.request_id));
    assert.equal(ids.size, 50_000);
    for (const event of inside) assert.ok(ids.has(event.request_id), `${event.request_id} was not scored`);
    assert.ok(
      scored.every((p) => p.route === 'backfill' && p.model_version === '2'),
      'every prediction names the backfill route and the version asked for',
    );
  });

  it('killed with SIGKILL and started again, scores every event, repeating only uncommitted ones', async (t) => {
    const { topics, output } = await setup('bf-kill', 3);
    const events = fraudEvents(60_000, { seed: 4, runId: 'kill' });
    await produceEvents(topics.requests, events);
    const job = uniqueName('bf-kill');
    const args = ['--from', 'beginning', '--version', '2', '--output', output, '--job', job];
    // Small batches and a small pending limit make the job take long enough to be killed half-way.
    const env = {
      STREAMSCORE_BATCH_MAX_ROWS: '50',
      STREAMSCORE_MAX_PENDING_EVENTS: '200',
      STREAMSCORE_COMMIT_INTERVAL_MS: '200',
    };
    const first = backfill(topics, args, env);
    await waitFor(
      'a quarter of the job to be written',
      async () => (await written(output)) >= 15_000,
      90_000,
    );
    await first.stop('SIGKILL');
    assert.equal(first.child.signalCode, 'SIGKILL', `the job ended before it was killed:\n${first.output()}`);

    // What the job had committed when it died: reading resumes there.
    const admin = kafka.admin();
    await admin.connect();
    const committed = new Map<number, bigint>();
    try {
      const [entry] = await admin.fetchOffsets({
        groupId: `streamscore-backfill.${job}`,
        topics: [topics.requests],
      });
      for (const p of entry!.partitions) committed.set(p.partition, BigInt(p.offset));
    } finally {
      await admin.disconnect();
    }
    const source = await decodeAll<FeatureEvent>(
      await collect(topics.requests, { count: 60_000, timeoutMs: 60_000, settleMs: 500 }),
    );
    const origin = new Map(source.map((e) => [e.request_id, e]));
    const firstRun = await predictions(output, await written(output));
    const uncommitted = new Set(
      firstRun
        .map((p) => origin.get(p.request_id)!)
        .filter((e) => BigInt(e.offset) >= (committed.get(e.partition) ?? -1n) || !committed.has(e.partition))
        .map((e) => e.request_id),
    );

    const second = backfill(topics, args, env);
    assert.equal(await exitOf(second), 0, second.output());
    assert.ok(
      second.lines.some((l) => l.msg === 'backfill resuming'),
      `the second run did not resume:\n${second.output()}`,
    );
    const all = await predictions(output, 60_000);
    const counts = new Map<string, number>();
    for (const p of all) counts.set(p.request_id, (counts.get(p.request_id) ?? 0) + 1);
    const lost = events.filter((e) => !counts.has(e.request_id));
    assert.equal(lost.length, 0, `${lost.length} events never scored`);
    const repeated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    t.diagnostic(
      `first run wrote ${firstRun.length}; ${uncommitted.size} of them past the committed offsets; repeats: ${all.length - counts.size}`,
    );
    for (const id of repeated) {
      assert.ok(uncommitted.has(id), `${id} was scored again though its offset was committed`);
      assert.equal(counts.get(id), 2, `${id} scored ${counts.get(id)} times`);
    }
  });

  it('stopped with SIGTERM, commits what it scored: the next run repeats nothing', async () => {
    const { topics, output } = await setup('bf-term', 3);
    const events = fraudEvents(30_000, { seed: 8, runId: 'term' });
    await produceEvents(topics.requests, events);
    const args = [
      '--from',
      'beginning',
      '--version',
      '2',
      '--output',
      output,
      '--job',
      uniqueName('bf-term'),
    ];
    const env = { STREAMSCORE_BATCH_MAX_ROWS: '50', STREAMSCORE_MAX_PENDING_EVENTS: '200' };
    const first = backfill(topics, args, env);
    await waitFor('a quarter of the job to be written', async () => (await written(output)) >= 7_500, 90_000);
    assert.equal(await first.stop('SIGTERM').then(({ code }) => code), 1, first.output());
    assert.ok(
      first.lines.some((l) => /stopped before the end of its range/.test(String(l.msg))),
      first.output(),
    );
    const second = backfill(topics, args, env);
    assert.equal(await exitOf(second), 0, second.output());
    const all = await predictions(output, 30_000);
    const ids = new Set(all.map((p) => p.request_id));
    assert.equal(events.filter((e) => !ids.has(e.request_id)).length, 0, 'every event scored');
    assert.equal(all.length, ids.size, 'no event scored twice');
  });

  it('shares the partitions of one job between two processes, and scores every event', async () => {
    const { topics, output } = await setup('bf-pair', 4);
    // Enough work that neither process can finish it in the ~2 s (a heartbeat) a rebalance may
    // take to reach the first one: at 20-25k events/s a process alone needs about 5 s.
    const events = fraudEvents(120_000, { seed: 5, runId: 'pair' });
    await produceEvents(topics.requests, events);
    const job = uniqueName('bf-pair');
    const args = ['--from', 'beginning', '--version', '1', '--output', output, '--job', job];
    const env = { STREAMSCORE_BATCH_MAX_ROWS: '50', STREAMSCORE_MAX_PENDING_EVENTS: '200' };
    const pair = [backfill(topics, args, env), backfill(topics, args, env)];
    const codes = await Promise.all(pair.map((p) => exitOf(p)));
    assert.deepEqual(codes, [0, 0], pair.map((p) => p.output()).join('\n----\n'));
    for (const process of pair) {
      const held = process.lines
        .filter((l) => l.msg === 'joined consumer group')
        .map((l) => ((l.assignment as Record<string, number[]>)[topics.requests] ?? []).length);
      assert.ok(
        held.some((n) => n > 0 && n < 4),
        `each process held part of the partitions at some point: ${JSON.stringify(held)}`,
      );
    }
    const all = await predictions(output, 120_000);
    const ids = new Set(all.map((p) => p.request_id));
    assert.equal(events.filter((e) => !ids.has(e.request_id)).length, 0, 'every event scored');
  });

  it('compares with what serve wrote: the figures match a computation over the two topics', async () => {
    const { topics, output } = await setup('bf-compare', 3);
    const events = fraudEvents(6_000, { seed: 6, runId: 'compare' });
    await produceEvents(topics.requests, events);
    const serve = ServeProcess.start(topics, {
      STREAMSCORE_MODEL_VERSION: '1',
      STREAMSCORE_FROM_BEGINNING: 'true',
    });
    try {
      await waitFor(
        'serve to score every event',
        async () => (await written(topics.predictions)) >= 6_000,
        60_000,
      );
    } finally {
      await serve.stop();
    }
    const report = join(mkdtempSync(join(tmpdir(), 'streamscore-compare-')), 'report.json');
    const run = backfill(topics, [
      '--from',
      'beginning',
      '--version',
      '2',
      '--output',
      output,
      '--compare-with',
      topics.predictions,
      '--report',
      report,
    ]);
    assert.equal(await exitOf(run), 0, run.output());
    const figures = JSON.parse(readFileSync(report, 'utf8')) as {
      backfilled: number;
      backfillOnly: number;
      served: Record<
        string,
        { compared: number; agreement: number; meanAbsDiff: number; correlation: number; servedOnly: number }
      >;
    };

    // Offline: both topics read here, joined by request id, the statistics computed directly.
    const threshold = (version: string) =>
      (JSON.parse(readFileSync(`models/fraud/${version}/model.json`, 'utf8')) as { threshold?: number })
        .threshold ?? 0.5;
    const mine = new Map((await predictions(output, 6_000)).map((p) => [p.request_id, p.outputs.score!]));
    const theirs = new Map(
      (await predictions(topics.predictions, 6_000)).map((p) => [p.request_id, p.outputs.score!]),
    );
    const pairs = [...theirs].filter(([id]) => mine.has(id)).map(([id, s]) => [s, mine.get(id)!] as const);
    const n = pairs.length;
    const mean = (f: (pair: readonly [number, number]) => number) => pairs.reduce((s, p) => s + f(p), 0) / n;
    const ma = mean(([a]) => a);
    const mb = mean(([, b]) => b);
    const cov = mean(([a, b]) => (a - ma) * (b - mb));
    const sa = Math.sqrt(mean(([a]) => (a - ma) ** 2));
    const sb = Math.sqrt(mean(([, b]) => (b - mb) ** 2));
    const agreement = pairs.filter(([a, b]) => a > threshold('1') === b > threshold('2')).length / n;

    assert.equal(n, 6_000);
    const served = figures.served['1']!;
    assert.equal(served.compared, n);
    assert.equal(figures.backfilled, 6_000);
    assert.equal(figures.backfillOnly, 0);
    assert.equal(served.servedOnly, 0);
    assert.ok(Math.abs(served.agreement - agreement) < 1e-12, `${served.agreement} vs ${agreement}`);
    assert.ok(Math.abs(served.meanAbsDiff - mean(([a, b]) => Math.abs(a - b))) < 1e-9);
    assert.ok(
      Math.abs(served.correlation - cov / (sa * sb)) < 1e-9,
      `${served.correlation} vs ${cov / (sa * sb)}`,
    );
  });

  it('refuses a bad range, an unknown topic and a version not on disk: exit 2, nothing written', async () => {
    const { topics, output } = await setup('bf-bad', 1);
    await produceEvents(topics.requests, fraudEvents(10, { seed: 7, runId: 'bad' }));
    const cases: [string[], RegExp][] = [
      [['--from', '2026-11-08T00:00:00Z', '--to', '2026-11-01T00:00:00Z', '--version', '2'], /is after --to/],
      [['--from', 'beginning', '--topic', `${topics.requests}.missing`, '--version', '2'], /no such topic/],
      [['--from', 'beginning', '--version', '99'], /--version 99: model fraud has no such version/],
      [['--from', 'yesterday', '--version', '2'], /--from: "yesterday" is not a time/],
    ];
    for (const [args, message] of cases) {
      const run = backfill(topics, [...args, '--output', output]);
      assert.equal(await exitOf(run, 30_000), 2, run.output());
      assert.match(run.stderr, message);
    }
    await sleep(200);
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = await admin.listTopics();
      assert.ok(!existing.includes(output) && !existing.includes(`${output}.dlq`), 'no topic was created');
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
      assert.ok(
        !groups.some((id) => id.startsWith('streamscore-backfill.') && id.includes(output)),
        'no group',
      );
    } finally {
      await admin.disconnect();
    }
  });
});
