import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { adaptiveFeedbackScript } from '../../generated/index.js';
import { runScript } from '../../src/runtime/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.disconnect());

describe('adaptive_feedback (AIMD), on the caller clock', () => {
  it('multiplies down once per cooldown, adds a step per success period up to the ceiling, pauses on Retry-After, floors', async () => {
    const p = uniquePrefix('aimd');
    const keys = [`${p}{policies}:version`, `${p}{policies}:adaptive:up`];
    // outcome target ceiling floor decrease_ppm increase success_period_ms cooldown_ms retry_after_ms now_ms
    const call = async (outcome: string, now: number, o: { ceiling?: number; retry?: number; floor?: number } = {}) => {
      const r = (await runScript(redis, adaptiveFeedbackScript, keys, [outcome, 'up', String(o.ceiling ?? 100), String(o.floor ?? 10), '500000', '10', '1000', '1000', String(o.retry ?? 0), String(now)])) as number[];
      return { learned: r[0], paused: r[1], version: r[2], changed: r[3] };
    };
    expect(await call('success', 1_000)).toEqual({ learned: 100, paused: 0, version: 0, changed: 0 }); // at the ceiling: nothing written
    expect(await call('overload', 1_000)).toMatchObject({ learned: 50, changed: 1, version: 1 });
    expect(await call('overload', 1_500)).toMatchObject({ learned: 50, changed: 0, version: 1 }); // same burst
    expect(await call('overload', 2_000)).toMatchObject({ learned: 25, changed: 1, version: 2 });
    expect(await call('success', 2_500)).toMatchObject({ learned: 25, changed: 0 }); // within a period of the decrease
    expect(await call('success', 3_000)).toMatchObject({ learned: 35, changed: 1 });
    expect(await call('success', 3_999)).toMatchObject({ learned: 35, changed: 0 });
    expect(await call('success', 4_000)).toMatchObject({ learned: 45, changed: 1 });
    expect(await call('overload', 5_000, { retry: 30_000 })).toMatchObject({ learned: 22, paused: 35_000, changed: 1 });
    for (let t = 6_000; t < 12_000; t += 1_000) await call('overload', t);
    expect((await call('success', 12_000 - 1)).learned).toBe(10); // the floor
    expect(await call('success', 20_000, { ceiling: 15 })).toMatchObject({ learned: 15 }); // +10, capped by a lowered ceiling
    expect(await redis.get(keys[1]!)).toMatch(/^15:\d+:20000:35000$/);
  });
});
