import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis as IORedis, type Redis } from 'ioredis';
import { createFairShare } from '../../src/client/fair-share.js';
import { InvalidArgumentError, InvalidConfigError, RedisUnavailableError, StateKeyError } from '../../src/errors.js';
import { freePort } from '../../devtools/local-redis.js';
import { ioredis, redisUrl, uniquePrefix } from '../support/redis.js';

const exec = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const HOUR = 3_600_000;
const T = Date.UTC(2026, 0, 15, 10); // the start of an hour: one window for the whole test
let redis: Redis;
let prefix: string;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('fairc').slice(0, -1);
});
afterAll(() => redis.quit());

type Output = { admitted: Record<string, number>; reasons: Record<string, number> };
async function fleet(name: string, limit: number, chunk: number, perProcess: string[][]): Promise<Output[]> {
  const worker = join(repoRoot, 'test/support/fair-worker.ts');
  const outputs = await Promise.all(
    perProcess.map((demands) => exec(process.execPath, ['--import', 'tsx', worker, redisUrl(), prefix, name, String(limit), String(T), String(chunk), ...demands], { cwd: repoRoot, timeout: 120_000 })),
  );
  return outputs.map((o) => JSON.parse(o.stdout) as Output);
}

describe('createFairShare', () => {
  it('20 tenants in 4 processes, one greedy at 10x: each small tenant gets its share, the greedy one is held to its own', async () => {
    const limit = 2_000; // 20 tenants: a share of 100 each
    const fair = createFairShare({ redis, prefix, name: 'skewed', limit: { algo: 'fixed_window', limit, periodMs: HOUR } });
    const tenants = Array.from({ length: 20 }, (_, i) => (i === 0 ? 'greedy' : `small${i}`));
    // Every tenant asks once before the fleet starts (1 unit), so the active set is the same all test long.
    for (const t of tenants) expect(await fair.limit(t, { cost: 1, nowMs: T })).toMatchObject({ allowed: true });
    // Then each small tenant wants 150 more, the greedy one 1500, in chunks of 9 (11 chunks fill a share exactly).
    const demand = (t: string) => `${t}=${t === 'greedy' ? 1_500 : 150}`;
    const results = await fleet('skewed', limit, 9, [0, 1, 2, 3].map((p) => tenants.filter((_, i) => i % 4 === p).map(demand)));
    const admitted = Object.assign({}, ...results.map((r) => r.admitted)) as Record<string, number>;
    const reasons: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(r.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
    // Everyone ends at exactly its share (1 + 11 * 9 = 100): the greedy tenant's 10x demand took nothing from the others.
    for (const t of tenants) expect(1 + admitted[t]!, t).toBe(100);
    expect(reasons.owed).toBeGreaterThan(0); // it was contended: beyond-share calls were refused as owed to others
    expect(reasons['idle-capacity']).toBeUndefined();
    const after = await fair.limit('greedy', { cost: 1, nowMs: T });
    expect(after).toMatchObject({ allowed: false, remaining: 0, used: 100, share: 100, activeTenants: 20, contended: true });
  }, 180_000);

  it('work-conserving: one tenant alone, asking from 4 processes, gets the whole limit', async () => {
    const results = await fleet('alone', 1_000, 10, [0, 1, 2, 3].map(() => ['solo=500']));
    expect(results.reduce((s, r) => s + r.admitted.solo!, 0)).toBe(1_000);
    const fair = createFairShare({ redis, prefix, name: 'alone', limit: { algo: 'fixed_window', limit: 1_000, periodMs: HOUR } });
    expect(await fair.limit('solo', { nowMs: T })).toMatchObject({ allowed: false, reason: 'exhausted', share: 1_000, used: 1_000, activeTenants: 1 });
  }, 180_000);

  it('idle capacity goes to whoever asks once the other tenants have left', async () => {
    const fair = createFairShare({ redis, prefix, name: 'leave', limit: { algo: 'fixed_window', limit: 100, periodMs: 1_000 }, activeWindowMs: 1_000 });
    await fair.limit('a', { cost: 1, nowMs: T });
    expect(await fair.limit('b', { cost: 50, nowMs: T })).toMatchObject({ allowed: true, share: 50, reason: 'within-share' });
    expect(await fair.limit('b', { cost: 10, nowMs: T })).toMatchObject({ allowed: false, reason: 'owed', contended: true, retryAfterMs: 1_000 });
    // next window, a gone: b alone has the whole limit
    expect(await fair.limit('b', { cost: 100, nowMs: T + 1_000 })).toMatchObject({ allowed: true, share: 100, activeTenants: 1 });
  });

  it('weights, and the twin when no redis is given', async () => {
    const fair = createFairShare({ name: 'w', limit: { algo: 'sliding_window', limit: 100, periodMs: 1_000 }, weights: { big: 3 } });
    expect(await fair.limit('small', { nowMs: T })).toMatchObject({ share: 100 });
    expect(await fair.limit('big', { nowMs: T })).toMatchObject({ share: 75, activeTenants: 2 });
    expect(await fair.limit('small', { nowMs: T })).toMatchObject({ share: 25, used: 2 });
  });

  it('refuses bad config and bad calls with typed errors', async () => {
    const limit = { algo: 'fixed_window' as const, limit: 10, periodMs: 1_000 };
    expect(() => createFairShare({ redis, name: 'x', limit, activeWindowMs: 999 })).toThrow(InvalidConfigError);
    expect(() => createFairShare({ redis, name: 'x', limit: { ...limit, algo: 'gcra' as never } })).toThrow(InvalidConfigError);
    expect(() => createFairShare({ redis, name: 'x', limit, weights: { a: 0 } })).toThrow(InvalidConfigError);
    expect(() => createFairShare({ redis, name: '{x}', limit })).toThrow(InvalidConfigError);
    const fair = createFairShare({ redis, prefix, name: 'bad', limit, weights: () => 1.5 });
    await expect(fair.limit('a')).rejects.toBeInstanceOf(InvalidArgumentError);
    const plain = createFairShare({ redis, prefix, name: 'bad', limit });
    await expect(plain.limit('a', { cost: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(plain.limit('', { cost: 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await redis.exists(`${prefix}:{bad}:fair:state`, `${prefix}:{bad}:fair:tenants`, `${prefix}:{bad}:fair:active`)).toBe(0);
  });

  it("Redis failing is a RedisUnavailableError (the client's error its cause), a key of another type a StateKeyError: no client error reaches the caller", async () => {
    const limit = { algo: 'fixed_window' as const, limit: 10, periodMs: 1_000 };
    // Nothing listens there: every command fails at once (no offline queue, no retry).
    const dead = new IORedis(await freePort(), { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    dead.on('error', () => {});
    try {
      const err = await createFairShare({ redis: dead, prefix, name: 'down', limit }).limit('a').then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(RedisUnavailableError);
      expect((err as Error).message).toContain('fair share');
      expect((err as Error & { cause?: unknown }).cause).toBeInstanceOf(Error);
      expect((err as Error & { cause?: unknown }).cause).not.toBeInstanceOf(RedisUnavailableError);
    } finally {
      dead.disconnect();
    }
    await redis.sadd(`${prefix}:{typed}:fair:state`, 'x'); // a set where the state is kept
    await expect(createFairShare({ redis, prefix, name: 'typed', limit }).limit('a')).rejects.toBeInstanceOf(StateKeyError);
  });
});
