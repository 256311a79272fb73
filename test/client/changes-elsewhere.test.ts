import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, type Decision, type RateLimiter } from '../../src/index.js';
import { ioredis, redisUrl, uniquePrefix } from '../support/redis.js';
import { repoRoot } from '../support/temp-scripts.js';

// A change made in another process (or by hand) reaches this process's local caches. The deny
// cache is told to hold denials for a day here, so only the announcement can end one early.
const run = promisify(execFile);
const worker = join(repoRoot, 'test/support/change-worker.ts');
const elsewhere = (prefix: string, op: string, id: string, limits?: unknown, blocks = false) =>
  run(process.execPath, ['--import', 'tsx', worker, redisUrl(), prefix.slice(0, -1), op, id, ...(limits ? [JSON.stringify(limits), blocks ? 'blocks' : ''] : [])], { cwd: repoRoot, timeout: 60_000 });

let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const DAY = 86_400_000;
const quota = { name: 'q', algo: 'quota' as const, limit: 3, unit: 'day' as const };

async function subscribed(rl: RateLimiter): Promise<void> {
  for (let i = 0; i < 500 && !rl.stats().invalidation.subscribed; i++) await new Promise((r) => setTimeout(r, 10));
  expect(rl.stats().invalidation.subscribed).toBe(true);
}

/** Asks until a decision passes `ok` (bounded); returns it and how long after `since` it came. */
async function until(rl: RateLimiter, id: string, ok: (d: Decision) => boolean, since: number): Promise<{ d: Decision; ms: number }> {
  let d = await rl.limit(id);
  for (let i = 0; i < 1_000 && !ok(d); i++) {
    await new Promise((r) => setTimeout(r, 5));
    d = await rl.limit(id);
  }
  return { d, ms: Date.now() - since };
}

async function exhausted(prefix: string): Promise<RateLimiter> {
  const rl = createRateLimiter({ redis, prefix: prefix.slice(0, -1), limits: quota, denyCache: { maxHoldMs: DAY }, timeoutMs: 10_000 });
  await subscribed(rl);
  for (let i = 0; i < 3; i++) expect((await rl.limit('agent')).allowed).toBe(true);
  expect((await rl.limit('agent')).source).toBe('redis');
  expect(await rl.limit('agent')).toMatchObject({ allowed: false, source: 'deny-cache' });
  return rl;
}

describe('local caches honour changes made anywhere', () => {
  it('a reset by another process ends this one’s cached denial of a daily quota', async () => {
    const prefix = uniquePrefix('else-reset');
    const rl = await exhausted(prefix);
    const t0 = Date.now();
    await elsewhere(prefix, 'reset', 'agent');
    const { d } = await until(rl, 'agent', (x) => x.allowed, t0);
    expect(d).toMatchObject({ allowed: true, source: 'redis', remaining: 2 });
    await rl.close();
  }, 60_000);

  it('a refund by another process ends it too (the denied cost may pass now)', async () => {
    const prefix = uniquePrefix('else-refund');
    const rl = await exhausted(prefix);
    await elsewhere(prefix, 'refund', 'agent');
    const { d } = await until(rl, 'agent', (x) => x.allowed, Date.now());
    expect(d).toMatchObject({ allowed: true, source: 'redis', remaining: 0 });
    await rl.close();
  }, 60_000);

  it('another language running the reset script directly (redis-cli --eval) is heard the same way', async () => {
    const prefix = uniquePrefix('else-cli');
    const rl = await exhausted(prefix);
    const url = new URL(redisUrl());
    await run('redis-cli', ['-h', url.hostname, '-p', url.port || '6379', '--eval', join(repoRoot, 'generated/lua/reset.lua'), `${prefix.slice(0, -1)}:{agent}:q`], { timeout: 30_000 });
    const { d } = await until(rl, 'agent', (x) => x.allowed, Date.now());
    expect(d).toMatchObject({ allowed: true, source: 'redis' });
    await rl.close();
  }, 60_000);

  it('a DEL by hand, which nothing announces, is seen after at most the default hold', async () => {
    const prefix = uniquePrefix('else-del');
    const rl = createRateLimiter({ redis, prefix: prefix.slice(0, -1), limits: quota, timeoutMs: 10_000 });
    await subscribed(rl);
    for (let i = 0; i < 3; i++) await rl.limit('agent');
    const denied = await rl.limit('agent');
    expect(denied).toMatchObject({ allowed: false, source: 'redis' });
    await redis.del(`${prefix.slice(0, -1)}:{agent}:q`);
    const t0 = Date.now();
    const { d } = await until(rl, 'agent', (x) => x.allowed, t0);
    expect(d).toMatchObject({ allowed: true, source: 'redis' });
    await rl.close();
  }, 60_000);

  it('a block by another process stops this one’s lease at once', async () => {
    const prefix = uniquePrefix('else-block');
    const limits = { name: 'r', algo: 'gcra' as const, limit: 1_000, periodMs: DAY };
    const rl = createRateLimiter({ redis, prefix: prefix.slice(0, -1), limits, blocks: true, lease: { size: 100, ttlMs: 600_000 }, timeoutMs: 10_000 });
    await subscribed(rl);
    await rl.limit('agent');
    expect((await rl.limit('agent')).source).toBe('lease');
    await elsewhere(prefix, 'block', 'agent', limits, true);
    const { d } = await until(rl, 'agent', (x) => !x.allowed, Date.now());
    expect(d).toMatchObject({ allowed: false, deniedBy: 'block' });
    expect(rl.stats().leases.units).toBe(0);
    await rl.close();
  }, 60_000);

  it('a reset of one agent leaves the org budget it shares alone, in every other instance too', async () => {
    const prefix = uniquePrefix('else-scope');
    const limits = [
      { name: 'agent', algo: 'quota' as const, limit: 2, unit: 'day' as const },
      { name: 'org', algo: 'quota' as const, limit: 3, unit: 'day' as const, scope: 'org' },
    ];
    const mk = () => createRateLimiter({ redis, prefix: prefix.slice(0, -1), limits, denyCache: { maxHoldMs: DAY }, timeoutMs: 10_000 });
    const [a, b] = [mk(), mk()];
    await subscribed(b);
    const s = (id: string) => ({ id, hashTag: 'acme', scopes: { org: 'acme' } });
    expect((await b.limit(s('x'))).allowed).toBe(true);
    expect((await b.limit(s('x'))).allowed).toBe(true);
    expect((await b.limit(s('y'))).allowed).toBe(true);
    expect(await b.limit(s('y'))).toMatchObject({ allowed: false, deniedBy: 'org' });
    await a.reset(s('x'));
    // x's own limit is back, but the org's budget is still spent: y stays denied, from Redis too.
    await new Promise((r) => setTimeout(r, 50));
    expect((await b.peek(s('y'))).limits.find((l) => l.name === 'org')!.remaining).toBe(0);
    expect(await b.limit(s('x'))).toMatchObject({ allowed: false, deniedBy: 'org' });
    await a.close();
    await b.close();
  }, 60_000);
});
