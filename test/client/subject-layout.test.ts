import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createPolicyLimiter, createRateLimiter, InvalidConfigError, type Decision, type LimitSpec, type RateLimiter } from '../../src/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';
import { startLocalRedis } from '../../devtools/local-redis.js';

// layout: 'subject' keeps every limit of a subject in one key (the tiers scripts). What a caller
// sees must not change: the same calls on a limiter of each layout, on the same clock, give the
// same decisions, refunds and resets; only the keys differ (one per subject instead of one per
// limit). Deadlines are not what these tests are about (a generous timeoutMs).
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 11, 2, 23, 58, 30); // a day's end within reach: the quota resets during the test
const tiers: LimitSpec[] = [
  { name: 'm', algo: 'gcra', limit: 5, periodMs: MIN, burst: 3 },
  { name: 'h', algo: 'sliding_window', limit: 12, periodMs: HOUR },
  { name: 'd', algo: 'quota', limit: 20, unit: 'day' },
  { name: 'f', algo: 'fixed_window', limit: 7, periodMs: 10 * MIN, offsetMs: 1_000 },
  { name: 't', algo: 'token_bucket', limit: 4, periodMs: MIN, burst: 6 },
];

/** What a caller reads of a decision (its source aside). */
const seen = (d: Decision) => ({ allowed: d.allowed, deniedBy: d.deniedBy, limitName: d.limitName, remaining: d.remaining, resetAfterMs: d.resetAfterMs, retryAfterMs: d.retryAfterMs, limits: d.limits });

function pair(name: string, extra: Record<string, unknown> = {}) {
  const clock = { now: T0 };
  const prefix = uniquePrefix(`${name}-subject`);
  const make = (layout: 'per-limit' | 'subject', p: string) =>
    createRateLimiter({ redis, prefix: p, limits: tiers, denyCache: false, sendClock: true, clock: () => clock.now, timeoutMs: 10_000, layout, ...extra } as never);
  return { clock, prefix, perLimit: make('per-limit', uniquePrefix(`${name}-per-limit`)), subject: make('subject', prefix) };
}

/** A small deterministic PRNG (xorshift32). */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

async function same(a: RateLimiter, b: RateLimiter, op: (rl: RateLimiter) => Promise<Decision>): Promise<Decision> {
  const [x, y] = await Promise.all([op(a), op(b)]);
  expect(seen(y)).toEqual(seen(x));
  return y;
}

