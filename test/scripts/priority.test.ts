import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * Priority classes: a call of share s (ppm) is admitted only if at least
 * keep = capacity - floor(capacity * s / 1e6) units are left after it; it takes only its cost.
 */
const T0 = Date.UTC(2026, 0, 15, 10, 30); // a Thursday, on a whole second
let redis: Redis;
let prefix: string;
let n = 0;
const key = () => `${prefix}{p}:${n++}`;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('prio');
});
afterAll(() => redis.quit());

type Single = (k: string, cost: number, sharePpm: number | undefined, nowMs: number) => Promise<{ allowed: boolean; remaining: number; resetAfterMs: number; retryAfterMs: number }>;
/** Every consume script with a capacity of 7 (burst for the buckets, the limit for the rest). */
const singles: Record<string, Single> = {
  gcra: (k, cost, sharePpm, nowMs) => b.gcra(redis, { key: k, limit: 7, periodMs: 7_000, cost, sharePpm, nowMs }),
  token_bucket: (k, cost, sharePpm, nowMs) => b.tokenBucket(redis, { key: k, limit: 1, periodMs: 1_000, burst: 7, cost, sharePpm, nowMs }),
  fixed_window: (k, cost, sharePpm, nowMs) => b.fixedWindow(redis, { key: k, limit: 7, periodMs: 60_000, cost, sharePpm, nowMs }),
  sliding_window: (k, cost, sharePpm, nowMs) => b.slidingWindow(redis, { key: k, limit: 7, periodMs: 60_000, cost, sharePpm, nowMs }),
  sliding_log: (k, cost, sharePpm, nowMs) => b.slidingLog(redis, { key: k, limit: 7, periodMs: 60_000, cost, sharePpm, nowMs }),
  quota: (k, cost, sharePpm, nowMs) => b.quota(redis, { key: k, limit: 7, unit: 'day', cost, sharePpm, nowMs }),
};

