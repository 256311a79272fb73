import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * Concurrency and rate in one atomic multi call: an item of algo concurrency holds a slot for
 * its holder (the holder set of concurrency_acquire) only when every limit admits.
 */
const T0 = Date.UTC(2026, 0, 15, 10, 30);
const TTL = 10_000;
let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('cmulti');
});
afterAll(() => redis.quit());

/** A subject's keys: one hash tag, a slot set and a rate limit (a fixed window of a minute: T0 starts one). */
function subject() {
  const tag = `${prefix}{s${n++}}`;
  const slots = `${tag}:slots`;
  const rate = `${tag}:rpm`;
  const limits = (holder: string, o: { limit?: number; rateLimit?: number; sharePpm?: number; cost?: number } = {}) => [
    { key: slots, algo: 'concurrency' as const, limit: o.limit ?? 2, periodMs: TTL, holder, sharePpm: o.sharePpm, cost: o.cost },
    { key: rate, algo: 'fixed_window' as const, limit: o.rateLimit ?? 100, periodMs: 60_000 },
  ];
  const call = (holder: string, nowMs: number, o?: Parameters<typeof limits>[1]) => b.multi(redis, { limits: limits(holder, o), nowMs });
  const rateLeft = async (nowMs: number) => (await b.fixedWindowPeek(redis, { key: rate, limit: 100, periodMs: 60_000, cost: 0, nowMs })).remaining;
  return { slots, rate, limits, call, rateLeft };
}

