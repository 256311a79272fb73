import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { gcra, gcraScript, tokenBucket, tokenBucketScript } from '../../generated/index.js';
import { InvalidArgumentError, ScriptError } from '../../src/errors.js';
import { BucketOracle } from '../support/bucket-oracle.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

const T0 = 1_764_000_000_000; // a 2025 timestamp: precision matters at today's magnitudes
const DAY = 86_400_000;

let redis: Redis;
let prefix: string;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('bucket');
});
afterAll(() => redis.quit());

const algorithms = [
  { name: 'gcra', run: gcra, def: gcraScript },
  { name: 'token_bucket', run: tokenBucket, def: tokenBucketScript },
] as const;

/** The raw state, to prove a call wrote nothing. */
async function dump(key: string): Promise<unknown> {
  const type = await redis.type(key);
  if (type === 'none') return null;
  if (type === 'string') return redis.get(key);
  return redis.hgetall(key);
}

describe.each(algorithms)('$name', ({ name, run, def }) => {
  let n = 0;
  const key = () => `${prefix}${name}:${n++}`;

  it('admits burst at once, then denies with the exact wait', async () => {
    const k = key();
    const args = { key: k, limit: 10, periodMs: 1000, burst: 5 };
    for (let i = 4; i >= 0; i--) {
      expect(await run(redis, { ...args, nowMs: T0 })).toEqual({ allowed: true, remaining: i, resetAfterMs: (5 - i) * 100, retryAfterMs: 0 });
    }
    expect(await run(redis, { ...args, nowMs: T0 })).toEqual({ allowed: false, remaining: 0, resetAfterMs: 500, retryAfterMs: 100 });
    expect(await run(redis, { ...args, nowMs: T0 + 37 })).toMatchObject({ allowed: false, retryAfterMs: 63 });
  });

  it('refills continuously: one unit per period/limit, fractions kept', async () => {
    const k = key();
    const args = { key: k, limit: 3, periodMs: 1000, burst: 3 };
    for (let i = 0; i < 3; i++) await run(redis, { ...args, nowMs: T0 });
    // 1000/3 ms per unit: the first unit is back at 333.33 ms, so 333 is too early and 334 is not.
    expect(await run(redis, { ...args, nowMs: T0 + 333 })).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await run(redis, { ...args, nowMs: T0 + 334 })).toMatchObject({ allowed: true, remaining: 0 });
    // The 0.67 ms past the first unit is kept: the second unit is due at T0 + 666.67.
    expect(await run(redis, { ...args, nowMs: T0 + 666 })).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await run(redis, { ...args, nowMs: T0 + 667 })).toMatchObject({ allowed: true, remaining: 0 });
    // Long idle: capped at burst.
    expect(await run(redis, { ...args, cost: 0, nowMs: T0 + 10 * DAY })).toMatchObject({ allowed: true, remaining: 3, resetAfterMs: 0 });
  });

  it('a denied call changes nothing', async () => {
    const k = key();
    const args = { key: k, limit: 2, periodMs: 60_000, burst: 2 };
    await run(redis, { ...args, nowMs: T0 });
    const before = await dump(k);
    expect(await run(redis, { ...args, cost: 2, nowMs: T0 + 10 })).toMatchObject({ allowed: false, remaining: 1 });
    expect(await dump(k)).toEqual(before);
    expect(await run(redis, { ...args, cost: 1, nowMs: T0 + 10 })).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('cost > burst is never admissible (-1) and writes nothing', async () => {
    const k = key();
    expect(await run(redis, { key: k, limit: 10, periodMs: 1000, cost: 11, nowMs: T0 })).toEqual({
      allowed: false,
      remaining: 10,
      resetAfterMs: 0,
      retryAfterMs: -1,
    });
    expect(await redis.exists(k)).toBe(0);
  });

  it('cost 0 is a peek that never writes', async () => {
    const k = key();
    expect(await run(redis, { key: k, limit: 10, periodMs: 1000, cost: 0, nowMs: T0 })).toMatchObject({ allowed: true, remaining: 10 });
    expect(await redis.exists(k)).toBe(0);
    await run(redis, { key: k, limit: 10, periodMs: 1000, cost: 4, nowMs: T0 });
    const before = await dump(k);
    expect(await run(redis, { key: k, limit: 10, periodMs: 1000, cost: 0, nowMs: T0 + 150 })).toMatchObject({ allowed: true, remaining: 7 });
    expect(await dump(k)).toEqual(before);
  });

  it('sets a TTL no longer than the time until full, and the key is gone once full', async () => {
    const k = key();
    const r = await run(redis, { key: k, limit: 100, periodMs: 1000, burst: 100, cost: 3 });
    expect(r.resetAfterMs).toBe(30);
    const pttl = await redis.pttl(k);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(30);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await redis.exists(k)).toBe(0);
    // Long periods keep TTL = reset: 1 unit of a 1-per-day limit expires after exactly one day.
    const k2 = key();
    const r2 = await run(redis, { key: k2, limit: 1, periodMs: DAY });
    expect(r2.resetAfterMs).toBe(DAY);
    const pttl2 = await redis.pttl(k2);
    expect(pttl2).toBeLessThanOrEqual(DAY);
    expect(pttl2).toBeGreaterThan(DAY - 5_000);
  });

  it('is exact at 1e9 units per 31 days at today\'s timestamps', async () => {
    const k = key();
    const params = { limit: 1_000_000_000, periodMs: 31 * DAY, burst: 1_000_000_000 };
    const oracle = new BucketOracle(params);
    const steps: [number, number][] = [
      [1_000_000_000, 0], // drain the whole burst
      [1, 2], // 2 ms refill 0.7467 units: denied
      [1, 3], // 3 ms refill 1.12 units: admitted, 0.12 kept
      [262, 700], // 261.47 units by now: denied, with the exact wait
      [1, 2_678_400_000], // a full period later: full again
      [999_999_999, 2_678_400_001],
      [2, 2_678_400_002],
    ];
    for (const [cost, at] of steps) {
      const expected = oracle.take(cost, T0 + at);
      expect(await run(redis, { key: k, ...params, cost, nowMs: T0 + at })).toEqual(expected);
    }
    // And a far-future timestamp (year 6429) with a rate whose interval is not an integer.
    const k2 = key();
    const far = 140_000_000_000_000;
    const o2 = new BucketOracle({ limit: 7, periodMs: 31 * DAY, burst: 3 });
    for (const at of [0, 0, 0, 0, 382_628_571, 382_628_572, 765_257_143]) {
      expect(await run(redis, { key: k2, limit: 7, periodMs: 31 * DAY, burst: 3, nowMs: far + at })).toEqual(o2.take(1, far + at));
    }
  });

  it('refuses a refill longer than 10 years, in TS and in Lua', async () => {
    const bad = { key: key(), limit: 1, periodMs: 31 * DAY, burst: 1_000_000 };
    await expect(run(redis, bad)).rejects.toThrow(/at most 315360000000 ms/);
    await expect(redis.evalsha(def.sha1, 1, bad.key, '1', String(31 * DAY), '1000000')).rejects.toThrow(
      new RegExp(`redlimit ${name}: burst \\* period_ms / limit must be at most`),
    );
  });

  it('reports a state key of the wrong type clearly', async () => {
    const k = key();
    await redis.rpush(k, 'x');
    const err = await run(redis, { key: k, limit: 1, periodMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as ScriptError).redisCode).toBe('WRONGTYPE');
    expect((err as ScriptError).message).toMatch(new RegExp(`redlimit ${name}: .*WRONGTYPE`));
  });

  const badTs: [string, Record<string, unknown>, RegExp][] = [
    ['missing limit', { periodMs: 1000 }, /limit is required/],
    ['non-numeric', { limit: 'ten', periodMs: 1000 }, /limit must be an integer/],
    ['NaN', { limit: NaN, periodMs: 1000 }, /limit must be an integer/],
    ['Infinity', { limit: Infinity, periodMs: 1000 }, /limit must be an integer/],
    ['fractional', { limit: 10, periodMs: 1000.5 }, /periodMs must be an integer/],
    ['zero where positive', { limit: 0, periodMs: 1000 }, /limit must be between 1 and/],
    ['negative', { limit: 10, periodMs: 1000, cost: -1 }, /cost must be between 0 and/],
    ['too large', { limit: 2e9, periodMs: 1000 }, /limit must be between 1 and 1000000000/],
    ['empty key', { key: '', limit: 10, periodMs: 1000 }, /key state must be a non-empty string/],
  ];
  it.each(badTs)('TS refuses %s before any round trip', async (_label, args, message) => {
    const k = key();
    const err = await run(redis, { key: k, ...args } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(`redlimit ${name}:`);
    expect(await redis.exists(k)).toBe(0);
  });

  const badLua: [string, string[], RegExp][] = [
    ['missing limit', [], /limit \(ARGV\[1\]\) is required/],
    ['non-numeric', ['ten', '1000'], /limit \(ARGV\[1\]\) must be a decimal integer, got "ten"/],
    ['nan', ['nan', '1000'], /must be a decimal integer, got "nan"/],
    ['inf', ['10', 'inf'], /period_ms \(ARGV\[2\]\) must be a decimal integer/],
    ['exponent', ['1e3', '1000'], /must be a decimal integer, got "1e3"/],
    ['fractional', ['10', '1000.5'], /must be a decimal integer, got "1000.5"/],
    ['hex', ['0x10', '1000'], /must be a decimal integer/],
    ['zero', ['0', '1000'], /limit \(ARGV\[1\]\) must be between 1 and 1000000000, got 0/],
    ['negative cost', ['10', '1000', '', '-1'], /cost \(ARGV\[4\]\) must be between 0 and/],
    ['too many args', ['10', '1000', '', '', '', '', 'extra'], /expects at most 6 argument/],
  ];
  it.each(badLua)('Lua refuses %s (raw EVALSHA) and writes nothing', async (_label, argv, message) => {
    const k = key();
    await redis.eval(def.source, 1, `${prefix}warm`, '1', '1', '1', '0'); // make sure the SHA is cached
    const err = await redis.evalsha(def.sha1, 1, k, ...argv).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`^BADARG redlimit ${name}: `)); // the code word first
    expect((err as Error).message).toMatch(message);
    expect(await redis.exists(k)).toBe(0);
  });

  it('refuses a wrong number of keys', async () => {
    await expect(redis.eval(def.source, 2, `${prefix}a`, `${prefix}b`, '1', '1')).rejects.toThrow(/expects 1 key\(s\), got 2/);
  });
});
