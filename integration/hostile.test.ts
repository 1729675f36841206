/**
 * The records that used to stop a replica, or a whole group, sent between good events on a real
 * broker: each ends in the dead-letter topic with its reason, every good event is scored, and a
 * fresh replica reading the same records from the start is not stuck on any of them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CompressionTypes, type Message } from 'kafkajs';
import { DLQ_HEADERS } from '../src/codec/dead-letter.js';
import type { Prediction } from '../src/codec/predictions.js';
import { registerValueSchema } from '../src/codec/registry.js';
import { avroDouble, avroString, framed, varint } from '../test/support/avro.js';
import {
  ServeProcess,
  collect,
  connectProducer,
  createTopics,
  decodeAll,
  fraudEvents,
  metricValue,
  registerFeatureSchema,
  registry,
  registryClient,
  type TestTopics,
} from './harness.js';

const featureSchema = JSON.parse(readFileSync('schemas/feature-event.avsc', 'utf8')) as {
  fields: object[];
};

describe('serve: hostile records between good events', () => {
  let topics: TestTopics & { remove(): Promise<void> };
  let outputs: TestTopics & { remove(): Promise<void> };
  const replicas: ServeProcess[] = [];

  before(async () => {
    topics = await createTopics('hostile', 3);
    outputs = await createTopics('hostile-b', 3);
  });
  after(async () => {
    for (const replica of replicas) await replica.stop('SIGKILL');
    await topics.remove();
    await outputs.remove();
  });

  it('dead-letters each with its reason, scores the rest, and leaves no replica stuck', async () => {
    const featureId = await registerFeatureSchema(topics.requests);
    // A producer's evolved schema with extra fields the model does not use.
    const extendedId = await registerValueSchema(registryClient, topics.requests, {
      ...featureSchema,
      fields: [
        { name: 'tags', type: { type: 'array', items: 'string' }, default: [] },
        { name: 'src', type: ['null', 'string'], default: null },
        { name: 'channel', type: { type: 'enum', name: 'Channel', symbols: ['WEB', 'APP'] }, default: 'WEB' },
        { name: 'big', type: 'long', default: 0 },
        ...featureSchema.fields,
      ],
    });
    const good = fraudEvents(300, { seed: 5, runId: 'hostile' });
    const identity = (id: string) => [
      ...avroString(id),
      ...avroString(`entity-${id}`),
      ...varint(BigInt(Date.now())),
    ];
    const features = good[0]!.features;
    const featureEntries = (entries: [string, number][]) => [
      ...varint(BigInt(entries.length)),
      ...entries.flatMap(([name, value]) => [...avroString(name), ...avroDouble(value)]),
      0,
    ];
    const extendedPrefix = (tags: number[], src: number[], channel: number[], big: number[]) => [
      ...tags,
      ...src,
      ...channel,
      ...big,
    ];
    const hostile: [string, Buffer | null, string][] = [
      // A features map that claims 2^40 entries in 46 bytes: avsc looped for hours on it.
      [
        'map-2^40',
        framed(featureId, [
          ...identity('m'),
          ...varint(2n ** 40n),
          ...avroString('amount'),
          ...avroDouble(1),
          0,
        ]),
        'UNDECODABLE',
      ],
      // An array that claims 2e8 items: avsc allocated them and the process ran out of memory.
      ['array-2e8', framed(extendedId, [...varint(200_000_000n), 0, 0]), 'UNDECODABLE'],
      // A union branch byte out of range: avsc threw out of the fetch handler, forever.
      [
        'union',
        framed(extendedId, [
          ...extendedPrefix([0], [6], [0], [0]),
          ...identity('u'),
          ...featureEntries(Object.entries(features)),
        ]),
        'UNDECODABLE',
      ],
      [
        'enum',
        framed(extendedId, [
          ...extendedPrefix([0], [0], [14], [0]),
          ...identity('n'),
          ...featureEntries(Object.entries(features)),
        ]),
        'UNDECODABLE',
      ],
      [
        '1e308',
        framed(featureId, [
          ...identity('f'),
          ...featureEntries(Object.entries({ ...features, amount: 1e308 })),
        ]),
        'NON_FINITE_FEATURE',
      ],
      [
        'repeat',
        framed(featureId, [
          ...identity('r'),
          ...featureEntries([...Object.entries(features), ['amount', 3]]),
        ]),
        'DUPLICATE_FEATURE',
      ],
      [
        'wide',
        framed(featureId, [
          ...identity('w'),
          ...featureEntries([
            ...Object.entries(features),
            ...Array.from({ length: 10_000 }, (_, i): [string, number] => [`x${i}`, i]),
          ]),
        ]),
        'TOO_MANY_FEATURES',
      ],
      ['null', null, 'EMPTY_VALUE'],
      // Garbage as large as the broker takes: its dead letter cannot carry it and omits it.
      ['huge', Buffer.alloc(1_048_361, 7), 'BAD_FRAMING'],
    ];
    // Valid values that avsc itself would refuse to decode (a long beyond 2^53 in an unused field).
    const extraGood = framed(extendedId, [
      ...extendedPrefix([0], [0], [0], varint(2n ** 60n)),
      ...identity('big-long'),
      ...featureEntries(Object.entries(features)),
    ]);

    const producer = await connectProducer();
    const plain = async (event: (typeof good)[number]): Promise<Message> => ({
      key: event.entity_key,
      value: await registry.encode(featureId, { ...event, event_time: Date.now() }),
    });
    try {
      for (let i = 0; i < good.length; i += 30) {
        const messages = await Promise.all(good.slice(i, i + 30).map(plain));
        await producer.send({ topic: topics.requests, messages: messages.slice(0, 7) });
        const bad = hostile[i / 30];
        // Alone in its request: the largest is as large as a record batch may be.
        if (bad !== undefined)
          await producer.send({
            topic: topics.requests,
            messages: [{ key: `bad-${bad[0]}`, value: bad[1] }],
          });
        await producer.send({ topic: topics.requests, messages: messages.slice(7) });
      }
      await producer.send({ topic: topics.requests, messages: [{ key: 'big-long', value: extraGood }] });
      // A gzip batch of 5,000 bad 1 KB values: 5 MB of dead letters, from one fetch.
      await producer.send({
        topic: topics.requests,
        compression: CompressionTypes.GZIP,
        messages: Array.from({ length: 5_000 }, (_, i) => ({
          key: `junk-${i % 13}`,
          value: Buffer.alloc(1_000, 0x41 + (i % 26)),
        })),
      });
      await producer.send({
        topic: topics.requests,
        messages: await Promise.all(fraudEvents(50, { seed: 6, runId: 'after' }).map(plain)),
      });
    } finally {
      await producer.disconnect();
    }
    const expectedIds = new Set([
      ...good.map((e) => e.request_id),
      'big-long',
      ...fraudEvents(50, { seed: 6, runId: 'after' }).map((e) => e.request_id),
    ]);

    const checkOutputs = async (out: TestTopics, replica: ServeProcess) => {
      const predictions = await decodeAll<Prediction>(
        await collect(out.predictions, { count: expectedIds.size, timeoutMs: 90_000 }),
      );
      const scored = new Set(predictions.map((p) => p.request_id));
      assert.deepEqual(
        [...expectedIds].filter((id) => !scored.has(id)),
        [],
        'every good event is scored',
      );
      assert.deepEqual(
        [...scored].filter((id) => !expectedIds.has(id)),
        [],
        'nothing else is scored',
      );
      const dead = await collect(out.dlq, { count: hostile.length + 5_000, timeoutMs: 90_000 });
      const byKey = new Map(dead.map((record) => [record.key, record]));
      for (const [name, value, reason] of hostile) {
        const letter = byKey.get(`bad-${name}`);
        assert.ok(letter, `no dead letter for ${name}`);
        assert.equal(
          letter.headers[DLQ_HEADERS.reason],
          reason,
          `${name}: ${letter.headers[DLQ_HEADERS.message]}`,
        );
        if (name === 'huge') {
          assert.equal(letter.value, null);
          assert.equal(letter.headers[DLQ_HEADERS.valueOmitted], '1048361');
        } else {
          assert.deepEqual(letter.value, value, `${name}: the original bytes`);
        }
        assert.equal(letter.headers[DLQ_HEADERS.sourceTopic], topics.requests);
      }
      const junk = dead.filter((record) => record.key?.startsWith('junk-'));
      assert.equal(junk.length, 5_000);
      assert.ok(
        junk.every(
          (record) => record.headers[DLQ_HEADERS.reason] === 'BAD_FRAMING' && record.value?.length === 1_000,
        ),
      );
      const metrics = await replica.metrics();
      assert.equal(metricValue(metrics, 'streamscore_dead_letters_total', { reason: 'BAD_FRAMING' }), 5_001);
      assert.equal(metricValue(metrics, 'streamscore_dead_letter_values_omitted_total'), 1);
      assert.equal(replica.child.exitCode, null, 'the replica is still running');
    };

    const first = ServeProcess.start(topics);
    replicas.push(first);
    await first.ready();
    await checkOutputs(topics, first);
    const probe = await fetch(`http://127.0.0.1:${first.metricsPort}/readyz`);
    assert.equal(probe.status, 200, 'ready after all of it');
    const errors = first.lines.filter((line) => Number(line.level) >= 50);
    assert.deepEqual(errors, [], 'no error lines for bad input');

    // A fresh replica (its own group and outputs) reads every hostile record again from the start.
    const second = ServeProcess.start({
      ...topics,
      predictions: outputs.predictions,
      dlq: outputs.dlq,
      shadow: outputs.shadow,
      group: outputs.group,
    });
    replicas.push(second);
    await second.ready();
    await checkOutputs(outputs, second);
    assert.deepEqual(await Promise.all(replicas.map((r) => r.stop())), [
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
  });
});
