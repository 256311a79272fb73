import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * fair_share on a real Redis, on a caller's clock (now_ms): a tenant within its share is admitted
 * while the shared limit has room; beyond it, only from capacity no other active tenant is owed.
 */
const PERIOD = 60_000;
const T0 = Date.UTC(2026, 0, 15, 10, 30); // a whole minute: the start of a window
let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('fair');
});
afterAll(() => redis.quit());

function limitKeys() {
  const tag = `${prefix}{f${n++}}`;
  return { stateKey: `${tag}:state`, tenantsKey: `${tag}:tenants`, activeKey: `${tag}:active` };
}
type Keys = ReturnType<typeof limitKeys>;
const call = (keys: Keys, tenant: string, cost: number, nowMs: number, extra: Partial<b.FairShareArgs> = {}) =>
  b.fairShare(redis, { ...keys, algo: 'fixed_window', limit: 100, periodMs: PERIOD, activeWindowMs: PERIOD, tenant, cost, nowMs, ...extra });

describe('fair_share', () => {
  it('work-conserving: a lone tenant takes the whole limit, then the shared limit denies', async () => {
    const k = limitKeys();
    for (let i = 0; i < 10; i++) expect(await call(k, 'a', 10, T0 + i)).toMatchObject({ allowed: true, share: 100, reason: 0, activeTenants: 1, used: 10 * (i + 1) });
    expect(await call(k, 'a', 1, T0 + 20)).toMatchObject({ allowed: false, remaining: 0, reason: 2, retryAfterMs: PERIOD - 20 });
    expect(await call(k, 'a', 101, T0 + 20)).toMatchObject({ allowed: false, retryAfterMs: -1, reason: 2 });
  });

  it('beyond its share a tenant takes only what the other active tenants are not owed', async () => {
    const k = limitKeys();
    expect(await call(k, 'b', 1, T0)).toMatchObject({ allowed: true, share: 100, used: 1 });
    // a joins: shares are 50 each; a takes its 50 (b is owed 49)
    expect(await call(k, 'a', 50, T0 + 1)).toMatchObject({ allowed: true, share: 50, reason: 0, activeTenants: 2, remaining: 49 });
    // a beyond its share: 49 left, all owed to b
    expect(await call(k, 'a', 1, T0 + 2)).toMatchObject({ allowed: false, reason: 3, remaining: 49, used: 50, retryAfterMs: PERIOD - 2 });
    // b takes 40 of its 49: 9 still owed
    expect(await call(k, 'b', 40, T0 + 3)).toMatchObject({ allowed: true, reason: 0, used: 41, remaining: 9 });
    expect(await call(k, 'a', 1, T0 + 4)).toMatchObject({ allowed: false, reason: 3 });
    // b beyond its share from idle capacity? none: a is owed 0, so b may take the rest
    expect(await call(k, 'b', 9, T0 + 5)).toMatchObject({ allowed: true, reason: 0, used: 50, remaining: 0 });
    expect(await call(k, 'b', 1, T0 + 6)).toMatchObject({ allowed: false, reason: 2 });
  });

  it('idle capacity: a tenant beyond its share is admitted while what is left still covers the others', async () => {
    const k = limitKeys();
    await call(k, 'a', 1, T0);
    await call(k, 'b', 1, T0); // shares 50, 50; b owed 49
    expect(await call(k, 'a', 49, T0 + 1)).toMatchObject({ allowed: true, reason: 0, used: 50, remaining: 49 });
    expect(await call(k, 'a', 1, T0 + 2)).toMatchObject({ allowed: false, reason: 3 });
    // a third tenant joins: shares 33 each; b is owed 32, c 33 - 5 = 28 after its call
    expect(await call(k, 'c', 5, T0 + 3)).toMatchObject({ allowed: true, share: 33, activeTenants: 3, remaining: 44 });
    // left 44 >= owed: a over its share (50 > 33): owed to b 32 + c 28 = 60 > 44 - 1
    expect(await call(k, 'a', 1, T0 + 4)).toMatchObject({ allowed: false, reason: 3 });
  });

  it('weights: shares are floor(limit * weight / total active weight)', async () => {
    const k = limitKeys();
    expect(await call(k, 'a', 1, T0, { weight: 3 })).toMatchObject({ share: 100 });
    expect(await call(k, 'b', 1, T0, { weight: 1 })).toMatchObject({ share: 25 });
    expect(await call(k, 'a', 1, T0, { weight: 3 })).toMatchObject({ share: 75, used: 2 });
    // a weight change takes effect at once
    expect(await call(k, 'b', 1, T0, { weight: 5 })).toMatchObject({ share: 62, used: 2 });
    expect(await call(k, 'a', 1, T0, { weight: 3 })).toMatchObject({ share: 37 });
  });

  it('a tenant stops counting active_window_ms after it last asked; its usage goes with it', async () => {
    const k = limitKeys();
    await call(k, 'a', 10, T0);
    expect(await call(k, 'b', 10, T0 + 10)).toMatchObject({ share: 50, activeTenants: 2 });
    // at T0 + PERIOD - 1 a is still active, at T0 + PERIOD it is not (next window too)
    expect(await call(k, 'b', 1, T0 + PERIOD - 1)).toMatchObject({ share: 50, activeTenants: 2 });
    expect(await call(k, 'b', 1, T0 + PERIOD)).toMatchObject({ share: 100, activeTenants: 1, used: 1 });
    expect(await redis.hexists(k.tenantsKey, 'w:a')).toBe(0);
    expect(await redis.hexists(k.tenantsKey, 'u:a')).toBe(0);
    expect(await redis.zscore(k.activeKey, 'a')).toBeNull();
    expect(Number(await redis.hget(k.tenantsKey, 'W'))).toBe(1);
  });

  it('bounded: a new tenant beyond max_tenants is denied and writes nothing, until the oldest leaves', async () => {
    const k = limitKeys();
    for (let i = 0; i < 3; i++) await call(k, `t${i}`, 1, T0 + i, { maxTenants: 3 });
    const full = await call(k, 'x', 1, T0 + 10, { maxTenants: 3 });
    expect(full).toMatchObject({ allowed: false, reason: 4, activeTenants: 3, retryAfterMs: PERIOD - 10 });
    expect(await redis.zcard(k.activeKey)).toBe(3);
    // an active tenant still asks as usual
    expect(await call(k, 't1', 1, T0 + 11, { maxTenants: 3 })).toMatchObject({ allowed: true, activeTenants: 3 });
    // once t0 has left (T0 + PERIOD), x gets its place
    expect(await call(k, 'x', 1, T0 + PERIOD, { maxTenants: 3 })).toMatchObject({ allowed: true, activeTenants: 3 });
  });

  it('the state keys expire once every tenant has left (server clock)', async () => {
    const k = limitKeys();
    await b.fairShare(redis, { ...k, algo: 'sliding_window', limit: 10, periodMs: 1_000, activeWindowMs: 5_000, tenant: 'a' });
    const ttl = await redis.pttl(k.activeKey);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5_000);
    expect(await redis.pttl(k.tenantsKey)).toBeLessThanOrEqual(5_000);
  });

  it('sliding_window: the shared limit decides first, with its own state format', async () => {
    const k = limitKeys();
    for (let i = 0; i < 4; i++) await call(k, 'a', 25, T0, { algo: 'sliding_window' });
    expect(await call(k, 'b', 1, T0 + PERIOD / 2, { algo: 'sliding_window' })).toMatchObject({ allowed: false, reason: 2, remaining: 0 });
    // half a window later half of the previous count has rolled off (and a has left: b alone)
    expect(await call(k, 'b', 50, T0 + PERIOD + PERIOD / 2, { algo: 'sliding_window' })).toMatchObject({ allowed: true, share: 100, activeTenants: 1, reason: 0, remaining: 0 });
    expect(await redis.get(k.stateKey)).toBe(`${T0 + PERIOD}:50:100`);
  });

  it('refuses bad input with BADARG, writing nothing', async () => {
    const k = limitKeys();
    await expect(call(k, 'a', 1, T0, { activeWindowMs: PERIOD - 1 })).rejects.toThrow(/BADARG redlimit fair_share: active_window_ms must be at least period_ms/);
    await expect(call(k, 'a', 0, T0)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(call(k, '', 1, T0)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(call(k, 'a', 1, T0, { weight: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(call(k, 'a', 1, T0, { maxTenants: 1001 })).rejects.toBeInstanceOf(InvalidArgumentError);
    // the Lua refuses too, when the TS checks are bypassed
    await expect(redis.eval(b.fairShareScript.source, 3, k.stateKey, k.tenantsKey, k.activeKey, 'gcra', '10', '1000', 'a', '1000')).rejects.toThrow(/^BADARG redlimit fair_share: algo/);
    await expect(redis.eval(b.fairShareScript.source, 3, k.stateKey, k.tenantsKey, k.activeKey, 'fixed_window', '10', '1000', 'a', '999')).rejects.toThrow(/^BADARG/);
    expect(await redis.exists(k.stateKey, k.tenantsKey, k.activeKey)).toBe(0);
  });
});
