import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import type { TwinValue } from '../../src/twin/store.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * Issue 17: the state forms Redis keeps int-encoded (no string allocation), where each applies,
 * and the v2 state (written raw, as the previous scripts wrote it) still decided on exactly.
 */
let redis: Redis;
let p: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  p = uniquePrefix('compact');
});
afterAll(() => redis.quit());

const HOUR = 3_600_000;
const YEAR366 = 31_622_400_000;
const FW_TAGS = 2 ** 22;
const SW_TAGS = 2 ** 21;
const SW_COUNTS = 2 ** 16;
const key = () => `${p}{k${n++}}`;
const encoding = (k: string) => redis.object('ENCODING', k);

async function serverMs(): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Runs `call` on the server clock: [the server's ms before, its result, ms after]. */
async function timed<T>(call: () => Promise<T>): Promise<[number, T, number]> {
  const before = await serverMs();
  const result = await call();
  return [before, result, await serverMs()];
}

describe('compact state on the server clock: int-encoded', () => {
  it('gcra: the tat as ms then num in six digits (whole-ms and fractional tats alike, limits up to 1e6)', async () => {
    // A period of 366 days: even at 1e6 a unit takes 31.6 s to come back, so nothing refills or
    // expires between the calls below, however loaded the machine (num: PERIOD % limit, 6 digits at 1e6).
    const PERIOD = 31_622_400_000;
    for (const limit of [4, 7, 1000, 7001, 1_000_000]) {
      const k = key();
      const [t0, r, t1] = await timed(() => b.gcra(redis, { key: k, limit, periodMs: PERIOD }));
      expect(r).toMatchObject({ allowed: true, remaining: limit - 1 });
      expect(await encoding(k)).toBe('int');
      const raw = (await redis.get(k))!;
      const [tatMs, num] = [Number(raw.slice(0, -6)), Number(raw.slice(-6))];
      expect(num).toBe(PERIOD % limit); // one unit's span: PERIOD / limit ms
      const resetMs = Math.floor(PERIOD / limit);
      expect(tatMs - resetMs).toBeGreaterThanOrEqual(t0);
      expect(tatMs - resetMs).toBeLessThanOrEqual(t1);
      // The next call reads it: one unit less.
      expect((await b.gcraPeek(redis, { key: k, limit, periodMs: PERIOD })).remaining).toBe(limit - 1);
    }
  });

  it('fixed_window: count * 2^22 + window start mod 2^22', async () => {
    const k = key();
    const [t0, r, t1] = await timed(() => b.fixedWindow(redis, { key: k, limit: 4, periodMs: HOUR, cost: 3 }));
    expect(r).toMatchObject({ allowed: true, remaining: 1 });
    expect(await encoding(k)).toBe('int');
    const v = Number(await redis.get(k));
    expect(Math.floor(v / FW_TAGS)).toBe(3);
    expect([t0 - (t0 % HOUR), t1 - (t1 % HOUR)].map((s) => s % FW_TAGS)).toContain(v % FW_TAGS);
    expect((await b.fixedWindowRefund(redis, { key: k, limit: 4, periodMs: HOUR, cost: 1 })).remaining).toBe(2);
    expect(await encoding(k)).toBe('int');
    expect(Math.floor(Number(await redis.get(k)) / FW_TAGS)).toBe(2);
  });

  it('sliding_window: (cur * 2^16 + prev) * 2^21 + window start mod 2^21', async () => {
    const k = key();
    const [t0, r, t1] = await timed(() => b.slidingWindow(redis, { key: k, limit: 100_000, periodMs: HOUR, cost: SW_COUNTS - 1 }));
    expect(r).toMatchObject({ allowed: true });
    expect(await encoding(k)).toBe('int');
    const v = Number(await redis.get(k));
    expect(Math.floor(v / SW_TAGS / SW_COUNTS)).toBe(SW_COUNTS - 1);
    expect(Math.floor(v / SW_TAGS) % SW_COUNTS).toBe(0);
    expect([t0 - (t0 % HOUR), t1 - (t1 % HOUR)].map((s) => s % SW_TAGS)).toContain(v % SW_TAGS);
    // One more unit: cur would be 2^16, past the packed range: the string form.
    await b.slidingWindow(redis, { key: k, limit: 100_000, periodMs: HOUR, cost: 1 });
    expect(await redis.get(k)).toMatch(new RegExp(`^\\d+:${SW_COUNTS}:0$`));
  });

  it('token_bucket: -(ts * 1000 + tokens) on a take that leaves no fraction of a unit', async () => {
    const k = key();
    const [t0, r, t1] = await timed(() => b.tokenBucket(redis, { key: k, limit: 4, periodMs: HOUR }));
    expect(r).toMatchObject({ allowed: true, remaining: 3 });
    expect(await redis.type(k)).toBe('string');
    expect(await encoding(k)).toBe('int');
    const v = -Number(await redis.get(k));
    expect(v % 1000).toBe(3);
    expect(Math.floor(v / 1000)).toBeGreaterThanOrEqual(t0);
    expect(Math.floor(v / 1000)).toBeLessThanOrEqual(t1);
  });

  it('multi: each algorithm item stores its integer form too', async () => {
    const tag = `${p}{multi${n++}}`;
    const keys = ['g', 'f', 's', 't'].map((x) => `${tag}:${x}`);
    const items = [
      { algo: 'gcra', limit: 10, periodMs: HOUR },
      { algo: 'fixed_window', limit: 10, periodMs: HOUR },
      { algo: 'sliding_window', limit: 10, periodMs: HOUR },
      { algo: 'token_bucket', limit: 10, periodMs: HOUR },
    ] as const;
    const r = await b.multi(redis, { limits: items.map((it, i) => ({ key: keys[i]!, ...it, cost: 1 })) });
    expect(r).toMatchObject({ allowed: true });
    for (const k of keys) expect(await encoding(k)).toBe('int');
  });
});

describe('compact state: where the string form stays', () => {
  it('gcra: num of 1e6 or more, a tat past 9223372036853 ms (the long max), or a tat at 0 ms', async () => {
    const k1 = key();
    await b.gcra(redis, { key: k1, limit: 1_000_000, periodMs: 1_999_999, nowMs: 1_700_000_000_000 }); // one unit = 1 ms + 999999/1e6
    expect(await redis.get(k1)).toBe('1700000000001999999');
    expect(await encoding(k1)).toBe('int');
    const k2 = key();
    await b.gcra(redis, { key: k2, limit: 1_000_001, periodMs: 2_000_001, nowMs: 1_700_000_000_000 }); // 1 ms + 1000000/1000001
    expect(await redis.get(k2)).toBe('1700000000001:1000000');
    // The largest packed value: 9223372036853999999 <= 2^63 - 1 = 9223372036854775807.
    const k3 = key();
    await b.gcra(redis, { key: k3, limit: 1_000_000, periodMs: 1_999_999, nowMs: 9_223_372_036_853 - 1 });
    expect(await redis.get(k3)).toBe('9223372036853999999');
    expect(await encoding(k3)).toBe('int');
    expect((await b.gcraPeek(redis, { key: k3, limit: 1_000_000, periodMs: 1_999_999, nowMs: 9_223_372_036_853 - 1 })).remaining).toBe(999_999);
    const k4 = key();
    await b.gcra(redis, { key: k4, limit: 4, periodMs: 1000, nowMs: 9_223_372_036_853 - 249 });
    expect(await redis.get(k4)).toBe('9223372036854:0');
    expect((await b.gcraPeek(redis, { key: k4, limit: 4, periodMs: 1000, nowMs: 9_223_372_036_853 - 249 })).remaining).toBe(3);
    // Small simulated clocks: a tat of a few ms packs (and reads back) too; a tat at 0 ms stays "0:num".
    const k5 = key();
    await b.gcra(redis, { key: k5, limit: 7, periodMs: 1000, nowMs: 5 }); // tat 5 + 142 ms + 6/7
    expect(await redis.get(k5)).toBe('147000006');
    expect(await encoding(k5)).toBe('int');
    expect((await b.gcraPeek(redis, { key: k5, limit: 7, periodMs: 1000, nowMs: 5 })).remaining).toBe(6);
    const k6 = key();
    await b.gcra(redis, { key: k6, limit: 1_000_000, periodMs: 1, nowMs: 1 }); // tat 1 ms + 1/1e6
    expect(await redis.get(k6)).toBe('1000001');
    expect(await encoding(k6)).toBe('int');
    expect((await b.gcraPeek(redis, { key: k6, limit: 1_000_000, periodMs: 1, nowMs: 1 })).remaining).toBe(999_999);
    const k7 = key();
    await b.gcra(redis, { key: k7, limit: 1_000_000, periodMs: 1, nowMs: 0 }); // tat 0 ms + 1/1e6
    expect(await redis.get(k7)).toBe('0:1');
    expect((await b.gcraPeek(redis, { key: k7, limit: 1_000_000, periodMs: 1, nowMs: 0 })).remaining).toBe(999_999);
  });

  it('fixed_window: a period that is a multiple of 2^22 ms, or a caller clock', async () => {
    const k1 = key();
    await b.fixedWindow(redis, { key: k1, limit: 5, periodMs: FW_TAGS });
    expect(await redis.get(k1)).toMatch(/^\d+:1$/);
    const k2 = key();
    await b.fixedWindow(redis, { key: k2, limit: 5, periodMs: 1000, nowMs: 1_700_000_000_500 });
    expect(await redis.get(k2)).toBe('1700000000000:1');
  });

  it('sliding_window: a period or twice it a multiple of 2^21 ms, or a caller clock', async () => {
    for (const periodMs of [SW_TAGS, SW_TAGS / 2]) {
      const k = key();
      await b.slidingWindow(redis, { key: k, limit: 5, periodMs });
      expect(await redis.get(k)).toMatch(/^\d+:1:0$/);
    }
    const k = key();
    await b.slidingWindow(redis, { key: k, limit: 5, periodMs: 1000, nowMs: 1_700_000_000_500 });
    expect(await redis.get(k)).toBe('1700000000000:1:0');
  });

  it('token_bucket: a fraction of a unit left, or 1000 tokens or more', async () => {
    const k1 = key();
    await b.tokenBucket(redis, { key: k1, limit: 4, periodMs: 1000, nowMs: 1_700_000_000_000 });
    await b.tokenBucket(redis, { key: k1, limit: 4, periodMs: 1000, nowMs: 1_700_000_000_001 });
    expect(await redis.get(k1)).toBe('2,4,1700000000001');
    const k2 = key();
    await b.tokenBucket(redis, { key: k2, limit: 2000, periodMs: 1000, nowMs: 1_700_000_000_000 });
    expect(await redis.get(k2)).toBe('1999,0,1700000000000');
    const k3 = key();
    await b.tokenBucket(redis, { key: k3, limit: 1000, periodMs: 1000, nowMs: 1_700_000_000_000 });
    expect(await redis.get(k3)).toBe('-1700000000000999');
  });
});

describe('v2 state keeps working (an upgrade under traffic loses nothing)', () => {
  const T = 1_700_000_000_000;

  /** The outcome on Redis holding `raw` (written by `write`) equals the twin's holding `value`. */
  async function same(write: (k: string) => Promise<unknown>, value: TwinValue, call: (client: object, k: string) => Promise<unknown>): Promise<unknown> {
    const k = key();
    await write(k);
    const twin = new TwinClient();
    twin.store.set(k, value, Infinity);
    const onRedis = await call(redis, k);
    expect(await call(twin, k)).toEqual(onRedis);
    return onRedis;
  }

  it('gcra "ms:num" on a caller clock, as the twin decides', async () => {
    for (const [tatMs, tatNum] of [[T + 400, 0], [T + 1234, 5], [T - 10, 3]] as const) {
      const r = await same((k) => redis.set(k, `${tatMs}:${tatNum}`, 'PX', 600_000), { kind: 'gcra', tatMs, tatNum }, (c, k) => b.gcra(c as never, { key: k, limit: 7, periodMs: 1000, cost: 2, nowMs: T }));
      expect(r).toBeDefined();
    }
  });

  it('token_bucket hash { tokens, frac, ts_ms } on a caller clock, as the twin decides; the write replaces it by a string', async () => {
    for (const [tokens, frac, tsMs] of [[2, 0, T - 100], [0, 999, T - 1], [3, 17, T + 50], [-2, 5, T - 3000]] as const) {
      let written = '';
      await same(
        async (k) => {
          written = k;
          await redis.hset(k, 'tokens', String(tokens), 'frac', String(frac), 'ts_ms', String(tsMs));
          await redis.pexpire(k, 600_000);
        },
        { kind: 'token_bucket', tokens, frac, tsMs },
        (c, k) => b.tokenBucket(c as never, { key: k, limit: 4, periodMs: 1000, cost: 1, nowMs: T }),
      );
      expect(await redis.type(written)).not.toBe('hash');
    }
    // peek and refund read the hash too
    const k = key();
    await redis.hset(k, 'tokens', '1', 'frac', '0', 'ts_ms', String(T));
    expect(await b.tokenBucketPeek(redis, { key: k, limit: 4, periodMs: 1000, nowMs: T })).toMatchObject({ remaining: 1 });
    expect(await b.tokenBucketRefund(redis, { key: k, limit: 4, periodMs: 1000, cost: 1, nowMs: T })).toMatchObject({ remaining: 2 });
    expect(await redis.get(k)).toBe(String(-(T * 1000 + 2)));
  });

  it('fixed_window "start:count" and sliding_window "start:cur:prev" on a caller clock, as the twin decides', async () => {
    for (const [start, count] of [[T, 3], [T - 1000, 4]] as const) {
      await same((k) => redis.set(k, `${start}:${count}`, 'PX', 600_000), { kind: 'counter', start, count }, (c, k) => b.fixedWindow(c as never, { key: k, limit: 5, periodMs: 1000, cost: 1, nowMs: T + 500 }));
    }
    for (const [start, cur, prev] of [[T, 3, 2], [T - 1000, 4, 1], [T - 2000, 4, 4]] as const) {
      await same((k) => redis.set(k, `${start}:${cur}:${prev}`, 'PX', 600_000), { kind: 'sliding_window', start, cur, prev }, (c, k) => b.slidingWindow(c as never, { key: k, limit: 5, periodMs: 1000, cost: 1, nowMs: T + 500 }));
    }
  });

  it('on the server clock: each v2 form is read, and the next write stores the integer form', async () => {
    const now = await serverMs();
    // gcra: a tat 10 min ahead at 4 per hour holds 4 - 2/3 units: 3 whole.
    const g = key();
    await redis.set(g, `${now + 600_000}:0`, 'PX', 3_600_000);
    expect(await b.gcra(redis, { key: g, limit: 4, periodMs: HOUR })).toMatchObject({ allowed: true, remaining: 2 });
    expect(await encoding(g)).toBe('int');
    // token_bucket: 2 tokens counted now.
    const t = key();
    await redis.hset(t, 'tokens', '2', 'frac', '0', 'ts_ms', String(now));
    expect(await b.tokenBucket(redis, { key: t, limit: 4, periodMs: HOUR })).toMatchObject({ allowed: true, remaining: 1 });
    expect(await redis.type(t)).toBe('string');
    // fixed_window: 3 used in this window (a 366-day window with now in its middle).
    const offsetMs = (((now - YEAR366 / 2) % YEAR366) + YEAR366) % YEAR366;
    const start = now - ((((now - offsetMs) % YEAR366) + YEAR366) % YEAR366);
    const f = key();
    await redis.set(f, `${start}:3`, 'PX', 3_600_000);
    expect(await b.fixedWindow(redis, { key: f, limit: 4, periodMs: YEAR366, offsetMs })).toMatchObject({ allowed: true, remaining: 0 });
    expect(await encoding(f)).toBe('int');
    expect(await b.fixedWindow(redis, { key: f, limit: 4, periodMs: YEAR366, offsetMs })).toMatchObject({ allowed: false });
    // sliding_window: 3 in this window (366-day windows from the epoch).
    const s = key();
    const sStart = now - (now % YEAR366);
    await redis.set(s, `${sStart}:3:0`, 'PX', 3_600_000);
    expect(await b.slidingWindow(redis, { key: s, limit: 4, periodMs: YEAR366 })).toMatchObject({ allowed: true, remaining: 0 });
    expect(await encoding(s)).toBe('int');
    expect(await b.slidingWindow(redis, { key: s, limit: 4, periodMs: YEAR366 })).toMatchObject({ allowed: false });
  });

  it('a value that is no state of the algorithm is still refused (WRONGSTATE), and left as it was', async () => {
    for (const [call, raw] of [
      [(k: string) => b.gcra(redis, { key: k, limit: 4, periodMs: HOUR }), '-5'],
      [(k: string) => b.tokenBucket(redis, { key: k, limit: 4, periodMs: HOUR }), '1:2'],
      [(k: string) => b.tokenBucket(redis, { key: k, limit: 4, periodMs: HOUR }), '1700000000000004'], // gcra's / a window's integer
      [(k: string) => b.tokenBucket(redis, { key: k, limit: 4, periodMs: HOUR }), '1700000000000:1:0'], // a sliding window's string
      [(k: string) => b.gcra(redis, { key: k, limit: 4, periodMs: HOUR }), '-1700000000000004'], // a token bucket's integer
      [(k: string) => b.fixedWindow(redis, { key: k, limit: 4, periodMs: HOUR }), '-1700000000000004'],
      [(k: string) => b.slidingWindow(redis, { key: k, limit: 4, periodMs: HOUR }), '-1700000000000004'],
      [(k: string) => b.slidingWindow(redis, { key: k, limit: 4, periodMs: HOUR }), '2,4,1700000000001'], // a token bucket's string
      [(k: string) => b.slidingWindow(redis, { key: k, limit: 4, periodMs: HOUR }), 'x'],
      [(k: string) => b.fixedWindow(redis, { key: k, limit: 4, periodMs: HOUR }), '1:2:3'],
    ] as const) {
      const k = key();
      await redis.set(k, raw);
      await expect(call(k)).rejects.toThrow(/WRONGSTATE/);
      expect(await redis.get(k)).toBe(raw);
    }
  });
});
