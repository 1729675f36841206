import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import avro from 'avsc';
import type { Message } from 'kafkajs';
import { pino } from 'pino';
import { MicroBatcher } from '../../src/batching/batcher.js';
import { PendingLimit } from '../../src/batching/capacity.js';
import { DLQ_HEADERS } from '../../src/codec/dead-letter.js';
import { RecordEncoder, type Prediction, type ShadowPrediction } from '../../src/codec/predictions.js';
import { RequestDecoder } from '../../src/codec/requests.js';
import type { ModelRunner } from '../../src/inference/runner.js';
import { matrixOf, toFeatureRow, type FeatureRow } from '../../src/inference/tensor.js';
import { OffsetLedger } from '../../src/kafka/offsets.js';
import { OrderedPublisher } from '../../src/kafka/publisher.js';
import { keyPosition } from '../../src/models/key-position.js';
import { LiveModels } from '../../src/models/live.js';
import { ModelRepository } from '../../src/models/repository.js';
import type { RoutingSpec } from '../../src/models/routing.js';
import { DeadLetters } from '../../src/pipeline/dead-letters.js';
import { DecodeStage, type Pending, type Taken } from '../../src/pipeline/decode-stage.js';
import { PipelineHealth } from '../../src/pipeline/health.js';
import type { CacheLimits } from '../../src/pipeline/prediction-cache.js';
import { CACHE_HEADER, CIRCUIT_BATCHES, FALLBACK_HEADER, ScoringStage } from '../../src/pipeline/scoring.js';
import { ShadowScorer } from '../../src/pipeline/shadow.js';
import { createRegistry, createServeMetrics } from '../../src/telemetry/metrics.js';
import { RecordingProducer } from '../support/producers.js';
import { StaticSchemas } from '../support/schemas.js';

const REQUESTS = 'requests';
const PREDICTIONS = 'predictions';
const DLQ = 'requests-dlq';
const FEATURE_ID = 1;
const PREDICTION_ID = 2;
const SHADOW_ID = 3;
const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as avro.Schema;
const predictionSchema = JSON.parse(readFileSync('schemas/prediction.avsc', 'utf8')) as avro.Schema;
const shadowSchema = JSON.parse(readFileSync('schemas/shadow-prediction.avsc', 'utf8')) as avro.Schema;
const featureType = avro.Type.forSchema(featureSchema);
const predictionType = avro.Type.forSchema(predictionSchema);
const EVENT_TIME = 1_700_000_000_000;
const silent = pino({ level: 'silent' });

/** Features that differ from event to event, so a prediction paired with the wrong event shows. */
function featuresOf(index: number, change: Record<string, number> = {}): Record<string, number> {
  return {
    amount: 20 + 35 * index,
    account_age_days: 30 + 13 * index,
    tx_count_24h: index % 5,
    distance_from_home_km: 3.5 * index,
    merchant_risk: (index % 10) / 10,
    hour_of_day: index % 24,
    is_foreign: index % 2,
    card_present: (index + 1) % 2,
    ...change,
  };
}

function framed(id: number, record: object): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, featureType.toBuffer(record)]);
}

function decodePrediction(message: Message): Prediction {
  const value = message.value as Buffer;
  assert.equal(value.readInt32BE(1), PREDICTION_ID);
  return predictionType.fromBuffer(value.subarray(5)) as Prediction;
}

function header(message: Message, name: string): string | undefined {
  const value = message.headers?.[name];
  return value === undefined ? undefined : String(value);
}

/** Counter values keyed by the given labels, joined with ':'. */
async function countsOf(
  counter: { get(): Promise<{ values: { labels: object; value: number }[] }> },
  keys: string[],
) {
  const counts: Record<string, number> = {};
  for (const { labels, value } of (await counter.get()).values) {
    const named = labels as Record<string, unknown>;
    counts[keys.map((key) => String(named[key])).join(':')] = value;
  }
  return counts;
}

/** What a runner says for these rows when scored on their own. */
async function scoresOf(runner: ModelRunner, rows: readonly FeatureRow[]): Promise<number[]> {
  const outputs = await runner.score(matrixOf(rows, runner.featureNames), rows.length);
  return [...outputs.get('score')!];
}

