import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { createRateLimiter, type Decision } from '../../src/index.js';
import { autoFunctions } from '../../src/runtime/functions.js';
import { MAX_BATCH } from '../../src/client/coalescer.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { LoopClock } from '../support/loop-clock.js';
import { UNHURRIED, uniquePrefix } from '../support/redis.js';

// A redis-server of this file's own: the tests count script calls, which other files' traffic
// on a shared server would inflate.
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

/** Script calls (round trips) Redis has served, whatever the command that ran them. */
async function scriptCalls(client: Redis = redis): Promise<number> {
  const stats = await client.info('commandstats');
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro):calls=(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
}

/** scriptCalls(), asked synchronously from another process (redis-cli), so it works while this event loop is held. */
function scriptCallsNow(): number {
  const out = spawnSync('redis-cli', ['-p', String(server.port), 'INFO', 'commandstats'], { encoding: 'utf8', timeout: 30_000 });
  if (out.status !== 0) throw new Error(`redis-cli INFO failed: ${out.stderr || out.error}`);
  return [...out.stdout.matchAll(/cmdstat_(?:evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro):calls=(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
}

/** Blocks the event loop for at least `atLeastMs` and until `until()` holds (bounded: at most 60 s). */
function holdEventLoop({ atLeastMs, until }: { atLeastMs: number; until: () => boolean }): void {
  const start = performance.now();
  let done = false;
  while (!done || performance.now() - start < atLeastMs) {
    if (performance.now() - start > 60_000) throw new Error('Redis did not serve the batch within 60 s');
    done ||= until();
  }
}

const shape = (d: Decision) => [d.allowed, d.remaining, d.retryAfterMs > 0];

describe('the fast path', () => {
  it('coalesces the decisions of one event-loop turn into one script call, deciding exactly as one by one', async () => {
    const limits = { name: 'rps', algo: 'gcra' as const, limit: 3, periodMs: 3_600_000 };
    const together = createRateLimiter({ redis, prefix: uniquePrefix('co1'), limits, denyCache: false, ...UNHURRIED });
    const apart = createRateLimiter({ redis, prefix: uniquePrefix('co2'), limits, denyCache: false, coalesce: false, ...UNHURRIED });
    await Promise.all([together.ready(), apart.ready()]); // their preparation (Functions, scripts) counted before, not below
    await together.peek('warm-up');
    await apart.peek('warm-up');
    // 5 calls for each of 40 ids, interleaved, all in one turn.
    const ids = Array.from({ length: 200 }, (_, i) => `id-${i % 40}`);
    const before = await scriptCalls();
    const coalesced = await Promise.all(ids.map((id) => together.limit(id)));
    const calls = (await scriptCalls()) - before;
    expect(calls).toBeLessThanOrEqual(Math.ceil(200 / MAX_BATCH) + 1); // one turn: batches of MAX_BATCH, each sent when full
    expect(coalesced.every((d) => d.source === 'redis')).toBe(true);
    const oneByOne: Decision[] = [];
    for (const id of ids) oneByOne.push(await apart.limit(id));
    expect(coalesced.map(shape)).toEqual(oneByOne.map(shape));
    expect(coalesced.filter((d) => d.allowed)).toHaveLength(40 * 3); // exactly the limit per id
    await together.close();
    await apart.close();
  });

  it('coalesces multi-limit decisions too (multi_batch), each all-or-nothing, blocks included', async () => {
    const limits = [
      { name: 'minute', algo: 'gcra' as const, limit: 4, periodMs: 60_000 },
      { name: 'hour', algo: 'fixed_window' as const, limit: 6, periodMs: 3_600_000 },
      { name: 'day', algo: 'quota' as const, limit: 100, unit: 'day' as const },
    ];
    const together = createRateLimiter({ redis, prefix: uniquePrefix('mco1'), limits, denyCache: false, blocks: true, ...UNHURRIED });
    const apart = createRateLimiter({ redis, prefix: uniquePrefix('mco2'), limits, denyCache: false, blocks: true, coalesce: false, ...UNHURRIED });
    await Promise.all([together.ready(), apart.ready()]);
    await together.block('eve', 60_000);
    await apart.block('eve', 60_000);
    const ids = Array.from({ length: 120 }, (_, i) => (i % 20 === 0 ? 'eve' : `id-${i % 20}`));
    const costs = ids.map((_, i) => ({ hour: 1 + (i % 2) }));
    const before = await scriptCalls();
    const coalesced = await Promise.all(ids.map((id, i) => together.limit(id, { cost: costs[i] })));
    expect((await scriptCalls()) - before).toBeLessThanOrEqual(Math.ceil(120 / MAX_BATCH) + 1);
    const oneByOne: Decision[] = [];
    for (const [i, id] of ids.entries()) oneByOne.push(await apart.limit(id, { cost: costs[i] }));
    const view = (d: Decision) => [d.allowed, d.deniedBy, d.remaining, d.limits.map((l) => l.remaining)];
    expect(coalesced.map(view)).toEqual(oneByOne.map(view));
    expect(coalesced.filter((d) => d.deniedBy === 'block')).toHaveLength(6);
    expect(new Set(coalesced.map((d) => d.deniedBy))).toEqual(new Set([null, 'minute', 'hour', 'block']));
    await together.close();
    await apart.close();
  });

  it('a lone decision is sent as the limit’s own script, without waiting for company', async () => {
    // Per hour: nothing refills between the two calls, however slow the machine.
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('lone'), limits: { name: 'r', algo: 'gcra', limit: 5, periodMs: 3_600_000 }, ...UNHURRIED });
    await rl.ready();
    await rl.peek('x');
    const before = await scriptCalls();
    const d = await rl.limit('x');
    expect(d).toMatchObject({ allowed: true, remaining: 4, source: 'redis', deniedBy: null });
    expect((await scriptCalls()) - before).toBe(1);
    await rl.close();
  });

  it('a busy event loop never opens the breaker against a healthy Redis', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('busy'), limits: { name: 'r', algo: 'gcra', limit: 1_000_000, periodMs: 1000 }, timeoutMs: 20, breaker: { consecutiveFailures: 1 } });
    await rl.ready();
    await rl.peek('warm-up');
    for (let round = 0; round < 5; round++) {
      const before = await scriptCalls();
      const pending = Array.from({ length: 256 }, (_, i) => rl.limit(`u${i}`)); // full batches (MAX_BATCH each): sent at once
      // Hold the event loop far past the deadline, and until Redis has answered (asked from another
      // process): the replies wait in the socket, so the whole wait is this process's, none of it
      // Redis'. A loaded machine that starves Redis only makes the hold longer.
      holdEventLoop({ atLeastMs: 4 * 20, until: () => scriptCallsNow() > before });
      const decisions = await Promise.all(pending);
      expect(decisions.every((d) => d.source === 'redis')).toBe(true);
    }
    expect(rl.stats().breaker).toMatchObject({ state: 'closed', totalFailures: 0 });
    await rl.close();
  });

  it('a Redis that does not answer still fails each call within about the deadline', async () => {
    const own = await startLocalRedis();
    const client = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
    client.on('error', () => {});
    try {
      const rl = createRateLimiter({ redis: client, prefix: 'stall', limits: { name: 'r', algo: 'gcra', limit: 10, periodMs: 1000 }, timeoutMs: 50 });
      await rl.ready();
      await client.call('CLIENT', 'PAUSE', '3000', 'ALL');
      const clock = new LoopClock();
      const t0 = performance.now();
      const loop0 = clock.now();
      const d = await rl.limit('x');
      const waited = performance.now() - t0;
      const loopWaited = clock.now() - loop0;
      clock.stop();
      expect(d.source).toBe('fallback'); // Redis answers nothing until the pause ends
      expect(waited).toBeGreaterThanOrEqual(45);
      // Within about the deadline of time this process could run (a loaded machine adds wall time
      // the deadline rightly does not charge to Redis), and well before the pause ends.
      expect(loopWaited).toBeLessThan(50 + 100);
      expect(waited).toBeLessThan(3_000);
      await rl.close();
    } finally {
      client.disconnect();
      await own.stop();
    }
  });

  it('blocks are opt-in: a limiter with blocks checks them atomically through multi', async () => {
    const prefix = uniquePrefix('blk');
    const limits = { name: 'r', algo: 'gcra' as const, limit: 10, periodMs: 1000 };
    // The deny cache holds a denial for at most 100 ms unless it hears of every change made
    // elsewhere (keyspace events) or is told to hold longer, and drops everything when its
    // subscription was lost and is back (a heartbeat missed on a loaded machine): so the denial
    // is asked again until the cache answers it (bounded), each answer a denial by the block.
    const rl = createRateLimiter({ redis, prefix, limits, blocks: true, ...UNHURRIED, denyCache: { maxHoldMs: 60_000 } });
    for (let i = 0; i < 500 && !rl.stats().invalidation.subscribed; i++) await new Promise((r) => setTimeout(r, 10));
    expect(rl.stats().invalidation.subscribed).toBe(true);
    await rl.block('eve', 5_000);
    expect(await rl.limit('eve')).toMatchObject({ allowed: false, deniedBy: 'block', source: 'redis', limits: [{ name: 'r', allowed: true }] });
    let again = await rl.limit('eve');
    for (let i = 0; i < 20 && again.source !== 'deny-cache'; i++) {
      expect(again).toMatchObject({ allowed: false, deniedBy: 'block' });
      again = await rl.limit('eve');
    }
    expect(again).toMatchObject({ allowed: false, deniedBy: 'block', source: 'deny-cache' });
    expect((await rl.peek('eve')).deniedBy).toBe('block');
    // A limit named "block" cannot reach the penalty box.
    const named = createRateLimiter({ redis, prefix, limits: { ...limits, name: 'block' }, ...UNHURRIED });
    expect((await named.limit('eve')).allowed).toBe(true);
    await rl.close();
    await named.close();
  });

  it('the in-memory path decides exactly like the twin scripts (no Redis given)', async () => {
    let now = 1_800_000_000_000;
    const rl = createRateLimiter({ limits: { name: 'r', algo: 'sliding_window', limit: 4, periodMs: 1000 }, clock: () => now });
    const reference = new (await import('../../src/index.js')).TwinClient({ clock: () => now });
    for (let i = 0; i < 30; i++) {
      now += 97;
      const d = await rl.limit('a', { cost: 1 + (i % 2) });
      const r = await b.slidingWindow(reference, { key: 'a', limit: 4, periodMs: 1000, cost: 1 + (i % 2) });
      expect([d.allowed, d.remaining, d.resetAfterMs, d.retryAfterMs, d.source]).toEqual([r.allowed, r.remaining, r.resetAfterMs, r.retryAfterMs, 'fallback']);
    }
    await rl.close();
  });
});

