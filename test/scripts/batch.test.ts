import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { ScriptError, TwinClient } from '../../src/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * The batch script must decide N decisions exactly as N separate calls of the limit's own script
 * would, in order, on one clock reading — on Redis and on the twin.
 */
let redis: Redis;
let prefix: string;
let run = 0;
const T0 = 1_750_000_000_000;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('batch');
});
afterAll(() => redis.quit());

type Spec =
  | { algo: 'gcra' | 'token_bucket'; limit: number; periodMs: number; burst: number }
  | { algo: 'fixed_window'; limit: number; periodMs: number; offsetMs: number }
  | { algo: 'sliding_window' | 'sliding_log'; limit: number; periodMs: number }
  | { algo: 'quota'; limit: number; unit: 'day' | 'week' | 'month'; offsetMs: number };

/** The limit's own script, one decision: the reference batch is held to. */
function single(client: object, spec: Spec, key: string, cost: number, nowMs: number) {
  switch (spec.algo) {
    case 'gcra':
      return b.gcra(client, { key, limit: spec.limit, periodMs: spec.periodMs, burst: spec.burst, cost, nowMs });
    case 'token_bucket':
      return b.tokenBucket(client, { key, limit: spec.limit, periodMs: spec.periodMs, burst: spec.burst, cost, nowMs });
    case 'fixed_window':
      return b.fixedWindow(client, { key, limit: spec.limit, periodMs: spec.periodMs, offsetMs: spec.offsetMs, cost, nowMs });
    case 'sliding_window':
      return b.slidingWindow(client, { key, limit: spec.limit, periodMs: spec.periodMs, cost, nowMs });
    case 'sliding_log':
      return b.slidingLog(client, { key, limit: spec.limit, periodMs: spec.periodMs, cost, nowMs });
    case 'quota':
      return b.quota(client, { key, limit: spec.limit, unit: spec.unit, utcOffsetMs: spec.offsetMs, cost, nowMs });
  }
}

function batchArgs(spec: Spec, keys: string[], costs: number[], nowMs: number): b.BatchArgs {
  return {
    algo: spec.algo,
    limit: spec.limit,
    periodMs: 'periodMs' in spec ? spec.periodMs : undefined,
    burst: 'burst' in spec ? spec.burst : undefined,
    offsetMs: 'offsetMs' in spec ? spec.offsetMs : undefined,
    unit: 'unit' in spec ? spec.unit : undefined,
    nowMs,
    decisions: keys.map((key, i) => ({ key, cost: costs[i]! })),
  };
}

const small = fc.integer({ min: 1, max: 6 });
const periodMs = fc.integer({ min: 1, max: 5_000 });
const spec: fc.Arbitrary<Spec> = fc.oneof(
  fc.record({ algo: fc.constantFrom('gcra' as const, 'token_bucket' as const), limit: small, periodMs, burst: small }),
  fc.record({ algo: fc.constant('fixed_window' as const), limit: small, periodMs: fc.integer({ min: 2, max: 5_000 }), offsetMs: fc.constant(1) }),
  fc.record({ algo: fc.constantFrom('sliding_window' as const, 'sliding_log' as const), limit: small, periodMs }),
  fc.record({ algo: fc.constant('quota' as const), limit: small, unit: fc.constantFrom('day' as const, 'week' as const, 'month' as const), offsetMs: fc.integer({ min: -3_600_000, max: 3_600_000 }) }),
);

