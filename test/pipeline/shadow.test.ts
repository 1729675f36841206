import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import avro from 'avsc';
import type { Message, ProducerBatch } from 'kafkajs';
import { pino } from 'pino';
import type { EventIdentity } from '../../src/codec/feature-rows.js';
import { RecordEncoder, type ShadowPrediction } from '../../src/codec/predictions.js';
import { ModelRunner } from '../../src/inference/runner.js';
import type { BatchProducer } from '../../src/kafka/producer-thread.js';
import type { Hold } from '../../src/models/live.js';
import { ModelRepository } from '../../src/models/repository.js';
import { ShadowScorer, type ShadowWork } from '../../src/pipeline/shadow.js';
import { createRegistry, createServeMetrics, type ServeMetrics } from '../../src/telemetry/metrics.js';
import { StaticSchemas } from '../support/schemas.js';

const TOPIC = 'shadow-predictions';
const SCHEMA_ID = 31;
const SCHEMA = JSON.parse(readFileSync('schemas/shadow-prediction.avsc', 'utf8')) as avro.Schema;
const recordType = avro.Type.forSchema(SCHEMA);
const AMOUNT = 0;

/** Stands in for Kafka: records every request, and can hold requests back or fail them. */
class RecordingProducer implements BatchProducer {
  readonly batches: ProducerBatch[] = [];
  /** How many of the next sends fail. */
  failures = 0;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  #arrived: (() => void) | undefined;

  connect(): Promise<void> {
    return Promise.resolve();
  }

  disconnect(): Promise<void> {
    return Promise.resolve();
  }

  async sendBatch(batch: ProducerBatch): Promise<void> {
    this.batches.push(batch);
    this.#arrived?.();
    if (this.#gate !== undefined) await this.#gate;
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('KafkaJSNumberOfRetriesExceeded: broker not available');
    }
  }