describe('priority classes on every single-limit script', () => {
  it.each(Object.keys(singles))('%s: each class stops where it would leave less than its keep; takes only its cost', async (algo) => {
    const f = singles[algo]!;
    const k = key();
    // share 0.5 of 7: may use floor(3.5) = 3, must leave 4
    for (let i = 0; i < 3; i++) expect(await f(k, 1, 500_000, T0)).toMatchObject({ allowed: true, remaining: 6 - i, retryAfterMs: 0 });
    const denied = await f(k, 1, 500_000, T0);
    expect(denied).toMatchObject({ allowed: false, remaining: 4 });
    expect(denied.retryAfterMs).toBeGreaterThan(0);
    // cost + keep > capacity: that class can never pass it
    expect(await f(k, 4, 500_000, T0)).toMatchObject({ allowed: false, remaining: 4, retryAfterMs: -1 });
    // share 0.8: may use floor(5.6) = 5, must leave 2
    expect(await f(k, 2, 800_000, T0)).toMatchObject({ allowed: true, remaining: 2 });
    expect(await f(k, 1, 800_000, T0)).toMatchObject({ allowed: false, remaining: 2 });
    // no class (share 1e6): everything that is left
    expect(await f(k, 2, undefined, T0)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it.each(Object.keys(singles))('%s: share 0 only asks whether the limit is untouched; an unsent share_ppm decides as before (v1 ARGV)', async (algo) => {
    const f = singles[algo]!;
    const k = key();
    expect(await f(k, 0, 0, T0)).toMatchObject({ allowed: true, remaining: 7 });
    expect(await f(k, 1, 0, T0)).toMatchObject({ allowed: false, retryAfterMs: -1 });
    expect(await f(k, 1, 1_000_000, T0)).toMatchObject({ allowed: true, remaining: 6 });
    expect(await f(k, 0, 0, T0)).toMatchObject({ allowed: false, remaining: 6 });
    expect(await f(k, 6, undefined, T0)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('keep is exact at the rounding edge: floor(capacity * share / 1e6)', async () => {
    const k = key();
    const q = (cost: number, sharePpm: number) => b.quota(redis, { key: k, limit: 3, unit: 'day', cost, sharePpm, nowMs: T0 });
    expect(await q(1, 333_333)).toMatchObject({ allowed: false, retryAfterMs: -1 }); // floor(0.999999) = 0 usable
    expect(await q(1, 333_334)).toMatchObject({ allowed: true, remaining: 2 }); // floor(1.000002) = 1 usable
    expect(await q(1, 333_334)).toMatchObject({ allowed: false, remaining: 2 });
    // a quota of 1e15 units: 0.999999 of it leaves exactly 1e9
    const big = key();
    const qb = (cost: number, sharePpm?: number) => b.quota(redis, { key: big, limit: 1e15, unit: 'month', cost, sharePpm, nowMs: T0 });
    expect(await qb(1e15 - 1e9, 999_999)).toMatchObject({ allowed: true, remaining: 1e9 });
    expect(await qb(1, 999_999)).toMatchObject({ allowed: false, remaining: 1e9 });
    expect(await qb(1e9)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('gcra and token_bucket: retry_after_ms is the exact wait until cost + keep fits', async () => {
    for (const f of [b.gcra, b.tokenBucket]) {
      const k = key();
      const args = { key: k, limit: 10, periodMs: 1_000, burst: 10 };
      expect(await f(redis, { ...args, cost: 5, nowMs: T0 })).toMatchObject({ allowed: true, remaining: 5 });
      // share 0.5 keeps 5: one more needs 6, there are 5, one unit refills in 100 ms
      expect(await f(redis, { ...args, sharePpm: 500_000, nowMs: T0 })).toEqual({ allowed: false, remaining: 5, resetAfterMs: 500, retryAfterMs: 100 });
      expect(await f(redis, { ...args, sharePpm: 500_000, nowMs: T0 + 99 })).toMatchObject({ allowed: false, retryAfterMs: 1 });
      expect(await f(redis, { ...args, sharePpm: 500_000, nowMs: T0 + 100 })).toMatchObject({ allowed: true, remaining: 5 });
    }
  });

  it('windows and the log: retry_after_ms is when cost + keep fits', async () => {
    const fw = key();
    const fwArgs = { key: fw, limit: 4, periodMs: 1_000 };
    await b.fixedWindow(redis, { ...fwArgs, cost: 2, nowMs: T0 + 300 });
    expect(await b.fixedWindow(redis, { ...fwArgs, sharePpm: 500_000, nowMs: T0 + 300 })).toMatchObject({ allowed: false, remaining: 2, retryAfterMs: 700 });

    const sl = key();
    const slArgs = { key: sl, limit: 4, periodMs: 1_000 };
    await b.slidingLog(redis, { ...slArgs, nowMs: T0 });
    await b.slidingLog(redis, { ...slArgs, nowMs: T0 + 100 });
    // needs 1 + keep 2 on top of 2 used: the first entry must leave (at T0 + 1000)
    expect(await b.slidingLog(redis, { ...slArgs, sharePpm: 500_000, nowMs: T0 + 200 })).toMatchObject({ allowed: false, remaining: 2, retryAfterMs: 800 });
    expect(await b.slidingLog(redis, { ...slArgs, sharePpm: 500_000, nowMs: T0 + 1_000 })).toMatchObject({ allowed: true, remaining: 2 });

    const sw = key();
    const swArgs = { key: sw, limit: 10, periodMs: 1_000 };
    await b.slidingWindow(redis, { ...swArgs, cost: 5, nowMs: T0 });
    // needs 6 of 10 with 5 in this window: next window, once the weight of 5 falls to 4 (200 ms in)
    expect(await b.slidingWindow(redis, { ...swArgs, sharePpm: 500_000, nowMs: T0 })).toMatchObject({ allowed: false, remaining: 5, retryAfterMs: 1_200 });
    expect(await b.slidingWindow(redis, { ...swArgs, sharePpm: 500_000, nowMs: T0 + 1_199 })).toMatchObject({ allowed: false });
    expect(await b.slidingWindow(redis, { ...swArgs, sharePpm: 500_000, nowMs: T0 + 1_200 })).toMatchObject({ allowed: true, remaining: 5 });
  });

  it('refuses share_ppm out of range in TypeScript and in Lua, writing nothing; v1 ARGV still runs', async () => {
    const k = key();
    await expect(b.gcra(redis, { key: k, limit: 5, periodMs: 1_000, sharePpm: 1_000_001 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(b.gcra(redis, { key: k, limit: 5, periodMs: 1_000, sharePpm: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    for (const [def, argv, index] of [
      [b.gcraScript, ['5', '1000', '', '1', ''], 6],
      [b.tokenBucketScript, ['5', '1000', '', '1', ''], 6],
      [b.fixedWindowScript, ['5', '1000', '', '1', ''], 6],
      [b.slidingWindowScript, ['5', '1000', '1', ''], 5],
      [b.slidingLogScript, ['5', '1000', '1', ''], 5],
      [b.quotaScript, ['5', 'day', '', '1', ''], 6],
      [b.concurrencyAcquireScript, ['5', '1000', 'lease', ''], 5],
    ] as const) {
      for (const bad of ['1000001', '-1', '0.5', 'x']) {
        const err = (await redis.eval(def.source, 1, k, ...argv, bad).catch((e: Error) => e)) as Error;
        expect(err.message).toMatch(new RegExp(`^BADARG redlimit ${def.name}: share_ppm \\(ARGV\\[${index}\\]\\) must be`));
      }
      expect(await redis.exists(k)).toBe(0);
      // the same call without the trailing argument (a v1 caller) decides and writes as before
      const v1 = (await redis.eval(def.source, 1, k, ...argv)) as number[];
      expect(v1[0]).toBe(1);
      await redis.del(k);
    }
  });
});

describe('priority classes in batch, multi, multi_peek and multi_batch', () => {
  it('batch: each decision has its own class, decided in order as if sent alone', async () => {
    const k = key();
    const r = await b.batch(redis, {
      algo: 'fixed_window',
      limit: 7,
      periodMs: 60_000,
      nowMs: T0,
      decisions: [
        { key: k, cost: 2, sharePpm: 500_000 },
        { key: k, cost: 2, sharePpm: 500_000 }, // would leave 3 < 4
        { key: k, cost: 1, sharePpm: 500_000 },
        { key: k, cost: 5, sharePpm: 500_000 }, // 5 + 4 > 7: never
        { key: k, cost: 4 },
      ],
    });
    expect(r.decisions.map((d) => [d.allowed, d.remaining, d.retryAfterMs > 0 ? 'wait' : d.retryAfterMs])).toEqual([
      [1, 5, 0],
      [0, 5, 'wait'],
      [1, 4, 0],
      [0, 4, -1],
      [1, 0, 0],
    ]);
  });

  it('multi: a class applies per limit, and a limit its class denies consumes nothing anywhere', async () => {
    const g = `${prefix}{m}:g${n++}`;
    const w = `${prefix}{m}:w${n++}`;
    const limits = (sharePpm?: number) => [
      { key: g, algo: 'gcra' as const, limit: 10, periodMs: 10_000, sharePpm },
      { key: w, algo: 'fixed_window' as const, limit: 100, periodMs: 60_000 },
    ];
    for (let i = 0; i < 5; i++) expect(await b.multi(redis, { limits: limits(500_000), nowMs: T0 })).toMatchObject({ allowed: true });
    const denied = await b.multi(redis, { limits: limits(500_000), nowMs: T0 });
    expect(denied).toMatchObject({ allowed: false, deniedIndex: 1, retryAfterMs: 1_000 });
    expect(denied.limits.map((l) => l.remaining)).toEqual([5, 95]);
    // multi_peek answers for the class without writing
    expect(await b.multiPeek(redis, { limits: limits(500_000), nowMs: T0 })).toMatchObject({ allowed: false, deniedIndex: 1 });
    expect(await b.multiPeek(redis, { limits: limits(), nowMs: T0 })).toMatchObject({ allowed: true });
    expect(await b.multi(redis, { limits: limits(), nowMs: T0 })).toMatchObject({ allowed: true, limits: [{ remaining: 4 }, { remaining: 94 }] });
  });

  it('multi_batch: each item of each decision has its own class', async () => {
    const g = `${prefix}{mb}:g${n++}`;
    const q = `${prefix}{mb}:q${n++}`;
    const r = await b.multiBatch(redis, {
      count: 2,
      specs: 'gcra,4,4000,,,;quota,100,,,0,day',
      nowMs: T0,
      items: [
        { key: g, cost: 2, sharePpm: 500_000 },
        { key: q, cost: 10 },
        { key: g, cost: 1, sharePpm: 500_000 }, // would leave 1 < 2: the whole decision is denied
        { key: q, cost: 10 },
        { key: g, cost: 1 },
        { key: q, cost: 10, sharePpm: 900_000 },
      ],
    });
    expect(r.items.map((i) => [i.allowed, i.remaining])).toEqual([
      [1, 2],
      [1, 90],
      [0, 2],
      [1, 90],
      [1, 1],
      [1, 80],
    ]);
  });

  it('refuses share_ppm out of range in every list script, in TypeScript and in Lua', async () => {
    const k = key();
    await expect(b.batch(redis, { algo: 'gcra', limit: 5, periodMs: 1_000, decisions: [{ key: k, sharePpm: 1_000_001 }] })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(b.multi(redis, { limits: [{ key: k, algo: 'gcra', limit: 5, periodMs: 1_000, sharePpm: -1 }] })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(redis.eval(b.batchScript.source, 1, k, 'gcra', '5', '1000', '', '', '', '', '', '1', '1000001')).rejects.toThrow(/^BADARG redlimit batch: share_ppm\[1\] \(ARGV\[10\]\) must be between 0 and 1000000/);
    await expect(redis.eval(b.multiScript.source, 1, k, '', '', 'gcra', '5', '1000', '1', '', '', '', '-5', '')).rejects.toThrow(/^BADARG redlimit multi: share_ppm\[1\] \(ARGV\[10\]\) must be between 0 and 1000000/);
    await expect(redis.eval(b.multiBatchScript.source, 1, k, '1', 'gcra,5,1000,,,', '', '', '1', '2000000')).rejects.toThrow(/^BADARG redlimit multi_batch: share_ppm\[1\] \(ARGV\[6\]\) must be between 0 and 1000000/);
    expect(await redis.exists(k)).toBe(0);
  });
});