describe('multi with a concurrency item', () => {
  it('an admitted call holds a slot until released or expired; a full set denies and consumes nothing', async () => {
    const s = subject();
    expect(await s.call('a', T0)).toMatchObject({ allowed: true, limits: [{ allowed: true, remaining: 1, resetAfterMs: TTL }, { remaining: 99 }] });
    expect(Number(await redis.zscore(s.slots, 'a'))).toBe(T0 + TTL);
    expect(await s.call('b', T0 + 1_000)).toMatchObject({ allowed: true, limits: [{ remaining: 0, resetAfterMs: TTL }, { remaining: 98 }] });
    const full = await s.call('c', T0 + 2_000);
    expect(full).toMatchObject({ allowed: false, deniedIndex: 1, retryAfterMs: 8_000, limits: [{ allowed: false, remaining: 0, retryAfterMs: 8_000 }, { allowed: true, remaining: 98 }] });
    expect(await redis.zscore(s.slots, 'c')).toBeNull();
    expect(await s.rateLeft(T0 + 2_000)).toBe(98);
    // release (the existing script) frees the slot at once
    expect(await b.concurrencyRelease(redis, { key: s.slots, leaseId: 'a', nowMs: T0 + 3_000 })).toEqual({ released: true, inFlight: 1 });
    expect(await s.call('c', T0 + 3_000)).toMatchObject({ allowed: true });
    // a holder that never releases frees its slot after the TTL
    expect(await s.call('d', T0 + 11_000 - 1)).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await s.call('d', T0 + 11_000)).toMatchObject({ allowed: true, limits: [{ remaining: 0 }, { remaining: 96 }] });
    expect((await redis.zrange(s.slots, 0, -1)).sort()).toEqual(['c', 'd']);
  });

  it('a rate limit that denies takes no slot; the same holder again renews its slot (always admitted)', async () => {
    const s = subject();
    expect(await s.call('a', T0, { rateLimit: 1 })).toMatchObject({ allowed: true });
    expect(await s.call('b', T0, { rateLimit: 1 })).toMatchObject({ allowed: false, deniedIndex: 2, limits: [{ allowed: true, remaining: 1 }, { allowed: false }] });
    expect(await redis.zcard(s.slots)).toBe(1);
    const renewed = await s.call('a', T0 + 5_000, { limit: 1, rateLimit: 100 });
    expect(renewed).toMatchObject({ allowed: true, limits: [{ remaining: 0, resetAfterMs: TTL }, { remaining: 98 }] });
    expect(Number(await redis.zscore(s.slots, 'a'))).toBe(T0 + 5_000 + TTL);
    expect(await b.concurrencyPeek(redis, { key: s.slots, limit: 1, nowMs: T0 + 5_000 })).toMatchObject({ inFlight: 1 });
  });

  it('cost 0 asks without holding; multi_peek writes nothing', async () => {
    const s = subject();
    expect(await s.call('a', T0, { cost: 0 })).toMatchObject({ allowed: true, limits: [{ remaining: 2 }, { remaining: 99 }] });
    expect(await redis.exists(s.slots)).toBe(0);
    expect(await b.multiPeek(redis, { limits: s.limits('a'), nowMs: T0 })).toMatchObject({ allowed: true, limits: [{ remaining: 2 }, { remaining: 99 }] });
    expect(await redis.exists(s.slots)).toBe(0);
  });

  it('priority classes on slots: a class of half the slots leaves the other half to higher classes', async () => {
    const s = subject();
    const half = { limit: 4, sharePpm: 500_000 };
    const slots = async (p: ReturnType<typeof s.call>) => (await p).limits[0];
    expect(await slots(s.call('a', T0, half))).toMatchObject({ allowed: true, remaining: 3 });
    expect(await slots(s.call('b', T0 + 1_000, half))).toMatchObject({ allowed: true, remaining: 2 });
    // a third needs 1 + 2 free: it waits for the first holder to expire
    expect(await s.call('c', T0 + 2_000, half)).toMatchObject({ allowed: false, retryAfterMs: 8_000, limits: [{ remaining: 2 }, { allowed: true }] });
    expect(await s.call('c', T0 + 2_000, { limit: 4, sharePpm: 200_000 })).toMatchObject({ allowed: false, retryAfterMs: -1 }); // floor(0.8) = 0 slots
    expect(await slots(s.call('c', T0 + 2_000, { limit: 4 }))).toMatchObject({ allowed: true, remaining: 1 });
    // needing two holders to expire: the second soonest
    expect(await s.call('d', T0 + 2_000, half)).toMatchObject({ allowed: false, retryAfterMs: 9_000 });
    // concurrency_acquire takes the same class
    expect(await b.concurrencyAcquire(redis, { key: s.slots, limit: 4, periodMs: TTL, leaseId: 'e', sharePpm: 500_000, nowMs: T0 + 2_000 })).toEqual({ allowed: false, remaining: 1, resetAfterMs: TTL, retryAfterMs: 9_000 });
    expect(await b.concurrencyPeek(redis, { key: s.slots, limit: 4, sharePpm: 500_000, nowMs: T0 + 2_000 })).toMatchObject({ allowed: false, remaining: 1 });
    expect(await b.concurrencyPeek(redis, { key: s.slots, limit: 4, nowMs: T0 + 2_000 })).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('refuses a missing, empty or too long holder, cost above 1 and limit above 1e6, in Lua and writing nothing', async () => {
    const s = subject();
    const raw = (fields: string[]) => redis.eval(b.multiScript.source, 1, s.slots, '', '', ...fields);
    const base = ['concurrency', '2', '1000', '1', '', '', '', ''];
    await expect(raw([...base, ''])).rejects.toThrow(/^BADARG redlimit multi: holder\[1\] is required for algo concurrency/);
    await expect(raw([...base, 'x'.repeat(129)])).rejects.toThrow(/^BADARG redlimit multi: holder\[1\] \(ARGV\[11\]\) must be at most 128 bytes, got 129/);
    await expect(raw(['concurrency', '2', '1000', '2', '', '', '', '', 'h'])).rejects.toThrow(/^BADARG redlimit multi: cost\[1\] must be between 0 and 1 for algo concurrency, got 2/);
    await expect(raw(['concurrency', '1000001', '1000', '1', '', '', '', '', 'h'])).rejects.toThrow(/^BADARG redlimit multi: limit\[1\] must be between 1 and 1000000 for algo concurrency/);
    await expect(raw(['concurrency', '2', '', '1', '', '', '', '', 'h'])).rejects.toThrow(/^BADARG redlimit multi: period_ms\[1\] is required for algo concurrency/);
    await expect(b.multi(redis, { limits: [{ key: s.slots, algo: 'concurrency', limit: 2, periodMs: 1_000, holder: 'x'.repeat(129) }] })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await redis.exists(s.slots)).toBe(0);
  });

  it('a concurrency item on a key of another type fails with WRONGTYPE and writes nothing', async () => {
    const s = subject();
    await redis.set(s.slots, 'x');
    await expect(s.call('a', T0)).rejects.toThrow(/WRONGTYPE/);
    expect(await redis.exists(s.rate)).toBe(0);
  });
});
