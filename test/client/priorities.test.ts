import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, InvalidArgumentError, InvalidConfigError, type RateLimiterOptions } from '../../src/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

// Priority classes through the client: a class may use only its share of each limit's capacity,
// decided atomically in Redis (its own script, batch, multi, multi_batch) and the same on the twin.
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const HOUR = 3_600_000;
const priorities = { critical: 1, interactive: 0.8, batch: 0.5 };

async function drain(options: RateLimiterOptions, cls: string, id = 'p', n = 20): Promise<number> {
  const rl = createRateLimiter(options);
  let admitted = 0;
  for (let i = 0; i < n; i++) if ((await rl.limit(id, { priority: cls })).allowed) admitted++;
  await rl.close();
  return admitted;
}

describe('priority classes', () => {
  for (const [label, extra] of [
    ['its own script', { coalesce: false }],
    ['coalesced (batch)', {}],
    ['the in-memory twin', { redis: undefined }],
  ] as const) {
    it(`a class uses only its share of the capacity, higher classes the rest — ${label}`, async () => {
      const options = { redis, prefix: uniquePrefix('prio'), limits: { name: 'r', algo: 'gcra' as const, limit: 10, periodMs: HOUR }, priorities, timeoutMs: 10_000, ...extra };
      const rl = createRateLimiter(options);
      const seen = [];
      for (let i = 0; i < 8; i++) seen.push(await rl.limit('a', { priority: 'batch' }));
      // batch must leave 10 - floor(10 * 0.5) = 5: five pass, then it waits while critical still passes.
      expect(seen.filter((d) => d.allowed)).toHaveLength(5);
      const denied = seen.at(-1)!;
      expect(denied).toMatchObject({ allowed: false, priority: { class: 'batch', shares: { r: 0.5 } } });
      expect(denied.retryAfterMs).toBeGreaterThan(0);
      // interactive must leave 10 - floor(8) = 2: three more pass (4, 3, 2 left), the fourth would leave 1.
      expect(await rl.limit('a', { priority: 'interactive' })).toMatchObject({ allowed: true, remaining: 4 });
      expect((await rl.limit('a', { priority: 'interactive' })).allowed).toBe(true);
      expect(await rl.limit('a', { priority: 'interactive' })).toMatchObject({ allowed: true, remaining: 2 });
      expect((await rl.limit('a', { priority: 'interactive' })).allowed).toBe(false);
      expect(await rl.limit('a', { priority: 'critical' })).toMatchObject({ allowed: true, remaining: 1 });
      expect(await rl.limit('a')).toMatchObject({ allowed: true, remaining: 0 });
      await rl.close();
    });
  }

  it('a share a class can never satisfy answers retry -1', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('prio-never'), limits: { name: 'tpm', algo: 'sliding_window', limit: 100, periodMs: 60_000 }, priorities, timeoutMs: 10_000 });
    // batch may use 50 of 100: a cost of 60 can never pass for it, though it fits the limit.
    expect(await rl.limit('a', { cost: 60, priority: 'batch' })).toMatchObject({ allowed: false, retryAfterMs: -1 });
    expect(await rl.limit('a', { cost: 60, priority: 'critical' })).toMatchObject({ allowed: true });
    await rl.close();
  });

  it('several limits (multi), per-limit shares, and a denial cached for one class does not deny another', async () => {
    const rl = createRateLimiter({
      redis,
      prefix: uniquePrefix('prio-multi'),
      limits: [
        { name: 'rpm', algo: 'fixed_window', limit: 10, periodMs: HOUR },
        { name: 'tpm', algo: 'gcra', limit: 1_000, periodMs: HOUR, priorities: { batch: 0.2 } },
      ],
      priorities,
      denyCache: { maxHoldMs: HOUR },
      timeoutMs: 10_000,
    });
    // batch: rpm keeps 5, tpm keeps 800 → tpm denies after 200 tokens.
    expect((await rl.limit('a', { cost: { tpm: 150 }, priority: 'batch' })).allowed).toBe(true);
    const d = await rl.limit('a', { cost: { tpm: 100 }, priority: 'batch' });
    expect(d).toMatchObject({ allowed: false, deniedBy: 'tpm', source: 'redis', priority: { class: 'batch', shares: { rpm: 0.5, tpm: 0.2 } } });
    expect((await rl.limit('a', { cost: { tpm: 100 }, priority: 'batch' })).source).toBe('deny-cache');
    expect(await rl.limit('a', { cost: { tpm: 100 }, priority: 'critical' })).toMatchObject({ allowed: true, source: 'redis' });
    // Coalesced: several decisions of one turn, each with its own class.
    const turn = await Promise.all([rl.limit('b', { priority: 'batch' }), rl.limit('b', { priority: 'critical' }), rl.limit('b')]);
    expect(turn.every((x) => x.allowed && x.source === 'redis')).toBe(true);
    expect(turn[0]!.priority?.class).toBe('batch');
    expect(turn[2]!.priority).toBeUndefined();
    await rl.close();
  });

  it('bad classes are refused: at construction, and a class the limiter does not have before any round trip', async () => {
    const limits = { name: 'r', algo: 'gcra' as const, limit: 10, periodMs: HOUR };
    expect(() => createRateLimiter({ redis, limits, priorities: { batch: 0 } })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ redis, limits, priorities: { batch: 1.5 } })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ redis, limits: { ...limits, priorities: { 'a b': 0.5 } } })).toThrow(InvalidConfigError);
    const rl = createRateLimiter({ redis, limits, priorities, timeoutMs: 10_000 });
    await expect(rl.limit('a', { priority: 'bulk' })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(rl.breaker!.stats().state).toBe('closed');
    await rl.close();
  });
});

describe('priority classes on some limits only, on the in-memory twin', () => {
  it('a limit without the class is decided at its full capacity (its share is the default, not 0)', async () => {
    // Limit a has no classes of its own; b keeps half back from batch. On the twin an absent
    // share once travelled as 0, which denied a's very first call.
    const rl = createRateLimiter({
      limits: [
        { name: 'a', algo: 'gcra', limit: 4, periodMs: HOUR },
        { name: 'b', algo: 'gcra', limit: 10, periodMs: HOUR, priorities: { batch: 0.5 } },
      ],
    });
    const first = await rl.limit('x', { priority: 'batch' });
    expect(first.allowed).toBe(true);
    let admitted = 1;
    for (let i = 0; i < 9; i++) if ((await rl.limit('x', { priority: 'batch' })).allowed) admitted++;
    expect(admitted).toBe(4); // a's own 4, b would have allowed 5
    await rl.close();
  });
});