describe('Functions, loaded automatically', () => {
  let own: LocalRedis;
  beforeAll(async () => {
    own = await startLocalRedis();
  });
  afterAll(() => own?.stop());

  it('loads this release’s library and runs every decision through FCALL', async () => {
    const client = new Redis(own.url);
    await client.function('FLUSH');
    const rl = createRateLimiter({ redis: client, prefix: 'fn', limits: { name: 'r', algo: 'gcra', limit: 10, periodMs: 1000 }, ...UNHURRIED });
    expect(await autoFunctions(client)).toBe('fcall');
    await client.config('RESETSTAT');
    await rl.limit('a');
    expect(await client.info('commandstats')).toMatch(/cmdstat_fcall:calls=1,/);
    // FUNCTION FLUSH (or a failover to a node without it): back to EVALSHA without a failed call.
    await client.function('FLUSH');
    expect((await rl.limit('a')).source).toBe('redis');
    expect(rl.stats().breaker!.totalFailures).toBe(0);
    await rl.close();
    client.disconnect();
  });

  it('never replaces a library another release loaded, and stays on EVALSHA', async () => {
    const client = new Redis(own.url);
    await client.function('FLUSH');
    const foreign = "#!lua name=redlimit\nredis.register_function{ function_name = 'redlimit_library', flags = { 'no-writes' }, callback = function() return 'another-release' end }";
    await client.function('LOAD', foreign);
    const rl = createRateLimiter({ redis: client, prefix: 'fn2', limits: { name: 'r', algo: 'gcra', limit: 10, periodMs: 1000 }, ...UNHURRIED });
    expect(await autoFunctions(client)).toBe('other-library');
    await client.config('RESETSTAT');
    expect((await rl.limit('a')).source).toBe('redis');
    const stats = await client.info('commandstats');
    expect(stats).not.toMatch(/cmdstat_fcall:/);
    expect(await client.fcall('redlimit_library', 0)).toBe('another-release');
    await rl.close();
    client.disconnect();
  });
});
