import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { CircuitBreaker, createRateLimiter, InvalidArgumentError, InvalidConfigError, RateLimitedError, type MetricsHook } from '../../src/index.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { LoopClock } from '../support/loop-clock.js';
import { UNHURRIED, uniquePrefix } from '../support/redis.js';

// Counting Redis calls needs INFO commandstats to itself: this file owns its server.
let server: LocalRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startLocalRedis();
  redis = new Redis(server.url);
  await redis.ping(); // connected: a limiter sends nothing to a client that is not ready
});
afterAll(async () => {
  await redis.quit();
  await server.stop();
});

async function scriptCalls(): Promise<number> {
  const stats = await redis.info('commandstats');
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro):calls=(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
}

const rpmTpm = [
  { name: 'rpm', algo: 'sliding_log' as const, limit: 3, periodMs: 60_000 },
  // Per day: no token comes back while a test runs, however loaded the machine (1 per 86.4 s).
  { name: 'tpm', algo: 'gcra' as const, limit: 1_000, periodMs: 86_400_000 },
];

describe('createRateLimiter', () => {
  it('decides several limits atomically, with per-limit costs, names and sources', async () => {
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl1', limits: rpmTpm });
    const a = await rl.limit('agent', { cost: { tpm: 600 } });
    expect(a).toMatchObject({ allowed: true, deniedBy: null, source: 'redis', remaining: 400, limit: 1000 });
    expect(a.limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 2], ['tpm', 400]]);
    const b = await rl.limit('agent', { cost: { tpm: 600 } });
    expect(b).toMatchObject({ allowed: false, deniedBy: 'tpm', source: 'redis' });
    // 200 tokens at 1000/day, on the server clock, less whatever time has passed since.
    expect(b.retryAfterMs).toBeGreaterThan(17_280_000 - 60_000);
    expect(b.retryAfterMs).toBeLessThanOrEqual(17_280_000);
    expect(b.limits[0]).toMatchObject({ name: 'rpm', remaining: 2 }); // nothing consumed
    await expect(rl.limitOrThrow('agent', { cost: { tpm: 600 } })).rejects.toBeInstanceOf(RateLimitedError);
    expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([2, 400]);
    await rl.refund('agent', { cost: { tpm: 600, rpm: 0 } });
    expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([2, 1000]);
    await rl.reset('agent');
    expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([3, 1000]);
    await rl.close();
  });

  it('blocks an id regardless of its limits, until the block ends or is lifted', async () => {
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl2', limits: { name: 'rps', algo: 'gcra', limit: 100, periodMs: 1000 }, blocks: true });
    const plain = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl2', limits: { name: 'rps', algo: 'gcra', limit: 100, periodMs: 1000 } });
    await expect(plain.block('mallory', 60_000)).rejects.toThrow(/blocks: true/);
    await rl.block('mallory', 60_000);
    const d = await rl.limit('mallory');
    expect(d).toMatchObject({ allowed: false, deniedBy: 'block', source: 'redis' });
    expect(d.retryAfterMs).toBeGreaterThan(59_000);
    expect((await rl.limit('alice')).allowed).toBe(true);
    await rl.block('mallory', 0);
    expect((await rl.limit('mallory')).allowed).toBe(true);
    await rl.close();
  });

  it('keys limits by scope under one hash tag (user / team / org)', async () => {
    const rl = createRateLimiter({
      redis,
      prefix: 'rl3',
      limits: [
        { name: 'user', algo: 'gcra', limit: 5, periodMs: 60_000 },
        { name: 'org', algo: 'quota', limit: 7, unit: 'month', scope: 'org' },
      ],
    });
    const caller = (user: string) => ({ id: user, hashTag: 'acme', scopes: { org: 'acme' } });
    let admitted = 0;
    for (const user of ['ann', 'bob']) for (let i = 0; i < 5; i++) if ((await rl.limit(caller(user))).allowed) admitted++;
    expect(admitted).toBe(7); // the org quota is shared
    expect(await redis.exists('rl3:{acme}:org:acme', 'rl3:{acme}:user:ann', 'rl3:{acme}:user:bob')).toBe(3);
    await expect(rl.limit({ id: 'ann', hashTag: 'acme' })).rejects.toThrow(/scoped by org/);
    await rl.close();
  });

  it('refuses bad configuration and bad input with clear typed errors', async () => {
    expect(() => createRateLimiter({ redis, limits: [] })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ redis, limits: { name: 'x', algo: 'gcra', limit: 0, periodMs: 1000 } })).toThrow(/limit x: limit must be an integer between 1/);
    expect(() => createRateLimiter({ redis, limits: { name: 'x', algo: 'nope' as 'gcra', limit: 1, periodMs: 1000 } })).toThrow(/algo must be one of/);
    expect(() => createRateLimiter({ redis, limits: { name: 'x', algo: 'sliding_log', limit: 1, periodMs: 1000 }, lease: { size: 10 } })).toThrow(/lease cannot be used with sliding_log/);
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl4', limits: rpmTpm });
    await expect(rl.limit('')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(rl.limit('a{b}')).rejects.toThrow(/without \{ or \}/);
    await expect(rl.limit('a', { cost: -1 })).rejects.toThrow(/cost must be (an integer|between)/);
    await expect(rl.limit('a', { cost: { nope: 1 } })).rejects.toThrow(/which this limiter does not have/);
    expect(rl.stats().breaker?.state).toBe('closed'); // input errors are not Redis failures
    await rl.close();
    const leased = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl4b', limits: { name: 'g', algo: 'gcra', limit: 5, periodMs: 1000 }, lease: { size: 2 } });
    await expect(leased.limit('')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(leased.limit('a', { cost: 1.5 })).rejects.toThrow(/cost must be (an integer|between)/);
    await leased.close();
  });

  it('deny cache: a flood from a denied id costs zero Redis calls, and ends at the exact retry time', async () => {
    let now = Date.now();
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl5', limits: { name: 'rps', algo: 'fixed_window', limit: 2, periodMs: 3_600_000 }, clock: () => now });
    await rl.limit('flood');
    await rl.limit('flood');
    const denied = await rl.limit('flood');
    expect(denied).toMatchObject({ allowed: false, source: 'redis' });
    const before = await scriptCalls();
    for (let i = 0; i < 500; i++) expect(await rl.limit('flood')).toMatchObject({ allowed: false, source: 'deny-cache', deniedBy: 'rps' });
    expect((await scriptCalls()) - before).toBe(0);
    expect((await rl.limit('other')).source).toBe('redis'); // only the denied id is cached
    now += denied.retryAfterMs + 1;
    expect((await rl.limit('flood')).source).toBe('redis');
    await rl.close();
  });

  it('deny cache answers only the costs Redis denied: never a cheaper call, never a costlier one', async () => {
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl6', limits: { name: 'tpm', algo: 'gcra', limit: 100, periodMs: 60_000 } });
    expect((await rl.limit('x', { cost: 80 })).allowed).toBe(true);
    expect(await rl.limit('x', { cost: 50 })).toMatchObject({ allowed: false, source: 'redis' });
    expect(await rl.limit('x', { cost: 50 })).toMatchObject({ allowed: false, source: 'deny-cache' });
    // A costlier call waits longer than the cached denial says, or can never pass: only Redis knows.
    const costlier = await rl.limit('x', { cost: 60 });
    expect(costlier).toMatchObject({ allowed: false, source: 'redis' });
    expect(costlier.retryAfterMs).toBeGreaterThan((await rl.limit('x', { cost: 50 })).retryAfterMs);
    expect(await rl.limit('x', { cost: 101 })).toMatchObject({ allowed: false, source: 'redis', retryAfterMs: -1 });
    expect(await rl.limit('x', { cost: 10 })).toMatchObject({ allowed: true, source: 'redis' });
    await rl.close();
  });

  it('leases: batches of units from Redis, spent locally, never over-admitting across instances', async () => {
    const limits = { name: 'rps', algo: 'gcra' as const, limit: 1, periodMs: 3_600_000, burst: 1_000 };
    const a = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl7', limits, lease: { size: 100, ttlMs: 60_000 } });
    const b = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl7', limits, lease: { size: 100, ttlMs: 60_000 } });
    await Promise.all([a.ready(), b.ready()]);
    const before = await scriptCalls();
    let admitted = 0;
    const sources = new Set<string>();
    for (let i = 0; i < 1_500; i++) {
      const d = await (i % 2 ? a : b).limit('shared');
      if (d.allowed) admitted++;
      sources.add(d.source);
    }
    expect(admitted).toBeLessThanOrEqual(1_000);
    expect(admitted).toBeGreaterThan(800);
    expect(sources.has('lease')).toBe(true);
    expect((await scriptCalls()) - before).toBeLessThan(100);
    await a.close();
    await b.close();
  });

  it('leases: close() gives unused units back', async () => {
    const limits = { name: 'rps', algo: 'gcra' as const, limit: 1, periodMs: 3_600_000, burst: 1_000 };
    const a = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl7b', limits, lease: { size: 100, ttlMs: 60_000 } });
    for (let i = 0; i < 150; i++) expect((await a.limit('shared')).allowed).toBe(true);
    const peek = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl7b', limits });
    // Once any background top-up has landed, what Redis lacks is exactly what was spent or is held.
    let held = 0;
    for (let i = 0; i < 200; i++) {
      held = a.stats().leases.units;
      if ((await peek.peek('shared')).remaining === 1_000 - 150 - held) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(held).toBeGreaterThan(0);
    expect((await peek.peek('shared')).remaining).toBe(1_000 - 150 - held);
    await a.close();
    expect((await peek.peek('shared')).remaining).toBe(1_000 - 150);
    await peek.close();
  });

  it('acquire waits for a booked slot fleet-wide, no polling; aborting gives the units back', async () => {
    const mk = () => createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl8', limits: { name: 'calls', algo: 'gcra', limit: 20, periodMs: 1000, burst: 1 }, blocks: true });
    const [x, y] = [mk(), mk()];
    await Promise.all([x.ready(), y.ready()]); // their preparation is not counted below
    await x.peek('warm-up'); // load the scripts, so the count below is bookings only
    await x.acquire('warm-up');
    const t0 = Date.now();
    const before = await scriptCalls();
    const results = await Promise.all([0, 1, 2, 3].map((i) => (i % 2 ? x : y).acquire('job', { maxWaitMs: 1000 })));
    const elapsed = Date.now() - t0;
    expect(results.every((r) => r.allowed)).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(140); // 4 calls at 20/s after a burst of 1: the last waits 150 ms
    expect((await scriptCalls()) - before).toBe(8); // a block check and a booking each
    // Waiting and aborting on a slow limit (1 per minute), so no refill can race the assertions.
    const slow = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl8s', limits: { name: 'calls', algo: 'gcra', limit: 1, periodMs: 60_000 } });
    expect((await slow.acquire('job')).allowed).toBe(true);
    expect((await slow.acquire('job', { maxWaitMs: 10 })).allowed).toBe(false); // the next slot is ~60 s away
    const ac = new AbortController();
    const pending = slow.acquire('job', { maxWaitMs: 120_000, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('caller gave up')), 5);
    await expect(pending).rejects.toThrow('caller gave up');
    // The booking was given back: the key is one minute from full again, not two.
    expect((await slow.peek('job')).resetAfterMs).toBeLessThanOrEqual(60_000);
    await x.block('job', 10_000);
    expect(await x.acquire('job', { maxWaitMs: 1000 })).toMatchObject({ allowed: false, deniedBy: 'block', source: 'redis' });
    await x.close();
    await y.close();
    await slow.close();
  });

  it('acquire aborted while its booking is on its way to Redis gives up at once and gives the units back (it waited out the whole booked slot)', async () => {
    const slow = createRateLimiter({ redis, ...UNHURRIED, prefix: uniquePrefix('rl8a'), limits: { name: 'calls', algo: 'gcra', limit: 1, periodMs: 60_000 } });
    expect((await slow.acquire('job')).allowed).toBe(true);
    const ac = new AbortController();
    const t0 = Date.now();
    const pending = slow.acquire('job', { maxWaitMs: 120_000, signal: ac.signal });
    ac.abort(new Error('caller gave up')); // the booking (gcra_reserve) has not come back yet
    await expect(pending).rejects.toThrow('caller gave up');
    expect(Date.now() - t0).toBeLessThan(30_000); // not the ~60 s slot it booked
    // The booking was given back: one minute from full again, not two.
    expect((await slow.peek('job')).resetAfterMs).toBeLessThanOrEqual(60_000);
    await slow.close();
  });

  it('a key holding foreign data fails that call alone with a typed error; the breaker and the fallback hear nothing', async () => {
    const reasons: string[] = [];
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl10', limits: { name: 'r', algo: 'gcra', limit: 5, periodMs: 60_000 }, metrics: { redisError: (e) => reasons.push(e.reason) }, breaker: new CircuitBreaker({ consecutiveFailures: 1 }) });
    await redis.rpush('rl10:{bad}:r', 'not a limiter');
    await redis.set('rl10:{odd}:r', 'not-gcra-state');
    await expect(rl.limit('bad')).rejects.toMatchObject({ code: 'ERR_WRONG_STATE', redisCode: 'WRONGTYPE' });
    await expect(rl.limit('odd')).rejects.toMatchObject({ code: 'ERR_WRONG_STATE', redisCode: 'WRONGSTATE' });
    expect(reasons).toEqual([]);
    expect(rl.stats().fallbackKeys).toBe(0);
    expect(rl.stats().breaker!.state).toBe('closed');
    expect((await rl.limit('good')).source).toBe('redis');
    await rl.close();
  });

  it('works on a node-redis 5 client too, and falls back the moment it is closed', async () => {
    const client = createClient({ url: server.url });
    client.on('error', () => {});
    await client.connect();
    const rl = createRateLimiter({ redis: client, prefix: 'rl11', limits: { name: 'r', algo: 'sliding_log', limit: 2, periodMs: 60_000 }, timeoutMs: 2_000 });
    expect(await rl.limit('n')).toMatchObject({ allowed: true, source: 'redis', remaining: 1 });
    expect(await rl.limit('n')).toMatchObject({ allowed: true, source: 'redis', remaining: 0 });
    client.destroy();
    const clock = new LoopClock();
    const started = clock.now();
    expect(await rl.limit('n')).toMatchObject({ source: 'fallback' });
    // Not ready and not opening: no waiting for the 2 s deadline (counted in time this process
    // could run, so a loaded machine does not stretch it).
    expect(clock.now() - started).toBeLessThan(1_000);
    clock.stop();
    await rl.close();
  });

  it('reports decisions, latency and breaker state through the metrics hook', async () => {
    const events: string[] = [];
    const metrics: MetricsHook = { decision: (e) => events.push(`${e.outcome}:${e.source}`) };
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: 'rl9', limits: { name: 'r', algo: 'gcra', limit: 1, periodMs: 60_000 }, metrics });
    await rl.limit('m');
    await rl.limit('m');
    await rl.limit('m');
    expect(events).toEqual(['allowed:redis', 'denied:redis', 'denied:deny-cache']);
    await rl.close();
  });
});
