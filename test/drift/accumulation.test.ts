import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CUSUM_START, CusumMemory, accumulate } from '../../src/drift/accumulation.js';
import { DEFAULT_THRESHOLDS } from '../../src/drift/status.js';
import { Random } from '../../src/produce/generator.js';

const { cusumAllowance: k, cusumLimit: h } = DEFAULT_THRESHOLDS;

describe('accumulate (two-sided CUSUM)', () => {
  it('adds z minus the allowance on each side, never below 0, capped at twice the limit', () => {
    let state = accumulate(CUSUM_START, 3, k, h);
    assert.deepEqual(state, { up: 2, down: 0 });
    state = accumulate(state, 2.5, k, h);
    assert.deepEqual(state, { up: 3.5, down: 0 });
    state = accumulate(state, -4, k, h);
    assert.deepEqual(state, { up: 0, down: 3 });
    for (let i = 0; i < 20; i += 1) state = accumulate(state, -10, k, h);
    assert.deepEqual(state, { up: 0, down: 2 * h });
    assert.deepEqual(accumulate(state, null, k, h), state, 'a window too small to test changes nothing');
  });

  it('crosses the limit by noise rarely: standard normal z, 20,000 windows, each side', () => {
    const random = new Random(5);
    let state = { ...CUSUM_START };
    let alarms = 0;
    let above = false;
    for (let i = 0; i < 20_000; i += 1) {
      state = accumulate(state, random.normal(), k, h);
      const now = state.up > h || state.down > h;
      if (now && !above) alarms += 1;
      above = now;
    }
    // Siegmund's approximation: about one crossing per 15,000 windows a side.
    assert.ok(alarms <= 6, `${alarms} alarms`);
  });

  it('crosses it within three windows of a steady move of 3 standard errors a window', () => {
    let state = { ...CUSUM_START };
    const windows = [3, 3, 3].map((z) => (state = accumulate(state, z, k, h)));
    assert.deepEqual(
      windows.map((s) => s.up > h),
      [false, false, true],
    );
  });
});

describe('CusumMemory', () => {
  it('keeps each version apart and forgets one whose profile was replaced', () => {
    const memory = new CusumMemory();
    memory.set('fraud/1', new Map([['feature:amount', { up: 1, down: 0 }]]));
    assert.deepEqual(memory.of('fraud/1').get('feature:amount'), { up: 1, down: 0 });
    assert.equal(memory.of('fraud/2').size, 0);
    memory.forget('fraud/1');
    assert.equal(memory.of('fraud/1').size, 0);
  });
});