describe('batch', () => {
  it('decides each key in order exactly as the limit’s own script would, on Redis and on the twin', async () => {
    await fc.assert(
      fc.asyncProperty(
        spec,
        fc.array(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1_700_000_000_000, max: 1_800_000_000_000 }),
        async (s, rounds, t0) => {
          const tag = `${prefix}:${run++}`;
          const twin = new TwinClient();
          let now = t0;
          for (const round of rounds) {
            now += 137;
            const ids = round.map(([k]) => k);
            const costs = round.map(([, c]) => c);
            // One by one through the single script, on keys of their own.
            const expected = [];
            for (let i = 0; i < ids.length; i++) {
              const r = await single(redis, s, `${tag}:one:{${ids[i]}}`, costs[i]!, now);
              expected.push([r.allowed ? 1 : 0, r.remaining, r.resetAfterMs, r.retryAfterMs]);
            }
            const keys = (side: string) => ids.map((k) => `${tag}:${side}:{x}${k}`);
            const onRedis = await b.batch(redis, batchArgs(s, keys('lua'), costs, now));
            const onTwin = await b.batch(twin, batchArgs(s, keys('lua'), costs, now));
            const got = onRedis.decisions.map((d) => [d.allowed, d.remaining, d.resetAfterMs, d.retryAfterMs]);
            expect(got).toEqual(expected);
            expect(onTwin).toEqual(onRedis);
            expect(onRedis.nowMs).toBe(now);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses bad input before touching any key, in TypeScript and in Lua', async () => {
    const key = `${prefix}:bad`;
    const good = { algo: 'gcra' as const, limit: 5, periodMs: 1000, decisions: [{ key, cost: 1 }] };
    await expect(b.batch(redis, { ...good, periodMs: undefined })).rejects.toThrow(/period_ms is required for algo gcra/);
    await expect(b.batch(redis, { ...good, decisions: [{ key, cost: 1 }, { key, cost: 2_000_000_000 }] })).rejects.toThrow(/cost must be between 0 and 1000000000 for algo gcra/);
    // The Lua checks the same things for callers in other languages.
    const sha = b.batchScript.sha1;
    await redis.script('LOAD', b.batchScript.source);
    await expect(redis.evalsha(sha, 2, key, key, 'gcra', '5', '', '', '', '', '', '', '1', '', '1', '')).rejects.toThrow(/period_ms is required for algo gcra/);
    await expect(redis.evalsha(sha, 2, key, key, 'gcra', '5', '1000', '', '', '', '', '', '1', '', '1e3', '')).rejects.toThrow(/cost\[2\] \(ARGV\[11\]\) must be a decimal integer/);
    await expect(redis.evalsha(sha, 2, key, key, 'gcra', '5', '1000', '', '', '', '', '', '1')).rejects.toThrow(/expects 12 argument\(s\) for 2 key\(s\)/);
    await expect(redis.evalsha(sha, 1, key, 'gcra', '5', '1000', '', '', '', '', '', '2000000000', '')).rejects.toThrow(/cost must be between 0 and 1000000000 for algo gcra/);
    expect(await redis.exists(key)).toBe(0);
    // And the twin answers bad input like Redis does.
    await expect(b.batch(new TwinClient(), { ...good, periodMs: undefined })).rejects.toThrow(/period_ms is required/);
    await expect(new TwinClient().redlimitTwinEval(sha, [key], ['gcra', '5', '', '', '', '', '', '', '1', ''])).rejects.toBeInstanceOf(ScriptError);
  });

  it('fails a decision whose key holds another type or foreign state alone, writing nothing of it', async () => {
    const tag = `${prefix}:{own}`;
    const [good, list, text, later] = [`${tag}good`, `${tag}list`, `${tag}text`, `${tag}later`] as const;
    await redis.rpush(list, 'not a limiter');
    await redis.set(text, 'not-gcra-state');
    const args = { algo: 'gcra' as const, limit: 5, periodMs: 60_000, nowMs: T0, decisions: [good, list, text, later, good].map((key) => ({ key, cost: 1 })) };
    const r = await b.batch(redis, args);
    expect(r.decisions.map((d) => [d.allowed, d.remaining])).toEqual([
      [1, 4],
      [-1, 1], // WRONGTYPE: another Redis type
      [-1, 2], // WRONGSTATE: a string that is not gcra state
      [1, 4],
      [1, 3], // the good key went on being decided, in order
    ]);
    expect(await redis.lrange(list, 0, -1)).toEqual(['not a limiter']);
    expect(await redis.get(text)).toBe('not-gcra-state');
    for (const algo of ['token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota'] as const) {
      const extra = algo === 'quota' ? { unit: 'day' as const } : { periodMs: 60_000 };
      const one = await b.batch(redis, { algo, limit: 5, ...extra, nowMs: T0, decisions: [{ key: list, cost: 1 }, { key: `${tag}${algo}`, cost: 1 }] });
      expect(one.decisions.map((d) => [d.allowed, d.remaining])).toEqual([[-1, 1], [1, 4]]);
    }
    expect(await redis.lrange(list, 0, -1)).toEqual(['not a limiter']);
  });
});

type Item = { algo: string; limit?: number; periodMs?: number; burst?: number; offsetMs?: number; unit?: 'day' | 'week' | 'month' };
const multiLimit: fc.Arbitrary<Item> = fc.oneof(
  fc.record({ algo: fc.constantFrom('gcra', 'token_bucket'), limit: small, periodMs, burst: small }),
  fc.record({ algo: fc.constant('fixed_window'), limit: small, periodMs: fc.integer({ min: 2, max: 5_000 }), offsetMs: fc.constant(1) }),
  fc.record({ algo: fc.constantFrom('sliding_window', 'sliding_log'), limit: small, periodMs }),
  fc.record({ algo: fc.constant('quota'), limit: small, unit: fc.constantFrom('day' as const, 'week' as const), offsetMs: fc.constant(3_600_000) }),
  fc.constant({ algo: 'block' }),
);
const specOf = (l: Item) => [l.algo, l.limit ?? '', l.periodMs ?? '', l.burst ?? '', l.offsetMs ?? '', l.unit ?? ''].join(',');

describe('multi_batch', () => {
  it('decides each decision in order exactly as its own multi call would, on Redis and on the twin', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(multiLimit, { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 3, maxLength: 3 })), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1_700_000_000_000, max: 1_800_000_000_000 }),
        async (limits, decisions, now) => {
          const tag = `${prefix}:mb${run++}`;
          const K = limits.length;
          const keysOf = (side: string, id: number) => limits.map((_, j) => `${tag}:{${side}}:${id}:${j}`);
          const expected: number[][] = [];
          for (const [id, costs] of decisions) {
            const r = await b.multi(redis, { nowMs: now, limits: limits.map((l, j) => ({ ...l, key: keysOf('one', id)[j]!, cost: costs[j]! }) as b.MultiItem) });
            expected.push(...r.limits.map((x) => [x.allowed ? 1 : 0, x.remaining, x.resetAfterMs, x.retryAfterMs]));
          }
          const args = {
            count: K,
            specs: limits.map(specOf).join(';'),
            nowMs: now,
            items: decisions.flatMap(([id, costs]) => keysOf('all', id).map((key, j) => ({ key, cost: costs[j]! }))),
          };
          const onRedis = await b.multiBatch(redis, args);
          expect(onRedis.items.map((x) => [x.allowed, x.remaining, x.resetAfterMs, x.retryAfterMs])).toEqual(expected);
          expect(await b.multiBatch(new TwinClient(), args)).toEqual(onRedis);
          expect(K).toBeGreaterThan(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses bad specs and partial decisions before touching any key, in TypeScript and in Lua', async () => {
    const key = `${prefix}:{mbad}`;
    const items = [{ key: `${key}a`, cost: 1 }, { key: `${key}b`, cost: 1 }];
    await expect(b.multiBatch(redis, { count: 2, specs: 'gcra,5,1000,,,', items })).rejects.toThrow(/specs has 1 limit\(s\), count says 2/);
    await expect(b.multiBatch(redis, { count: 1, specs: 'nope,5,1000,,,', items })).rejects.toThrow(/specs\[1\] must be/);
    await expect(b.multiBatch(redis, { count: 1, specs: 'gcra,5,,,,', items })).rejects.toThrow(/period_ms\[1\] is required for algo gcra/);
    await expect(b.multiBatch(redis, { count: 2, specs: 'gcra,5,1000,,,;block,,,,,', items: items.slice(0, 1) })).rejects.toThrow(/not whole decisions/);
    const sha = b.multiBatchScript.sha1;
    await redis.script('LOAD', b.multiBatchScript.source);
    await expect(redis.evalsha(sha, 2, `${key}a`, `${key}b`, '2', 'gcra,5,1000,,,', '', '', '1', '', '1', '')).rejects.toThrow(/specs has 1 limit\(s\), count says 2/);
    await expect(redis.evalsha(sha, 1, `${key}a`, '1', 'gcra,5,1000,,,', '', '', '1e3', '')).rejects.toThrow(/cost\[1\] \(ARGV\[5\]\) must be a decimal integer/);
    await expect(redis.evalsha(sha, 1, `${key}a`, '1', 'gcra,2000000000,1000,,,', '', '', '1', '')).rejects.toThrow(/limit\[1\] must be between 1 and 1000000000 for algo gcra/);
    expect(await redis.exists(`${key}a`, `${key}b`)).toBe(0);
  });

  it('fails a decision with a key of another type or foreign state alone: none of its writes land', async () => {
    const tag = `${prefix}:{mown}`;
    await redis.rpush(`${tag}list`, 'not a limiter');
    await redis.set(`${tag}text`, 'not-window-state');
    const specs = 'gcra,5,60000,,,;fixed_window,5,60000,,0,';
    const decisions = [
      [`${tag}a1`, `${tag}a2`],
      [`${tag}b1`, `${tag}list`], // the second key is a list: WRONGTYPE
      [`${tag}c1`, `${tag}text`], // the second key is a string that is not a window: WRONGSTATE
      [`${tag}a1`, `${tag}a2`],
    ];
    const r = await b.multiBatch(redis, { count: 2, specs, nowMs: T0, items: decisions.flat().map((key) => ({ key, cost: 1 })) });
    expect(r.items.map((x) => [x.allowed, x.remaining])).toEqual([
      [1, 4], [1, 4],
      [-1, 0], [-1, 1],
      [-1, 0], [-1, 2],
      [1, 3], [1, 3],
    ]);
    expect(await redis.exists(`${tag}b1`, `${tag}c1`)).toBe(0); // the failed decisions' good keys: untouched
    expect(await redis.get(`${tag}text`)).toBe('not-window-state');
    // A key at fault in the first place of a decision is named there.
    const first = await b.multiBatch(redis, { count: 2, specs, nowMs: T0, items: [`${tag}list`, `${tag}d2`].map((key) => ({ key, cost: 1 })) });
    expect(first.items.map((x) => [x.allowed, x.remaining])).toEqual([[-1, 1], [-1, 0]]);
    expect(await redis.exists(`${tag}d2`)).toBe(0);
  });
});
