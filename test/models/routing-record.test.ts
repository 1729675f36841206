import assert from 'node:assert/strict';
import avro from 'avsc';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { StreamscoreError } from '../../src/errors.js';
import { describeSpec, fromRecord, toRecord, type RoutingEntry } from '../../src/models/routing-record.js';

const type = avro.Type.forSchema(JSON.parse(readFileSync('schemas/routing.avsc', 'utf8')) as avro.Schema);

const entry: RoutingEntry = {
  model: 'fraud',
  spec: { primary: '2', canary: { version: '3', share: 0.05 }, shadows: ['4', '5'], fallback: '1' },
  rollout: {
    steps: [
      { share: 0.05, holdMs: 60_000 },
      { share: 0.5, holdMs: 120_000 },
    ],
  },
  updatedAt: Date.parse('2026-12-01T08:00:00Z'),
  updatedBy: 'ops@host',
  reason: 'canary of 3',
};

function roundTrip(value: RoutingEntry): RoutingEntry {
  return fromRecord(type.fromBuffer(type.toBuffer(toRecord(value))), 'test');
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof StreamscoreError, String(error));
    assert.equal(error.code, 'ROUTING_INVALID');
    return error.message;
  }
  assert.fail('expected ROUTING_INVALID');
}

describe('routing records', () => {
  it('carry every part of a routing through Avro and back', () => {
    assert.deepEqual(roundTrip(entry), entry);
  });

  it('map absent parts to null in Avro and back to absent', () => {
    const bare: RoutingEntry = {
      ...entry,
      spec: { primary: 'latest', canary: undefined, shadows: [] },
      rollout: undefined,
      reason: '',
    };
    const record = toRecord(bare);
    assert.equal(record.canary, null);
    assert.equal(record.fallback, null);
    assert.equal(record.rollout, null);
    const back = roundTrip(bare);
    assert.deepEqual(back.spec, { primary: 'latest', canary: undefined, shadows: [] });
    assert.equal('fallback' in back.spec, false);
    assert.equal(back.rollout, undefined);
  });

  it('read a record written before the optional fields existed, with their defaults', () => {
    const old = avro.Type.forSchema({
      type: 'record',
      name: 'RoutingRecord',
      namespace: 'io.streamscore',
      fields: [
        { name: 'model_name', type: 'string' },
        { name: 'primary', type: 'string' },
        { name: 'updated_at', type: 'long' },
        { name: 'updated_by', type: 'string' },
      ],
    });
    const bytes = old.toBuffer({ model_name: 'fraud', primary: '2', updated_at: 5, updated_by: 'x' });
    const read: unknown = type.fromBuffer(bytes, type.createResolver(old));
    const back = fromRecord(read, 'test');
    assert.deepEqual(back.spec, { primary: '2', canary: undefined, shadows: [] });
    assert.equal(back.reason, '');
    assert.equal(back.updatedAt, 5);
  });

  it('refuse a record that breaks the routing rules, naming the rule', () => {
    const bad = { ...toRecord(entry), canary: { version: '3', share: 1.5 } };
    assert.match(
      refusal(() => fromRecord(bad, 'routing offset 7')),
      /routing offset 7: .*canary share 1.5 is not between 0 and 1/,
    );
    const latest = { ...toRecord(entry), shadows: ['latest'] };
    assert.match(
      refusal(() => fromRecord(latest, 'x')),
      /shadows must name versions/,
    );
    assert.match(
      refusal(() => fromRecord({ primary: 2 }, 'x')),
      /"model_name" is not a string/,
    );
  });

  it('describe a routing in one line', () => {
    assert.equal(describeSpec(entry.spec), 'primary 2, canary 3 at 0.05, shadows 4, 5, fallback 1');
    assert.equal(describeSpec({ primary: 'latest', shadows: [] }), 'primary latest');
  });
});
