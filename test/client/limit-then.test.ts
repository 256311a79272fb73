import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRateLimiter, limitThen, type RateLimiter } from '../../src/client/limiter.js';
import type { Decision } from '../../src/decision.js';
import { ioredis, UNHURRIED, uniquePrefix } from '../support/redis.js';

// limitThen: the policy limiter's internal hook (limit() with the decision handed to a function in
// limit()'s own step). Every way limit() answers hands its decision over exactly once. UNHURRIED:
// a deadline missed on a loaded machine would answer from the fallback, not what is asserted.
const DAY = 86_400_000;
let redis: Redis;
const open: RateLimiter[] = [];
beforeAll(() => {
  redis = ioredis();
});
afterAll(async () => {
  await Promise.all(open.map((l) => l.close()));
  redis.disconnect();
});

type Tagged = Decision & { tag: string; seen: number };
function tagger() {
  const calls: Decision[] = [];
  const after = (d: Decision, arg: string): Tagged => {
    calls.push(d);
    return Object.assign(d, { tag: arg, seen: calls.length });
  };
  return { calls, after };
}

describe('limitThen (internal)', () => {
  it('Redis, the deny cache, and without Redis: the decision limit() gives, handed over once, with the arg', async () => {
    const l = createRateLimiter({ redis, ...UNHURRIED, prefix: uniquePrefix('lthen').slice(0, -1), limits: [{ name: 'rpm', algo: 'fixed_window', limit: 2, periodMs: DAY }], denyCache: { maxHoldMs: DAY } });
    open.push(l);
    // The denial is held past the default 100 ms (a loaded machine may be slower than that between
    // two calls), and only once the limiter hears changes made elsewhere.
    for (let i = 0; i < 500 && !l.stats().invalidation.subscribed; i++) await new Promise((r) => setTimeout(r, 10));
    const { calls, after } = tagger();
    const ds = await Promise.all([0, 1, 2].map((i) => limitThen(l, 'u', undefined, after, `x${i}`)));
    expect(ds.map((d) => [d.allowed, d.source, d.tag])).toEqual([
      [true, 'redis', 'x0'],
      [true, 'redis', 'x1'],
      [false, 'redis', 'x2'],
    ]);
    const cached = await limitThen(l, 'u', undefined, after, 'y');
    expect(cached).toMatchObject({ allowed: false, source: 'deny-cache', tag: 'y' });
    expect(calls).toHaveLength(4);
    const local = createRateLimiter({ limits: [{ name: 'rpm', algo: 'fixed_window', limit: 1, periodMs: DAY }] });
    open.push(local);
    expect(await limitThen(local, 'u', { cost: 1 }, after, 'z')).toMatchObject({ allowed: true, source: 'fallback', tag: 'z', seen: 5 });
  });

  it('a concurrency slot (holder) and bad input: handed over once; a rejection passes through, after() not called', async () => {
    const l = createRateLimiter({ redis, ...UNHURRIED, prefix: uniquePrefix('lthenc').slice(0, -1), limits: [{ name: 'slots', algo: 'concurrency', limit: 1 }] });
    open.push(l);
    const { calls, after } = tagger();
    const d = await limitThen(l, 'u', { holder: 'h1' }, after, 'held');
    expect(d).toMatchObject({ allowed: true, holder: 'h1', tag: 'held', seen: 1 });
    await expect(limitThen(l, 'u', { cost: -1 } as never, after, 'bad')).rejects.toThrow();
    expect(calls).toHaveLength(1);
  });
});