describe('ScoringStage', () => {
  let root: string;
  let encoder: RecordEncoder<Prediction>;
  let shadowEncoder: RecordEncoder<ShadowPrediction>;
  const opened: LiveModels[] = [];

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'streamscore-scoring-'));
    for (const version of ['1', '2'])
      cpSync(join('models/fraud', version), join(root, 'fraud', version), { recursive: true });
    for (const version of ['5', '6', '7', '9'])
      cpSync(join('test/fixtures/models/fraud', version), join(root, 'fraud', version), { recursive: true });
    const schemas = new StaticSchemas({ [PREDICTION_ID]: predictionSchema, [SHADOW_ID]: shadowSchema });
    encoder = new RecordEncoder<Prediction>(schemas, PREDICTION_ID);
    await encoder.prepare();
    shadowEncoder = new RecordEncoder<ShadowPrediction>(schemas, SHADOW_ID);
    await shadowEncoder.prepare();
  });
  after(async () => {
    for (const live of opened) await live.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function liveWith(spec: RoutingSpec): Promise<LiveModels> {
    const live = new LiveModels({
      repository: new ModelRepository(root),
      model: 'fraud',
      runner: { executionProvider: 'cpu', threads: 1 },
      logger: silent,
      events: { loaded: () => {}, refused: () => {}, restarted: () => {}, switched: () => {} },
    });
    opened.push(live);
    await live.apply(spec);
    return live;
  }

  function setup(
    live: LiveModels,
    options: {
      maxPredictionBytes?: number;
      reread?: (value: Buffer | null) => Taken | undefined;
      cache?: CacheLimits;
    } = {},
  ) {
    const producer = new RecordingProducer();
    const metrics = createServeMetrics(createRegistry(false));
    const health = new PipelineHealth(silent, metrics);
    const capacity = new PendingLimit(1_000);
    const batcher = new MicroBatcher<Pending>({ maxRows: 64, lingerMs: 0 });
    const fatal: unknown[] = [];
    const publisher = new OrderedPublisher(producer, silent, {
      stalled: () => undefined,
      recovered: () => undefined,
      fatal: (error) => fatal.push(error),
    });
    const acknowledged = { predictions: 0 };
    const deadLetters = new DeadLetters({
      publisher,
      capacity,
      topic: DLQ,
      maxRecordBytes: 1_048_576,
      metrics,
      acknowledged: () => undefined,
    });
    const shadows = new ShadowScorer({
      producer,
      encoder: shadowEncoder,
      topic: 'shadow-predictions',
      maxPendingBatches: 4,
      logger: silent,
      metrics,
    });
    const scoring = new ScoringStage({
      batcher,
      live,
      publisher,
      deadLetters,
      capacity,
      encoder,
      shadows,
      health,
      metrics,
      logger: silent,
      topic: PREDICTIONS,
      maxPredictionBytes: options.maxPredictionBytes ?? 1_048_576,
      reread: options.reread ?? (() => assert.fail('nothing here needs reading again')),
      acknowledged: () => (acknowledged.predictions += 1),
      onFatal: (error) => fatal.push(error),
      cache: options.cache,
    });
    const ledger = new OffsetLedger();
    let offset = 0;

    /** An event as decode hands it over: tracked in its partition's lease, holding capacity. */
    function pending(spec: {
      id: string;
      key?: string;
      features?: Record<string, number>;
      row?: FeatureRow;
      partition?: number;
      value?: Buffer;
    }): Pending {
      const partition = spec.partition ?? 0;
      const key = spec.key ?? `card-${spec.id}`;
      const lease = ledger.lease(REQUESTS, partition);
      const at = String(offset++);
      capacity.acquire(1);
      return {
        event: { request_id: spec.id, entity_key: key, event_time: EVENT_TIME },
        features: spec.row ?? toFeatureRow(spec.features!, live.current!.primary.featureNames, false),
        source: {
          topic: REQUESTS,
          partition,
          offset: at,
          key: Buffer.from(key),
          value: spec.value ?? Buffer.from(`bytes of ${spec.id}`),
          headers: { trace: Buffer.from(spec.id) },
        },
        lease,
        entry: lease.track(at),
        takenAt: performance.now(),
      };
    }

    /** Scores what was added, and waits for every acknowledgement. */
    async function drain(): Promise<void> {
      batcher.close();
      await scoring.stop();
      await publisher.idle();
      assert.deepEqual(fatal, [], 'nothing stops the pipeline');
    }

    return {
      producer,
      metrics,
      health,
      capacity,
      batcher,
      publisher,
      scoring,
      ledger,
      fatal,
      acknowledged,
      pending,
      drain,
      predictions: () => producer.messagesTo(PREDICTIONS),
      deadLetters: () => producer.messagesTo(DLQ),
      deadLetterStage: deadLetters,
    };
  }

  it('serves repeated rows from a cache per version: the same outputs, said in a header, dropped with the routing', async () => {
    const live = await liveWith({ primary: '2', canary: { version: '1', share: 0.5 }, shadows: [] });
    const { primary, canary } = live.current!;
    const s = setup(live, { cache: { maxEntries: 1_000, maxBytes: 1_048_576, ttlMs: 60_000 } });
    // Six distinct rows, each sent under keys on both sides of the canary share, in three rounds.
    const keys = Array.from({ length: 40 }, (_, i) => `card-${i}`);
    const primaryKey = keys.find((key) => keyPosition(key) >= 0.5)!;
    const canaryKey = keys.find((key) => keyPosition(key) < 0.5)!;
    const round = (r: number) =>
      Array.from({ length: 6 }, (_, i) => [
        s.pending({ id: `r${r}-p${i}`, key: primaryKey, features: featuresOf(i) }),
        s.pending({ id: `r${r}-c${i}`, key: canaryKey, features: featuresOf(i) }),
      ]).flat();
    const rows = Array.from({ length: 6 }, (_, i) =>
      toFeatureRow(featuresOf(i), primary.featureNames, false),
    );
    const expected = { p: await scoresOf(primary, rows), c: await scoresOf(canary!.runner, rows) };
    s.scoring.start();
    const rounds = [round(0), round(1), round(2)];
    for (const [index, items] of rounds.entries()) {
      if (index === 2) s.scoring.dropCaches();
      for (const item of items) s.batcher.add(item);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await s.drain();
    const published = s.predictions();
    assert.equal(published.length, 36);
    for (const message of published) {
      const prediction = decodePrediction(message);
      const [, r, side, i] = /^r(\d)-([pc])(\d)$/.exec(prediction.request_id)!;
      const want = expected[side as 'p' | 'c'][Number(i)]!;
      assert.equal(
        prediction.outputs.score,
        want,
        `${prediction.request_id}: cached outputs equal computed ones`,
      );
      assert.equal(prediction.route, side === 'p' ? 'primary' : 'canary');
      // Round 0 fills each version's cache, round 1 is served from it, round 2 follows a drop.
      assert.equal(header(message, CACHE_HEADER), r === '1' ? 'hit' : undefined, prediction.request_id);
    }
    const hits = await countsOf(s.metrics.cacheHits, ['version']);
    const misses = await countsOf(s.metrics.cacheMisses, ['version']);
    assert.deepEqual(hits, { '1': 6, '2': 6 });
    assert.deepEqual(misses, { '1': 12, '2': 12 });
  });

  it('publishes one prediction per event in event order, primary and canary keys each scored by their version', async () => {
    const live = await liveWith({ primary: '2', canary: { version: '1', share: 0.5 }, shadows: [] });
    const { primary, canary } = live.current!;
    const s = setup(live);
    const first = Array.from({ length: 12 }, (_, i) => s.pending({ id: `a${i}`, features: featuresOf(i) }));
    const second = Array.from({ length: 5 }, (_, i) =>
      s.pending({ id: `b${i}`, features: featuresOf(20 + i) }),
    );
    const items = [...first, ...second];
    const toCanary = (item: Pending) => keyPosition(item.event.entity_key) < 0.5;
    for (const batch of [first, second]) {
      assert.ok(batch.some(toCanary) && !batch.every(toCanary), 'the keys fall on both sides of the share');
    }
    const rows = items.map((item) => item.features);
    const expected = { primary: await scoresOf(primary, rows), canary: await scoresOf(canary!.runner, rows) };
    s.scoring.start();
    for (const item of first) s.batcher.add(item);
    // The second batch arrives once the first was handed over.
    await new Promise((resolve) => setImmediate(resolve));
    for (const item of second) s.batcher.add(item);
    await s.drain();

    const messages = s.predictions();
    assert.deepEqual(
      messages.map((message) => decodePrediction(message).request_id),
      items.map((item) => item.event.request_id),
    );
    messages.forEach((message, i) => {
      const item = items[i]!;
      const prediction = decodePrediction(message);
      const route = toCanary(item) ? 'canary' : 'primary';
      assert.equal(prediction.route, route, item.event.request_id);
      assert.equal(prediction.model_version, route === 'canary' ? '1' : '2', item.event.request_id);
      assert.equal(prediction.model_name, 'fraud');
      assert.equal(prediction.entity_key, item.event.entity_key);
      assert.equal(prediction.event_time, EVENT_TIME);
      assert.equal(prediction.outputs.score, expected[route][i], item.event.request_id);
      assert.deepEqual(message.key, item.source.key);
    });
    assert.notDeepEqual(expected.primary, expected.canary, 'the versions disagree');

    const canaryCount = items.filter(toCanary).length;
    assert.deepEqual(await countsOf(s.metrics.predictionsPublished, ['version', 'route']), {
      '1:canary': canaryCount,
      '2:primary': items.length - canaryCount,
    });
    // One runtime call per version and batch: two batches, each split in two.
    const calls = (await s.metrics.batchRows.get()).values.filter((v) => v.metricName?.endsWith('_count'));
    assert.deepEqual(calls.map((v) => `${String(v.labels.version)}:${v.value}`).sort(), ['1:2', '2:2']);
    assert.ok(items.every((item) => item.entry.done));
    assert.equal(s.capacity.pending, 0);
    assert.equal(s.acknowledged.predictions, 2, 'one acknowledgement per batch');
    assert.equal(s.deadLetters().length, 0);
  });

  it('drops the events of a revoked lease before scoring, counting them and freeing their capacity', async () => {
    const live = await liveWith({ primary: '2', shadows: [] });
    const s = setup(live);
    const items = Array.from({ length: 7 }, (_, i) =>
      s.pending({ id: `e${i}`, features: featuresOf(i), partition: i % 2 }),
    );
    s.ledger.lease(REQUESTS, 1).revoked = true;
    s.scoring.start();
    for (const item of items) s.batcher.add(item);
    await s.drain();

    const kept = items.filter((item) => item.source.partition === 0);
    assert.deepEqual(
      s.predictions().map((message) => decodePrediction(message).request_id),
      kept.map((item) => item.event.request_id),
    );
    assert.equal((await s.metrics.revokedEvents.get()).values[0]?.value, 3);
    assert.equal(s.capacity.pending, 0);
    assert.ok(kept.every((item) => item.entry.done));
    assert.ok(items.every((item) => item.source.partition === 0 || !item.entry.done));
    assert.equal(s.deadLetters().length, 0, 'their new owner scores them');
  });

  it('dead-letters the rows the model fails on and publishes the rest of the batch', async () => {
    const live = await liveWith({ primary: '7', shadows: [] });
    const s = setup(live);
    const bad = new Set([1, 4]);
    const items = Array.from({ length: 6 }, (_, i) =>
      s.pending({ id: `e${i}`, features: featuresOf(i, bad.has(i) ? { hour_of_day: 24 + i } : {}) }),
    );
    const good = items.filter((_, i) => !bad.has(i));
    const expected = await scoresOf(
      live.current!.primary,
      good.map((item) => item.features),
    );
    s.scoring.start();
    for (const item of items) s.batcher.add(item);
    await s.drain();

    const predictions = s.predictions().map(decodePrediction);
    assert.deepEqual(
      predictions.map((p) => p.request_id),
      good.map((item) => item.event.request_id),
    );
    assert.deepEqual(
      predictions.map((p) => p.outputs.score),
      expected,
    );
    const letters = s.deadLetters();
    assert.deepEqual(
      letters.map((letter) => header(letter, DLQ_HEADERS.sourceOffset)),
      [...bad].map((i) => items[i]!.source.offset),
    );
    for (const letter of letters) {
      assert.equal(header(letter, DLQ_HEADERS.reason), 'INFERENCE_FAILED');
      assert.equal(header(letter, DLQ_HEADERS.stage), 'infer');
      assert.match(header(letter, DLQ_HEADERS.message)!, /^fraud\/7: /);
    }
    assert.deepEqual(letters[0]!.value, items[1]!.source.value, 'the original bytes');
    assert.deepEqual(await countsOf(s.metrics.deadLetters, ['reason']), { INFERENCE_FAILED: 2 });
    assert.ok(items.every((item) => item.entry.done));
    assert.equal(s.capacity.pending, 0);
    assert.deepEqual(s.health.stalls, [], 'rows at fault are not a stall');
  });

  it('never publishes an output that is not finite', async () => {
    const live = await liveWith({ primary: '6', shadows: [] });
    const s = setup(live);
    const amounts = [0, 12.5, 0, 80, 0];
    const items = amounts.map((amount, i) => s.pending({ id: `e${i}`, features: featuresOf(i, { amount }) }));
    s.scoring.start();
    for (const item of items) s.batcher.add(item);
    await s.drain();

    const predictions = s.predictions().map(decodePrediction);
    assert.deepEqual(
      predictions.map((p) => p.request_id),
      ['e0', 'e2', 'e4'],
    );
    for (const prediction of predictions) {
      for (const value of Object.values(prediction.outputs)) assert.ok(Number.isFinite(value));
    }
    const letters = s.deadLetters();
    assert.deepEqual(
      letters.map((letter) => header(letter, DLQ_HEADERS.reason)),
      ['INFERENCE_FAILED', 'INFERENCE_FAILED'],
    );
    assert.deepEqual(
      letters.map((letter) => header(letter, DLQ_HEADERS.sourceOffset)),
      [items[1]!.source.offset, items[3]!.source.offset],
    );
    assert.equal(header(letters[0]!, DLQ_HEADERS.message), 'fraud/6: output "score" is Infinity');
    assert.equal(s.capacity.pending, 0);
  });

  it('scores what a version fails on with the fallback: published with route fallback, nothing dead-lettered', async () => {
    const live = await liveWith({ primary: '6', shadows: [], fallback: '2' });
    const s = setup(live);
    const amounts = [0, 12.5, 0, 80, 0];
    const items = amounts.map((amount, i) => s.pending({ id: `e${i}`, features: featuresOf(i, { amount }) }));
    const fallback = live.current!.fallback!;
    const expected = await scoresOf(fallback, [items[1]!.features, items[3]!.features]);
    s.scoring.start();
    for (const item of items) s.batcher.add(item);
    await s.drain();

    const published = s.predictions();
    const predictions = published.map(decodePrediction);
    assert.deepEqual(
      predictions.map((p) => `${p.request_id}:${p.model_version}:${p.route}`),
      ['e0:6:primary', 'e1:2:fallback', 'e2:6:primary', 'e3:2:fallback', 'e4:6:primary'],
      'in event order, each once',
    );
    assert.deepEqual([predictions[1]!.outputs.score, predictions[3]!.outputs.score], expected);
    assert.deepEqual(
      published.map((m) => header(m, FALLBACK_HEADER)),
      [undefined, '6', undefined, '6', undefined],
    );
    assert.equal(s.deadLetters().length, 0);
    assert.deepEqual(await countsOf(s.metrics.fallbackEvents, ['version', 'fallback_version']), { '6:2': 2 });
    assert.equal(s.capacity.pending, 0);
  });

  it('dead-letters only what the fallback fails on too, saying why both failed', async () => {
    const live = await liveWith({ primary: '6', shadows: [], fallback: '7' });
    const s = setup(live);
    const items = [
      s.pending({ id: 'ok', features: featuresOf(1, { amount: 0 }) }),
      s.pending({ id: 'rescued', features: featuresOf(2, { amount: 5 }) }),
      s.pending({ id: 'lost', features: featuresOf(3, { amount: 5, hour_of_day: 30 }) }),
    ];
    s.scoring.start();
    for (const item of items) s.batcher.add(item);
    await s.drain();
    assert.deepEqual(
      s
        .predictions()
        .map(decodePrediction)
        .map((p) => `${p.request_id}:${p.route}`),
      ['ok:primary', 'rescued:fallback'],
    );
    const letters = s.deadLetters();
    assert.equal(letters.length, 1);
    assert.equal(header(letters[0]!, DLQ_HEADERS.reason), 'INFERENCE_FAILED');
    assert.match(header(letters[0]!, DLQ_HEADERS.message)!, /^fraud\/6: .*Infinity; fallback 7: fraud\/7: /);
  });

  it('takes a version that fails batch after batch out of routing until the routing changes', async () => {
    const live = await liveWith({ primary: '9', shadows: [], fallback: '1' });
    const s = setup(live);
    s.scoring.start();
    const round = async (r: number) => {
      for (let i = 0; i < 3; i += 1) s.batcher.add(s.pending({ id: `r${r}-${i}`, features: featuresOf(i) }));
      await eventually(() => s.predictions().length === 3 * (r + 1), `round ${r}`);
    };
    const open = async () => (await countsOf(s.metrics.circuitOpen, ['version']))['9'] ?? 0;
    for (let r = 0; r < CIRCUIT_BATCHES; r += 1) await round(r);
    assert.equal(await open(), 1, 'open after CIRCUIT_BATCHES failed batches');
    const retries = await countsOf(s.metrics.inferenceRetries, ['version', 'why']);
    await round(CIRCUIT_BATCHES);
    assert.deepEqual(
      await countsOf(s.metrics.inferenceRetries, ['version', 'why']),
      retries,
      'an open version is not even tried',
    );
    assert.deepEqual(s.health.stalls, [], 'never stalled: the fallback took every batch');
    s.scoring.routingChanged();
    assert.equal(await open(), 0);
    await round(CIRCUIT_BATCHES + 1);
    assert.ok(
      ((await countsOf(s.metrics.inferenceRetries, ['version', 'why']))['9:stall'] ?? 0) === 0,
      'no stall while a fallback is routed',
    );
    const predictions = s.predictions().map(decodePrediction);
    assert.equal(predictions.length, 3 * (CIRCUIT_BATCHES + 2));
    assert.ok(predictions.every((p) => p.route === 'fallback' && p.model_version === '1'));
    assert.equal(s.deadLetters().length, 0);
    await s.drain();
  });

  it('sends what a canary fails on to the primary when no fallback is routed', async () => {
    const live = await liveWith({ primary: '2', canary: { version: '6', share: 1 }, shadows: [] });
    const s = setup(live);
    const items = [0, 7].map((amount, i) => s.pending({ id: `e${i}`, features: featuresOf(i, { amount }) }));
    s.scoring.start();
    for (const item of items) s.batcher.add(item);
    await s.drain();
    assert.deepEqual(
      s
        .predictions()
        .map(decodePrediction)
        .map((p) => `${p.request_id}:${p.model_version}:${p.route}`),
      ['e0:6:canary', 'e1:2:fallback'],
    );
    assert.equal(s.deadLetters().length, 0);
  });

  it('stalls on a version that fails every batch, and publishes the same batch once another is live', async () => {
    const live = await liveWith({ primary: '9', shadows: [] });
    const s = setup(live);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      s.scoring.start();
      const items = [0, 1, 2].map((i) => s.pending({ id: `e${i}`, features: featuresOf(i) }));
      for (const item of items) s.batcher.add(item);
      const retries = async () =>
        (await countsOf(s.metrics.inferenceRetries, ['version', 'why']))['9:stall'] ?? 0;
      await eventually(() => s.health.stalls.includes('inference'), 'the inference stall');
      assert.equal(await retries(), 1);
      const stalled = async () => (await countsOf(s.metrics.stalled, ['reason'])).inference;
      assert.equal(await stalled(), 1);

      // The same version again after the first backoff: still failing, still nothing out.
      mock.timers.tick(1_000);
      await eventually(async () => (await retries()) === 2, 'the second try');
      assert.equal(s.producer.requests.length, 0, 'neither predictions nor dead letters');
      assert.equal(s.capacity.pending, 3);
      assert.ok(items.every((item) => !item.entry.done));

      await live.apply({ primary: '2', shadows: [] });
      const expected = await scoresOf(
        live.current!.primary,
        items.map((item) => item.features),
      );
      mock.timers.tick(2_000);
      await eventually(() => s.producer.requests.length > 0, 'the predictions');
      await s.publisher.idle();
      const predictions = s.predictions().map(decodePrediction);
      assert.deepEqual(
        predictions.map((p) => `${p.request_id}:${p.model_version}`),
        ['e0:2', 'e1:2', 'e2:2'],
      );
      assert.deepEqual(
        predictions.map((p) => p.outputs.score),
        expected,
      );
      assert.deepEqual(s.health.stalls, []);
      assert.equal(await stalled(), 0);
      assert.equal(s.deadLetters().length, 0);
      assert.equal(s.capacity.pending, 0);
      assert.ok(items.every((item) => item.entry.done));
      assert.deepEqual(s.fatal, []);
    } finally {
      mock.timers.reset();
    }
    await s.drain();
  });

  it('tries a stalled batch again as soon as the routing changes, without waiting out its backoff', async () => {
    const live = await liveWith({ primary: '9', shadows: [] });
    const s = setup(live);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      s.scoring.start();
      for (const i of [0, 1, 2]) s.batcher.add(s.pending({ id: `e${i}`, features: featuresOf(i) }));
      await eventually(() => s.health.stalls.includes('inference'), 'the inference stall');
      await live.apply({ primary: '2', shadows: [] });
      s.scoring.routingChanged();
      // No timer is ticked: the 1 s backoff is cut short by the routing change.
      await eventually(() => s.producer.requests.length > 0, 'the predictions');
      await s.publisher.idle();
      assert.deepEqual(
        s.predictions().map((p) => decodePrediction(p).model_version),
        ['2', '2', '2'],
      );
      assert.deepEqual(s.health.stalls, []);
    } finally {
      mock.timers.reset();
    }
    await s.drain();
  });

  it('reads an event again from its bytes when the live version needs a feature its row lacks', async () => {
    const live = await liveWith({ primary: '5', shadows: [] });
    const seven = live.current!.primary.featureNames;
    assert.ok(!seven.includes('card_present'));
    const schemas = await new StaticSchemas({ [FEATURE_ID]: featureSchema }).primeAll();
    // Wired as serve wires it: the scoring stage reads events again through the decode stage.
    const s = setup(live, { reread: (value) => decode.readNow(value) });
    const decode = new DecodeStage({
      decoder: new RequestDecoder(schemas, { maxValueBytes: 1_048_576, maxFeatures: 100 }, []),
      batcher: s.batcher,
      capacity: s.capacity,
      deadLetters: s.deadLetterStage,
      health: s.health,
      onFatal: (error) => s.fatal.push(error),
    });
    decode.setFeatures(seven, seven, false);

    const withCard = featuresOf(1);
    const withoutCard = featuresOf(2);
    delete withoutCard.card_present;
    const eventOf = (id: string, features: Record<string, number>) => ({
      request_id: id,
      entity_key: `card-${id}`,
      event_time: EVENT_TIME,
      features,
    });
    const read = (id: string, value: Buffer) => {
      const taken = decode.readNow(value);
      assert.ok(taken?.ok === true, id);
      assert.deepEqual(taken.features.layout, seven, 'read in the seven-feature layout');
      return s.pending({ id, row: taken.features, value });
    };
    const complete = read('complete', framed(FEATURE_ID, eventOf('complete', withCard)));
    const lacking = read('lacking', framed(FEATURE_ID, eventOf('lacking', withoutCard)));
    // Bytes whose schema is not known here: they cannot be read again at all.
    const unreadable = s.pending({
      id: 'unreadable',
      row: toFeatureRow(withCard, seven, false),
      value: framed(99, eventOf('unreadable', withCard)),
    });

    await live.apply({ primary: '2', shadows: [] });
    const eight = live.current!.primary.featureNames;
    decode.setFeatures(eight, eight, false);
    const expected = await scoresOf(live.current!.primary, [toFeatureRow(withCard, eight, false)]);
    s.scoring.start();
    for (const item of [lacking, complete, unreadable]) s.batcher.add(item);
    await s.drain();

    const predictions = s.predictions().map(decodePrediction);
    assert.deepEqual(
      predictions.map((p) => `${p.request_id}:${p.model_version}`),
      ['complete:2'],
    );
    assert.equal(
      predictions[0]!.outputs.score,
      expected[0],
      'scored on all eight features, card_present included',
    );
    const letters = s.deadLetters();
    assert.deepEqual(
      letters.map((letter) => header(letter, DLQ_HEADERS.sourceOffset)),
      [lacking.source.offset, unreadable.source.offset],
    );
    assert.deepEqual(
      letters.map((letter) => header(letter, DLQ_HEADERS.reason)),
      ['MISSING_FEATURE', 'MISSING_FEATURE'],
    );
    // The decoder's own reason for the bytes, as a fresh event lacking the feature would get.
    assert.equal(header(letters[0]!, DLQ_HEADERS.stage), 'validate');
    assert.equal(header(letters[0]!, DLQ_HEADERS.message), 'feature "card_present" is missing');
    assert.equal(header(letters[1]!, DLQ_HEADERS.stage), 'infer');
    assert.match(header(letters[1]!, DLQ_HEADERS.message)!, /version 2 needs .*card_present/);
    assert.deepEqual(letters[0]!.value, lacking.source.value);
    assert.equal(s.capacity.pending, 0);
    assert.ok([complete, lacking, unreadable].every((item) => item.entry.done));
  });

  it('never scores a row that still lacks a feature after it was read again', async () => {
    const live = await liveWith({ primary: '5', shadows: [] });
    const seven = live.current!.primary.featureNames;
    const schemas = await new StaticSchemas({ [FEATURE_ID]: featureSchema }).primeAll();
    // Decode already follows a routing that no longer needs card_present (a switch during the
    // batch): reading again gives a complete row for that routing, not for the version holding it.
    const s = setup(live, { reread: (value) => decode.readNow(value) });
    const decode = new DecodeStage({
      decoder: new RequestDecoder(schemas, { maxValueBytes: 1_048_576, maxFeatures: 100 }, []),
      batcher: s.batcher,
      capacity: s.capacity,
      deadLetters: s.deadLetterStage,
      health: s.health,
      onFatal: (error) => s.fatal.push(error),
    });
    decode.setFeatures(seven, seven, false);
    const value = framed(FEATURE_ID, {
      request_id: 'e0',
      entity_key: 'card-e0',
      event_time: EVENT_TIME,
      features: featuresOf(0),
    });
    const item = s.pending({ id: 'e0', row: toFeatureRow(featuresOf(0), seven, false), value });
    await live.apply({ primary: '2', shadows: [] });
    s.scoring.start();
    s.batcher.add(item);
    await s.drain();

    assert.equal(s.predictions().length, 0);
    const letters = s.deadLetters();
    assert.equal(letters.length, 1);
    assert.equal(header(letters[0]!, DLQ_HEADERS.reason), 'MISSING_FEATURE');
    assert.equal(header(letters[0]!, DLQ_HEADERS.stage), 'infer');
    assert.match(header(letters[0]!, DLQ_HEADERS.message)!, /version 2 needs .*card_present/);
    assert.ok(item.entry.done);
    assert.equal(s.capacity.pending, 0);
  });

  // A stall is cleared only when a batch is scored; a stalled batch whose partitions all went
  // elsewhere ends without one, and a replica left without traffic stays unready for good.
  it('leaves no inference stall behind once the stalled batch is dropped and a working version is live', async () => {
    const live = await liveWith({ primary: '9', shadows: [] });
    const s = setup(live);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      s.scoring.start();
      const items = [0, 1, 2].map((i) => s.pending({ id: `e${i}`, features: featuresOf(i) }));
      for (const item of items) s.batcher.add(item);
      await eventually(() => s.health.stalls.includes('inference'), 'the inference stall');
      await live.apply({ primary: '2', shadows: [] });
      s.ledger.lease(REQUESTS, 0).revoked = true;
      mock.timers.tick(1_000);
      await eventually(() => s.capacity.pending === 0, 'the batch to be dropped');
      assert.equal((await s.metrics.revokedEvents.get()).values[0]?.value, 3);
      assert.deepEqual(s.health.stalls, [], 'nothing is failing any more');
    } finally {
      mock.timers.reset();
    }
    await s.drain();
  });

  it('dead-letters a prediction larger than the predictions topic takes', async () => {
    const live = await liveWith({ primary: '2', shadows: [] });
    const s = setup(live, { maxPredictionBytes: 400 });
    const items = [
      s.pending({ id: 'small-0', features: featuresOf(0) }),
      s.pending({ id: `large-${'x'.repeat(1_000)}`, features: featuresOf(1) }),
      s.pending({ id: 'small-2', features: featuresOf(2) }),
    ];
    s.scoring.start();
    for (const item of items) s.batcher.add(item);
    await s.drain();

    assert.deepEqual(
      s.predictions().map((message) => decodePrediction(message).request_id),
      ['small-0', 'small-2'],
    );
    for (const message of s.predictions()) assert.ok((message.value as Buffer).length < 400);
    const letters = s.deadLetters();
    assert.equal(letters.length, 1);
    assert.equal(header(letters[0]!, DLQ_HEADERS.reason), 'PREDICTION_TOO_LARGE');
    assert.equal(header(letters[0]!, DLQ_HEADERS.stage), 'publish');
    assert.equal(header(letters[0]!, DLQ_HEADERS.sourceOffset), items[1]!.source.offset);
    assert.match(header(letters[0]!, DLQ_HEADERS.message)!, /would take \d+ bytes; predictions takes 400$/);
    assert.equal(s.capacity.pending, 0);
    assert.ok(items.every((item) => item.entry.done));
  });
});

/** Polls (letting promise continuations and inference run) until the condition holds. */
async function eventually(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  // performance.now(), because Date may be faked; a few seconds, for a loaded machine.
  const deadline = performance.now() + 10_000;
  while (!(await condition())) {
    if (performance.now() > deadline) assert.fail(`still waiting for: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