describe("layout: 'subject'", () => {
  for (const coalesce of [true, false]) {
    it(`decides as a key per limit would, call for call (coalesce ${coalesce}): limit, peek, refund, reset`, async () => {
      const { clock, prefix, perLimit, subject } = pair(`same-${coalesce}`, { coalesce });
      const next = rng(coalesce ? 7 : 11);
      const ids = ['a', 'b', 'c'];
      let denied = 0;
      for (let step = 0; step < 240; step++) {
        const id = ids[next(ids.length)]!;
        const r = next(20);
        if (r < 10) {
          // A turn of several calls (coalesced into one tiers call when coalescing), costs per limit.
          const calls = 1 + next(4);
          const costs = Array.from({ length: calls }, () => (next(3) === 0 ? { m: 1, h: 1, d: next(4), f: 1, t: next(3) } : 1));
          const [xs, ys] = await Promise.all([Promise.all(costs.map((cost) => perLimit.limit(id, { cost }))), Promise.all(costs.map((cost) => subject.limit(id, { cost })))]);
          expect(ys.map(seen)).toEqual(xs.map(seen));
          denied += xs.filter((d) => !d.allowed).length;
        } else if (r < 12) {
          const cost = next(3);
          await same(perLimit, subject, (rl) => rl.peek(id, { cost }));
        } else if (r < 17) {
          if (r < 14) {
            const cost = next(2) === 0 ? 1 : { d: 2, t: 1 };
            await Promise.all([perLimit.refund(id, { cost }), subject.refund(id, { cost })]);
          } else {
            // Reserve an estimate, then commit an actual (above or below it) or cancel.
            const estimate = { m: 1, h: 1, d: 1 + next(4), f: 1, t: 1 };
            const [x, y] = await Promise.all([perLimit.reserve(id, { cost: estimate }), subject.reserve(id, { cost: estimate })]);
            expect(seen(y)).toEqual(seen(x));
            expect(y.handle === null).toBe(x.handle === null);
            if (x.handle !== null && y.handle !== null) {
              const how = next(3);
              const actual = { d: next(9), t: next(9), m: next(5) };
              const settle = (rl: RateLimiter, h: string) => (how === 0 ? rl.cancel(h) : rl.commit(h, actual, { overage: how === 1 ? 'debt' : 'cap' }));
              const [sx, sy] = await Promise.all([settle(perLimit, x.handle), settle(subject, y.handle)]);
              expect(sy).toEqual(sx);
            }
          }
        } else if (r < 18) {
          const options = next(2) === 0 ? {} : { limits: [['m', 'h', 'd', 'f', 't'][next(5)]!] };
          await Promise.all([perLimit.reset(id, options), subject.reset(id, options)]);
        } else {
          clock.now += [1_000, 7_000, 45_000, 10 * MIN, 40 * MIN][next(5)]!;
        }
      }
      expect(denied).toBeGreaterThan(10); // the limits were reached, not only admitted
      // One key per subject that holds state, none per limit (besides reservation records).
      // Besides the subjects' keys: reservation records, and the adoption marker (src/client/adoption.ts).
      const keys = (await redis.keys(`${prefix}:*`)).filter((k) => !k.includes(':!rsv:') && !k.includes(':!adopt:'));
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) expect(k).toMatch(/:\{[abc]\}:m\+h\+d\+f\+t$/);
      await Promise.all([perLimit.close(), subject.close()]);
    });
  }

  it('keeps one key per subject, expiring when its last limit would be full again', async () => {
    const prefix = uniquePrefix('one-key');
    const rl = createRateLimiter({ redis, prefix, limits: tiers.slice(0, 3), layout: 'subject', denyCache: false, timeoutMs: 10_000 });
    for (const id of ['x', 'y']) expect((await rl.limit(id)).allowed).toBe(true);
    const keys = (await redis.keys(`${prefix}:*`)).filter((k) => !k.includes(':!adopt:')).sort();
    expect(keys).toEqual([`${prefix}:{x}:m+h+d`, `${prefix}:{y}:m+h+d`]);
    const d = await rl.peek('x');
    const longest = Math.max(...d.limits.map((l) => l.resetAfterMs));
    const pttl = await redis.pttl(`${prefix}:{x}:m+h+d`);
    expect(pttl).toBeGreaterThan(longest - 1_000);
    expect(pttl).toBeLessThanOrEqual(longest + 1_000);
    // Every limit reset: the key goes.
    await rl.reset('x');
    expect(await redis.exists(`${prefix}:{x}:m+h+d`)).toBe(0);
    await rl.close();
  });

  it('refuses what one key cannot hold, at construction', async () => {
    const base = { redis, prefix: uniquePrefix('refuse'), layout: 'subject' as const };
    expect(() => createRateLimiter({ ...base, limits: [tiers[0]!, { name: 'l', algo: 'sliding_log', limit: 3, periodMs: MIN }] })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ ...base, limits: [tiers[0]!, { name: 'o', algo: 'quota', limit: 3, unit: 'day', scope: 'org' }] })).toThrow(/keyed by scope org/);
    expect(() => createRateLimiter({ ...base, limits: [tiers[0]!, { name: 'c', algo: 'concurrency', limit: 3 }] })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ ...base, limits: tiers.slice(0, 2), blocks: true })).toThrow(/blocks/);
    expect(() => createRateLimiter({ ...base, limits: tiers.slice(0, 2), layout: 'one-key' as never })).toThrow(/layout must be/);
    // One limit: the subject's key is that limit's key, whatever the layout.
    const onePrefix = uniquePrefix('one');
    const one = createRateLimiter({ ...base, prefix: onePrefix, limits: [tiers[0]!] });
    await one.limit('z');
    expect(await redis.keys(`${onePrefix}:*`)).toEqual([`${onePrefix}:{z}:m`]);
    await one.close();
  });
});

