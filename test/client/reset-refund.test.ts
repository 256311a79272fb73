import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, InvalidArgumentError, InvalidConfigError, type LimitSpec } from '../../src/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

// What reset, refund, acquire and close() touch: exactly what the caller names, and every unit
// spent or given back once. Deadlines are not what these tests are about: a generous timeoutMs
// keeps a loaded machine from sending a call to the fallback.
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const HOUR = 3_600_000;
const slow = { timeoutMs: 10_000 };

describe('reset', () => {
  const limits: LimitSpec[] = [
    { name: 'agent', algo: 'gcra', limit: 5, periodMs: HOUR },
    { name: 'org', algo: 'quota', limit: 10, unit: 'day', scope: 'org' },
  ];
  const agent = (id: string) => ({ id, hashTag: 'acme', scopes: { org: 'acme' } });

  it('resets what belongs to the subject by default, not the budget it shares with others', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('reset-own'), limits, denyCache: false, ...slow });
    for (let i = 0; i < 3; i++) expect((await rl.limit(agent('a1'))).allowed).toBe(true);
    for (let i = 0; i < 4; i++) expect((await rl.limit(agent('a2'))).allowed).toBe(true);
    await rl.reset(agent('a1'));
    const after = await rl.peek(agent('a1'));
    expect(after.limits.find((l) => l.name === 'agent')!.remaining).toBe(5);
    // The org's budget still counts all 7 calls, a1's included.
    expect(after.limits.find((l) => l.name === 'org')!.remaining).toBe(3);
    await rl.close();
  });

  it('resets exactly the limits or scopes a caller names', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('reset-named'), limits, denyCache: false, ...slow });
    for (let i = 0; i < 3; i++) await rl.limit(agent('a1'));
    await rl.reset(agent('a1'), { scopes: ['org'] });
    let p = await rl.peek(agent('a1'));
    expect(p.limits.map((l) => l.remaining)).toEqual([2, 10]);
    await rl.limit(agent('a1'));
    await rl.reset(agent('a1'), { limits: ['agent', 'org'] });
    p = await rl.peek(agent('a1'));
    expect(p.limits.map((l) => l.remaining)).toEqual([5, 10]);
    await expect(rl.reset(agent('a1'), { limits: ['nope'] })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(rl.reset(agent('a1'), { scopes: ['team'] })).rejects.toBeInstanceOf(InvalidArgumentError);
    await rl.close();
  });
});

describe('refund', () => {
  it('gives back only what it names: unused tokens return no request', async () => {
    const rl = createRateLimiter({
      redis,
      prefix: uniquePrefix('refund-named'),
      limits: [
        { name: 'rpm', algo: 'gcra', limit: 10, periodMs: HOUR },
        { name: 'tpm', algo: 'gcra', limit: 1_000, periodMs: HOUR },
      ],
      ...slow,
    });
    expect((await rl.limit('a', { cost: { tpm: 500 } })).allowed).toBe(true);
    await rl.refund('a', { cost: { tpm: 200 } });
    const p = await rl.peek('a');
    expect(p.limits.map((l) => l.remaining)).toEqual([9, 700]);
    // A number still refunds that many units of every limit.
    await rl.refund('a', { cost: 1 });
    expect((await rl.peek('a')).limits.map((l) => l.remaining)).toEqual([10, 701]);
    await rl.close();
  });
});

describe('caller errors never reach the fallback', () => {
  it('acquire refuses what its script would refuse, before the round trip, and the breaker hears nothing', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('acquire-bad'), limits: { name: 'g', algo: 'gcra', limit: 1_000, periodMs: 1 }, ...slow });
    for (let i = 0; i < 20; i++) {
      await expect(rl.acquire('a', { cost: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
      // max_wait_ms * limit / period_ms above 1e9 units: the script's @check refuses it.
      await expect(rl.acquire('a', { maxWaitMs: 2_000_000 })).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    expect(rl.breaker!.stats().state).toBe('closed');
    expect((await rl.limit('other')).source).toBe('redis');
    await rl.close();
  });

  it('a limiter with more limits than one coalesced decision can carry is refused at construction', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `l${i}`, algo: 'gcra' as const, limit: 10, periodMs: 1_000 }));
    expect(() => createRateLimiter({ redis, limits: many(17) })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ redis, limits: many(16), blocks: true })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ redis, limits: many(16) }).close()).not.toThrow();
  });
});

describe('leases and close()', () => {
  it('a top-up whose reply arrives after close() is given back: every unit spent or returned once', async () => {
    const prefix = uniquePrefix('lease-close');
    const limits = { name: 'r', algo: 'gcra' as const, limit: 100, periodMs: HOUR };
    const peek = createRateLimiter({ redis, prefix, limits, ...slow });
    for (let round = 0; round < 5; round++) {
      const id = `s${round}`;
      const rl = createRateLimiter({ redis, prefix, limits, lease: { size: 10, ttlMs: 60_000 }, denyCache: false, ...slow });
      let allowed = 0;
      expect((await rl.limit(id)).allowed).toBe(true); // the first lease (10 units, 1 spent)
      allowed++;
      // Spend below half without awaiting, so a top-up is in flight, then close in the same turn.
      const pending = Array.from({ length: 5 + round }, () => rl.limit(id));
      const closing = rl.close();
      for (const d of await Promise.all(pending)) if (d.allowed) allowed++;
      await closing;
      expect((await peek.peek(id)).remaining, `round ${round}`).toBe(100 - allowed);
    }
    await peek.close();
  });
});