  /** Sends are answered only after open(). */
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }

  open(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  async requested(count: number): Promise<void> {
    while (this.batches.length < count) await new Promise<void>((resolve) => (this.#arrived = resolve));
  }

  get messages(): Message[] {
    return this.batches.flatMap((batch) => batch.topicMessages!.flatMap((topic) => topic.messages));
  }
}

/** A Hold on a routing with these shadows, counting release() calls. */
function holdOn(primary: ModelRunner, shadows: ModelRunner[]): Hold & { releases: number } {
  const hold = {
    releases: 0,
    routing: { primary, canary: undefined, shadows },
    retain: () => hold,
    release: () => {
      hold.releases += 1;
    },
  };
  return hold;
}

function decode(message: Message): ShadowPrediction {
  const value = message.value as Buffer;
  assert.equal(value[0], 0, 'Confluent magic byte');
  assert.equal(value.readInt32BE(1), SCHEMA_ID);
  return recordType.fromBuffer(value.subarray(5)) as ShadowPrediction;
}

/** Counter values keyed `version:reason` (or `version` when there is no reason label). */
async function countsOf(counter: ServeMetrics['shadowDropped'] | ServeMetrics['shadowPublished']) {
  const counts: Record<string, number> = {};
  for (const { labels, value } of (await counter.get()).values) {
    const version = String(labels.version);
    const key = 'reason' in labels ? `${version}:${String(labels.reason)}` : version;
    counts[key] = value;
  }
  return counts;
}

describe('ShadowScorer', () => {
  const runners: ModelRunner[] = [];
  let v1: ModelRunner;
  let v2: ModelRunner;
  /** Fails on every batch that is not exactly 2 rows. */
  let failsUnlessTwo: ModelRunner;
  /** Scores +Inf for every row whose amount is not 0. */
  let infiniteUnlessFree: ModelRunner;
  let encoder: RecordEncoder<ShadowPrediction>;

  before(async () => {
    const load = async (repository: ModelRepository, version: string) => {
      const runner = await ModelRunner.load(await repository.load('fraud', version), {
        executionProvider: 'cpu',
        threads: 1,
      });
      runners.push(runner);
      return runner;
    };
    const models = new ModelRepository('models');
    const fixtures = new ModelRepository('test/fixtures/models');
    v1 = await load(models, '1');
    v2 = await load(models, '2');
    failsUnlessTwo = await load(fixtures, '9');
    infiniteUnlessFree = await load(fixtures, '6');
    encoder = new RecordEncoder<ShadowPrediction>(new StaticSchemas({ [SCHEMA_ID]: SCHEMA }), SCHEMA_ID);
    await encoder.prepare();
  });
  after(async () => {
    for (const runner of runners) await runner.release();
  });

  function setup(maxPendingBatches = 8) {
    const producer = new RecordingProducer();
    const metrics = createServeMetrics(createRegistry(false));
    const scorer = new ShadowScorer({
      producer,
      encoder,
      topic: TOPIC,
      maxPendingBatches,
      logger: pino({ level: 'silent' }),
      metrics,
    });
    return { producer, metrics, scorer };
  }

  /** Rows that differ from each other, so a record paired with the wrong row shows. */
  function featureRow(index: number, amount?: number): Float32Array {
    const row = new Float32Array(v2.featureNames.length);
    for (let column = 0; column < row.length; column += 1) row[column] = ((index * 7 + column * 3) % 11) / 10;
    row[AMOUNT] = amount ?? 20 + index * 35;
    return row;
  }

  /** A batch as the scoring stage hands it over; `tag` keeps ids unique across works in one test. */
  function work(hold: Hold, count: number, tag = 'a', amounts: number[] = []): ShadowWork {
    const indices = Array.from({ length: count }, (_, i) => i);
    const events: EventIdentity[] = indices.map((i) => ({
      request_id: `${tag}-${i}`,
      entity_key: `card-${tag}-${i}`,
      event_time: 1_700_000_000_000 + i,
    }));
    return {
      hold,
      events,
      features: indices.map((i) => ({ row: featureRow(i, amounts[i]), layout: v2.featureNames })),
      keys: indices.map((i) => Buffer.from(`card-${tag}-${i}`)),
      served: indices.map((i) => ({
        version: i % 2 === 0 ? '2' : '3',
        route: i % 2 === 0 ? 'primary' : 'canary',
        outputs: { score: i / 10, label: i % 2 },
      })),
    };
  }

  /** What the runner says for these rows when scored on its own. */
  async function scoresOf(runner: ModelRunner, given: ShadowWork): Promise<number[]> {
    const matrix = new Float32Array(given.features.length * runner.featureNames.length);
    given.features.forEach((entry, i) => matrix.set(entry.row, i * runner.featureNames.length));
    return [...(await runner.score(matrix, given.features.length)).get('score')!];
  }

  it('writes one record per event and shadow version, beside what was served for it', async () => {
    const { producer, metrics, scorer } = setup();
    const hold = holdOn(v2, [v1, v2]);
    const given = work(hold, 3);
    scorer.offer(given);
    await scorer.idle();

    assert.equal(producer.batches.length, 1, 'both shadows go out in one request');
    assert.equal(producer.batches[0]!.acks, -1);
    assert.deepEqual(
      producer.batches[0]!.topicMessages!.map((topic) => topic.topic),
      [TOPIC],
    );
    const messages = producer.messages;
    assert.equal(messages.length, 6);
    const records = messages.map(decode);
    for (const runner of [v1, v2]) {
      const version = runner.metadata.version;
      const expected = await scoresOf(runner, given);
      const mine = messages
        .map((message, i) => ({ message, record: records[i]! }))
        .filter(({ record }) => record.model_version === version);
      assert.deepEqual(
        mine.map(({ record }) => record.request_id),
        ['a-0', 'a-1', 'a-2'],
        `version ${version}`,
      );
      mine.forEach(({ message, record }, row) => {
        assert.deepEqual(message.key, Buffer.from(`card-a-${row}`));
        assert.equal(record.entity_key, `card-a-${row}`);
        assert.equal(record.model_name, 'fraud');
        assert.equal(record.route, 'shadow');
        assert.equal(record.event_time, 1_700_000_000_000 + row);
        assert.equal(record.served_version, given.served[row]!.version);
        assert.equal(record.served_route, given.served[row]!.route);
        assert.deepEqual(record.served_outputs, given.served[row]!.outputs);
        assert.equal(record.outputs.score, expected[row], `version ${version} row ${row}`);
        assert.deepEqual(Object.keys(record.outputs).sort(), ['label', 'score']);
      });
    }
    assert.notDeepEqual(await scoresOf(v1, given), await scoresOf(v2, given), 'the versions disagree');
    assert.deepEqual(await countsOf(metrics.shadowPublished), { '1': 3, '2': 3 });
    assert.deepEqual(await countsOf(metrics.shadowDropped), {});
    assert.equal(hold.releases, 1);
  });

  it('drops work beyond maxPendingBatches as queue_full and releases its hold at once', async () => {
    const { producer, metrics, scorer } = setup(1);
    const holds = [0, 1, 2, 3].map(() => holdOn(v2, [v1, v2]));
    holds.forEach((hold, i) => scorer.offer(work(hold, 2, `w${i}`)));

    // The first batch is being scored and the second waits: both are still held.
    assert.deepEqual(
      holds.map((hold) => hold.releases),
      [0, 0, 1, 1],
    );
    assert.deepEqual(await countsOf(metrics.shadowDropped), { '1:queue_full': 4, '2:queue_full': 4 });

    await scorer.idle();
    assert.deepEqual(
      holds.map((hold) => hold.releases),
      [1, 1, 1, 1],
    );
    assert.deepEqual(producer.messages.map((message) => decode(message).request_id).sort(), [
      'w0-0',
      'w0-0',
      'w0-1',
      'w0-1',
      'w1-0',
      'w1-0',
      'w1-1',
      'w1-1',
    ]);
  });

  it('counts a shadow that fails as inference_failed, never throws, and still writes the others', async () => {
    const { producer, metrics, scorer } = setup();
    const holds = [holdOn(v2, [failsUnlessTwo, v2]), holdOn(v2, [failsUnlessTwo, v2])];
    assert.doesNotThrow(() => scorer.offer(work(holds[0]!, 3, 'three')));
    assert.doesNotThrow(() => scorer.offer(work(holds[1]!, 2, 'two')));
    await scorer.idle();

    const written = producer.messages.map(decode).map((r) => `${r.model_version}:${r.request_id}`);
    assert.deepEqual(written, [
      '2:three-0',
      '2:three-1',
      '2:three-2',
      '9:two-0',
      '9:two-1',
      '2:two-0',
      '2:two-1',
    ]);
    assert.deepEqual(await countsOf(metrics.shadowDropped), { '9:inference_failed': 3 });
    assert.deepEqual(await countsOf(metrics.shadowPublished), { '2': 5, '9': 2 });
    assert.deepEqual(
      holds.map((hold) => hold.releases),
      [1, 1],
    );
  });

  it('drops rows whose outputs are not finite as non_finite_output and writes the finite rows', async () => {
    const { producer, metrics, scorer } = setup();
    const hold = holdOn(v2, [infiniteUnlessFree]);
    const given = work(hold, 4, 'a', [0, 12.5, 0, 80]);
    scorer.offer(given);
    await scorer.idle();

    const records = producer.messages.map(decode);
    assert.deepEqual(
      records.map((record) => record.request_id),
      ['a-0', 'a-2'],
    );
    assert.deepEqual(
      producer.messages.map((message) => String(message.key)),
      ['card-a-0', 'card-a-2'],
    );
    assert.deepEqual(
      records.map((record) => record.served_outputs),
      [given.served[0]!.outputs, given.served[2]!.outputs],
    );
    for (const record of records) assert.ok(Number.isFinite(record.outputs.score));
    assert.deepEqual(await countsOf(metrics.shadowDropped), { '6:non_finite_output': 2 });
    assert.deepEqual(await countsOf(metrics.shadowPublished), { '6': 2 });
    assert.equal(hold.releases, 1);
  });

  it('counts the records of a failed send as publish_failed, and does not send them again', async () => {
    const { producer, metrics, scorer } = setup();
    producer.failures = 1;
    const holds = [holdOn(v2, [v1, v2]), holdOn(v2, [v1, v2])];
    scorer.offer(work(holds[0]!, 3, 'lost'));
    await scorer.idle();
    assert.deepEqual(await countsOf(metrics.shadowDropped), { '1:publish_failed': 3, '2:publish_failed': 3 });
    assert.deepEqual(await countsOf(metrics.shadowPublished), {});

    scorer.offer(work(holds[1]!, 1, 'kept'));
    await scorer.idle();
    assert.equal(producer.batches.length, 2);
    assert.deepEqual(
      producer.batches[1]!.topicMessages![0]!.messages.map((message) => decode(message).request_id),
      ['kept-0', 'kept-0'],
    );
    assert.deepEqual(await countsOf(metrics.shadowPublished), { '1': 1, '2': 1 });
    assert.deepEqual(
      holds.map((hold) => hold.releases),
      [1, 1],
    );
  });

  it('releases every hold exactly once, whatever happens to its work', async () => {
    const { producer, scorer } = setup(2);
    producer.failures = 1;
    const holds = [
      holdOn(v2, [v1]), // its send fails
      holdOn(v2, [failsUnlessTwo]), // its shadow fails
      holdOn(v2, [infiniteUnlessFree]), // all its outputs are infinite: nothing to send
      holdOn(v2, [v1, v2]), // queue full
      holdOn(v2, []), // no shadows any more
    ];
    scorer.offer(work(holds[0]!, 2, 'a'));
    scorer.offer(work(holds[1]!, 3, 'b'));
    scorer.offer(work(holds[2]!, 2, 'c', [5, 6]));
    scorer.offer(work(holds[3]!, 2, 'd'));
    await scorer.idle();
    scorer.offer(work(holds[4]!, 2, 'e'));
    await scorer.idle();
    assert.deepEqual(
      holds.map((hold) => hold.releases),
      [1, 1, 1, 1, 1],
    );
  });

  it('idle() waits for queued batches and for sends not yet answered', async () => {
    const { producer, metrics, scorer } = setup();
    producer.hold();
    const holds = [0, 1, 2].map(() => holdOn(v2, [v1]));
    holds.forEach((hold, i) => scorer.offer(work(hold, 2, `w${i}`)));
    let idle = false;
    const idling = scorer.idle().then(() => (idle = true));

    await producer.requested(1);
    assert.equal(idle, false, 'batches are still being scored');
    // Scoring does not wait for acknowledgements: every batch is scored while the first send hangs.
    while (holds.some((hold) => hold.releases === 0)) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(idle, false, 'the sends are not answered yet');
    producer.open();
    await idling;
    assert.equal(producer.batches.length, 3);
    assert.deepEqual(await countsOf(metrics.shadowPublished), { '1': 6 });
    assert.deepEqual(
      holds.map((hold) => hold.releases),
      [1, 1, 1],
    );
  });

  it('takes work offered while the drain loop is finishing', async () => {
    const { producer, scorer } = setup();
    const second = holdOn(v2, [v1]);
    const first = holdOn(v2, [v1]);
    // The caller offers the next batch in a promise continuation that happens to run as the loop ends.
    first.release = () => {
      first.releases += 1;
      queueMicrotask(() => scorer.offer(work(second, 2, 'next')));
    };
    scorer.offer(work(first, 2, 'first'));
    await scorer.idle();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await scorer.idle();
    assert.equal(second.releases, 1, 'the second batch was scored and its hold released');
    assert.deepEqual(
      producer.messages.map((message) => decode(message).request_id),
      ['first-0', 'first-1', 'next-0', 'next-1'],
    );
  });
});