describe("layout: 'subject' without Redis, and during an outage", () => {
  it('the in-memory twin decides as it does with a key per limit (no Redis at all)', async () => {
    const clock = { now: T0 };
    const make = (layout: 'per-limit' | 'subject') => createRateLimiter({ limits: tiers, layout, clock: () => clock.now, denyCache: false });
    const [a, b] = [make('per-limit'), make('subject')];
    const next = rng(5);
    for (let step = 0; step < 200; step++) {
      const id = ['a', 'b'][next(2)]!;
      const r = next(10);
      if (r < 6) {
        const cost = next(3) === 0 ? { m: 1, h: 1, d: next(4), f: 1, t: next(3) } : 1;
        await same(a, b, (rl) => rl.limit(id, { cost }));
      } else if (r < 7) {
        const cost = next(3);
        await same(a, b, (rl) => rl.peek(id, { cost }));
      } else if (r < 8) {
        await Promise.all([a.refund(id, { cost: { d: 2, t: 1 } }), b.refund(id, { cost: { d: 2, t: 1 } })]);
      } else if (r < 9) {
        const options = next(2) === 0 ? {} : { limits: [['m', 'h', 'd', 'f', 't'][next(5)]!] };
        await Promise.all([a.reset(id, options), b.reset(id, options)]);
      } else clock.now += [2_000, 50_000, 20 * MIN][next(3)]!;
    }
    const d = await b.limit('a');
    expect(d.source).toBe('fallback');
    await Promise.all([a.close(), b.close()]);
  });

  it('after Redis dies the fallback goes on from what Redis last said of the subject (seeded), as with a key per limit', async () => {
    let server = await startLocalRedis();
    const limits: LimitSpec[] = [
      { name: 'm', algo: 'gcra', limit: 40, periodMs: HOUR },
      { name: 'd', algo: 'quota', limit: 100, unit: 'day' },
    ];
    const admittedAfter: number[] = [];
    try {
      for (const layout of ['per-limit', 'subject'] as const) {
        if (layout === 'subject') server = await server.restart();
        const c = new Redis({ port: server.port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
        c.on('error', () => {});
        const rl = createRateLimiter({ redis: c, prefix: uniquePrefix(`seed-${layout}`), limits, layout, timeoutMs: 200, denyCache: false, breaker: { consecutiveFailures: 1, resetTimeoutMs: 60_000 } });
        await rl.ready();
        for (let i = 0; i < 30; i++) expect((await rl.limit('x')).source).toBe('redis');
        await server.kill();
        let admitted = 0;
        for (let i = 0; i < 20; i++) {
          const d = await rl.limit('x');
          expect(d.source).toBe('fallback');
          if (d.allowed) admitted++;
        }
        admittedAfter.push(admitted);
        await rl.close();
        c.disconnect();
      }
    } finally {
      await server.kill().catch(() => {});
    }
    // 40 - 30 left on the minute tier (refill over an hour adds none within the test).
    expect(admittedAfter).toEqual([10, 10]);
  }, 30_000);

  it('during an outage the fallback holds each instance to its share', async () => {
    const prefix = uniquePrefix('outage');
    const dead = new Redis({ port: 1, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 1_000, lazyConnect: true });
    dead.on('error', () => {});
    const limits: LimitSpec[] = [
      { name: 'm', algo: 'gcra', limit: 40, periodMs: HOUR },
      { name: 'd', algo: 'quota', limit: 100, unit: 'day' },
    ];
    for (const layout of ['per-limit', 'subject'] as const) {
      const rl = createRateLimiter({ redis: dead, prefix: `${prefix}-${layout}`, limits, layout, fallbackShare: 4, timeoutMs: 50, denyCache: false });
      let admitted = 0;
      for (let i = 0; i < 30; i++) {
        const d = await rl.limit('x');
        expect(d.source).toBe('fallback');
        if (d.allowed) admitted++;
      }
      expect(admitted).toBe(10); // 40 / 4: the minute tier's share
      await rl.close();
    }
    dead.disconnect();
  });
});

describe("layout: 'subject' across instances", () => {
  for (const op of ['refund', 'reset-named', 'settle'] as const) {
    it(`a ${op} by another instance ends this one's cached denial of the subject (announced on the subject's key)`, async () => {
      const prefix = uniquePrefix(`x-${op}`);
      const limits: LimitSpec[] = [
        { name: 'm', algo: 'gcra', limit: 100, periodMs: HOUR },
        { name: 'd', algo: 'quota', limit: 3, unit: 'day' },
      ];
      const other = ioredis();
      const a = createRateLimiter({ redis, prefix, limits, layout: 'subject', denyCache: { maxHoldMs: 86_400_000 }, timeoutMs: 10_000 });
      const b = createRateLimiter({ redis: other, prefix, limits, layout: 'subject', denyCache: false, timeoutMs: 10_000 });
      for (let i = 0; i < 500 && !a.stats().invalidation.subscribed; i++) await new Promise((r) => setTimeout(r, 10));
      expect(a.stats().invalidation.subscribed).toBe(true);
      const held = op === 'settle' ? await b.reserve('s', { cost: { m: 1, d: 1 } }) : null;
      const first = op === 'settle' ? 2 : 3;
      for (let i = 0; i < first; i++) expect((await a.limit('s')).allowed).toBe(true);
      expect((await a.limit('s')).source).toBe('redis');
      expect(await a.limit('s')).toMatchObject({ allowed: false, source: 'deny-cache' });
      if (op === 'refund') await b.refund('s', { cost: { d: 1 } });
      else if (op === 'reset-named') await b.reset('s', { limits: ['d'] });
      else await b.cancel(held!.handle!);
      let d = await a.limit('s');
      for (let i = 0; i < 400 && !d.allowed; i++) {
        await new Promise((r) => setTimeout(r, 5));
        d = await a.limit('s');
      }
      expect(d).toMatchObject({ allowed: true, source: 'redis' });
      await Promise.all([a.close(), b.close()]);
      other.disconnect();
    }, 30_000);
  }
});

describe("layout: 'subject', edges a review found", () => {
  it('seeds the fallback limit by limit: a limit Redis left in debt does not keep the others from being seeded', async () => {
    const limits: LimitSpec[] = [
      { name: 'rpm', algo: 'fixed_window', limit: 100, periodMs: HOUR },
      { name: 'tpd', algo: 'quota', limit: 1000, unit: 'day' },
    ];
    const after: unknown[] = [];
    let server = await startLocalRedis();
    try {
      for (const layout of ['per-limit', 'subject'] as const) {
        if (layout === 'subject') server = await server.restart();
        const c = new Redis({ port: server.port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
        c.on('error', () => {});
        const rl = createRateLimiter({ redis: c, prefix: uniquePrefix(`debt-${layout}`), limits, layout, timeoutMs: 200, denyCache: false, breaker: { consecutiveFailures: 1, resetTimeoutMs: 60_000 } });
        await rl.ready();
        const r = await rl.reserve('x', { cost: { rpm: 1, tpd: 900 } });
        await rl.commit(r.handle!, { tpd: 1500 }, { overage: 'debt' });
        // The settle's own announcement comes back first (a change after Redis's answer would void what was learned).
        await new Promise((res) => setTimeout(res, 300));
        expect((await rl.limit('x', { cost: { rpm: 1, tpd: 0 } })).limits.map((l) => l.remaining)).toEqual([99, -500]);
        await server.kill();
        const d = await rl.limit('x', { cost: { rpm: 1, tpd: 100 } });
        expect(d.source).toBe('fallback');
        after.push(d.limits.map((l) => l.remaining));
        await rl.close();
        c.disconnect();
      }
    } finally {
      await server.kill().catch(() => {});
    }
    expect(after[1]).toEqual(after[0]);
    expect((after[0] as number[])[0]).toBe(98); // rpm seeded from Redis's 99
  }, 30_000);

  it("a subject's key holding another Redis type or foreign state is the caller's StateKeyError, as with a key per limit (alone, coalesced, peek), nothing written; a coalesced turn's other decisions are decided", async () => {
    // (A review found the one-key limiter answering such a key as a denial with the code as its remaining.)
    for (const coalesce of [false, true]) {
      const prefix = uniquePrefix(`badkey-${coalesce}`);
      const rl = createRateLimiter({ redis, prefix, limits: tiers, layout: 'subject', coalesce, denyCache: false, timeoutMs: 10_000 });
      const key = (id: string) => `${prefix}:{${id}}:m+h+d+f+t`;
      await redis.hset(key('hash'), 'x', '1');
      await redis.set(key('garbage'), 'not|these|limits|states|x');
      for (const [id, code] of [['hash', 'WRONGTYPE'], ['garbage', 'WRONGSTATE']] as const) {
        for (const call of [() => rl.limit(id), () => rl.peek(id)]) {
          const err = await call().then(
            () => null,
            (e: unknown) => e,
          );
          expect(err, `${id}, coalesce ${coalesce}`).toMatchObject({ name: 'StateKeyError', redisCode: code, key: key(id) });
        }
      }
      expect(await redis.type(key('hash'))).toBe('hash');
      expect(await redis.get(key('garbage'))).toBe('not|these|limits|states|x');
      // In one turn with good subjects (coalesced: one tiers call of three keys) only the bad one fails.
      const turn = await Promise.allSettled([rl.limit('ok1'), rl.limit('garbage'), rl.limit('ok2')]);
      expect(turn.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((turn[1] as PromiseRejectedResult).reason).toMatchObject({ name: 'StateKeyError', redisCode: 'WRONGSTATE', key: key('garbage') });
      expect(turn.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<Decision>).value.allowed)).toEqual([true, true]);
      await rl.close();
    }
  });

  it('a policy limiter keeps a key per limit (policy changes carry state limit by limit): layout is refused', () => {
    expect(() => createPolicyLimiter({ redis, chain: () => ['default'], layout: 'subject' } as never)).toThrow(/layout must be 'per-limit'/);
  });
});
