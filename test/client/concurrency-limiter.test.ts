import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, InvalidArgumentError, InvalidConfigError, RateLimitedError, RedisUnavailableError, type RateLimiterOptions } from '../../src/index.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { UNHURRIED } from '../support/redis.js';

/**
 * Concurrency limits on the RateLimiter, on a real Redis: slots held atomically with the rate
 * limits (one multi call), released by the holder or any process with its id, or expired after
 * ttlMs. Counting script calls needs INFO commandstats to itself: this file owns its server.
 */
let server: LocalRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startLocalRedis();
  redis = new Redis(server.url);
  await redis.ping();
});
afterAll(async () => {
  await redis.quit();
  await server.stop();
});

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

const DAY = 86_400_000;
let n = 0;
function limiter(limits: RateLimiterOptions['limits'], extra: Partial<RateLimiterOptions> = {}) {
  const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: `cc${++n}`, limits, ...extra });
  cleanup.push(() => rl.close());
  return rl;
}

async function scriptCalls(): Promise<number> {
  const stats = await redis.info('commandstats');
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro):calls=(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
}

/** Lets other callbacks run: the work a held slot covers. */
const work = () => new Promise<void>((r) => setTimeout(r, 2));

describe('concurrency limits', () => {
  it('N parallel run() calls never have more than `limit` in flight, across instances', async () => {
    const limits: RateLimiterOptions['limits'] = [
      { name: 'rpm', algo: 'gcra', limit: 1_000_000, periodMs: 60_000 },
      { name: 'jobs', algo: 'concurrency', limit: 3 },
    ];
    const a = limiter(limits);
    const b = createRateLimiter({ redis, ...UNHURRIED, prefix: `cc${n}`, limits }); // the same limits and keys: another process
    cleanup.push(() => b.close());
    let inFlight = 0;
    let most = 0;
    let ran = 0;
    let denied = 0;
    const task = async (rl: typeof a) => {
      for (;;) {
        try {
          await rl.run('tenant', async (d) => {
            expect(d.holder).toEqual(expect.any(String));
            inFlight++;
            most = Math.max(most, inFlight);
            await work();
            inFlight--;
          });
          ran++;
          return;
        } catch (err) {
          if (!(err instanceof RateLimitedError)) throw err;
          expect(err.decision.deniedBy).toBe('jobs');
          denied++;
          await work();
        }
      }
    };
    await Promise.all(Array.from({ length: 24 }, (_, i) => task(i % 2 ? a : b)));
    expect(ran).toBe(24);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(0);
    expect(denied).toBeGreaterThan(0); // 24 callers at once on 3 slots: some had to wait
    // Every slot came back.
    const free = await a.peek('tenant');
    expect(free.limits.find((l) => l.name === 'jobs')).toMatchObject({ remaining: 3, limit: 3 });
  });

  it('a rate denial takes no slot, and a concurrency denial takes no rate units', async () => {
    const rl = limiter([
      { name: 'rpm', algo: 'gcra', limit: 2, periodMs: DAY },
      { name: 'jobs', algo: 'concurrency', limit: 5 },
    ]);
    const h1 = await rl.hold('u');
    const h2 = await rl.hold('u');
    expect([h1.allowed, h2.allowed]).toEqual([true, true]);
    const third = await rl.hold('u');
    expect(third).toMatchObject({ allowed: false, deniedBy: 'rpm' });
    expect(third.holder).toBeUndefined();
    expect(await third.release()).toBe(false); // nothing to release
    const p = await rl.peek('u');
    expect(p.limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 0], ['jobs', 3]]); // two held, not three

    const one = limiter([
      { name: 'rpm', algo: 'gcra', limit: 10, periodMs: DAY },
      { name: 'jobs', algo: 'concurrency', limit: 1, ttlMs: DAY },
    ]);
    const first = await one.hold('v');
    expect(first).toMatchObject({ allowed: true });
    expect(first.limits.map((l) => l.remaining)).toEqual([9, 0]);
    const second = await one.limit('v');
    expect(second).toMatchObject({ allowed: false, deniedBy: 'jobs' });
    expect(second.retryAfterMs).toBeGreaterThan(DAY - 600_000); // when the held slot would expire, sooner if released
    expect(second.limits.map((l) => l.remaining)).toEqual([9, 0]); // nothing of rpm taken
    expect((await one.peek('v')).limits.map((l) => l.remaining)).toEqual([9, 0]);
    // The denial was not kept in the deny cache: a release frees the slot at once.
    expect(await first.release()).toBe(true);
    const third2 = await one.limit('v');
    expect(third2).toMatchObject({ allowed: true, source: 'redis' });
    expect(third2.limits.map((l) => l.remaining)).toEqual([8, 0]);
  });

  it('a crashed holder (never released) gives its slot back after ttlMs', async () => {
    const ttlMs = 2_000;
    const rl = limiter({ name: 'jobs', algo: 'concurrency', limit: 1, ttlMs });
    const serverNow = async () => {
      const [s, us] = await redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    // The slot is taken, then denied, within one ttl on the server clock. A machine so loaded that
    // the two calls land further apart than that shows nothing (the slot may have expired between
    // them): another subject, again.
    let subject = '';
    let crashed!: Awaited<ReturnType<typeof rl.limit>>;
    let denied!: Awaited<ReturnType<typeof rl.limit>>;
    for (let attempt = 0; ; attempt++) {
      subject = `w${attempt}`;
      const before = await serverNow();
      crashed = await rl.limit(subject);
      denied = await rl.limit(subject);
      if ((await serverNow()) - before < ttlMs) break;
      expect(attempt, 'every attempt took longer than the ttl').toBeLessThan(4);
    }
    expect(crashed).toMatchObject({ allowed: true, holder: expect.any(String) });
    expect(denied).toMatchObject({ allowed: false, deniedBy: 'jobs' });
    expect(denied.retryAfterMs).toBeGreaterThan(0);
    expect(denied.retryAfterMs).toBeLessThanOrEqual(ttlMs);
    // The server said when the slot expires: once that has passed (however long the wait took
    // here: a loaded machine only waits longer), the slot is free.
    await new Promise((r) => setTimeout(r, denied.retryAfterMs + 20));
    expect(await rl.limit(subject)).toMatchObject({ allowed: true });
    expect(await rl.release(subject, crashed.holder!)).toBe(false); // it had expired
  });

  it('on a moved clock (sendClock), the slot comes back exactly at its ttl', async () => {
    let now = 1_900_000_000_000;
    const rl = limiter({ name: 'jobs', algo: 'concurrency', limit: 1, ttlMs: 5_000 }, { clock: () => now, sendClock: true, blocks: true, denyCache: false });
    expect(await rl.limit('x')).toMatchObject({ allowed: true, resetAfterMs: 5_000 });
    now += 4_999;
    expect(await rl.limit('x')).toMatchObject({ allowed: false, retryAfterMs: 1 });
    now += 1;
    expect(await rl.limit('x')).toMatchObject({ allowed: true });
    // A block made on the same clock ends on it too.
    await rl.reset('x'); // frees the slot
    await rl.block('x', 1_000);
    expect(await rl.limit('x')).toMatchObject({ allowed: false, deniedBy: 'block', retryAfterMs: 1_000 });
    now += 999;
    expect(await rl.limit('x')).toMatchObject({ allowed: false, deniedBy: 'block', retryAfterMs: 1 });
    now += 1;
    expect(await rl.limit('x')).toMatchObject({ allowed: true });
  });

  it('any instance releases a holder by its id; releasing twice is harmless and says so', async () => {
    const limits: RateLimiterOptions['limits'] = { name: 'jobs', algo: 'concurrency', limit: 1, ttlMs: DAY };
    const here = limiter(limits);
    const there = createRateLimiter({ redis, ...UNHURRIED, prefix: `cc${n}`, limits });
    cleanup.push(() => there.close());
    const held = await here.hold('job-1');
    expect(held.holder).toEqual(expect.any(String));
    expect(await there.limit('job-1')).toMatchObject({ allowed: false, deniedBy: 'jobs' });
    expect(await there.release('job-1', held.holder!)).toBe(true);
    expect(await there.release('job-1', held.holder!)).toBe(false);
    expect(await held.release()).toBe(false); // released elsewhere
    expect(await held.release()).toBe(false);
    const next = await there.hold('job-1');
    expect(next.allowed).toBe(true);
    expect(await next.release()).toBe(true);
    expect(await next.release()).toBe(false);
    expect(await here.release('job-1', 'never-held')).toBe(false);
  });

  it('await using releases when the block ends, also when it throws', async () => {
    const rl = limiter({ name: 'jobs', algo: 'concurrency', limit: 1, ttlMs: DAY });
    {
      await using h = await rl.hold('y');
      expect(h.allowed).toBe(true);
      expect(await rl.limit('y')).toMatchObject({ allowed: false });
    }
    expect((await rl.peek('y')).remaining).toBe(1);
    await expect(
      (async () => {
        await using h = await rl.hold('y');
        expect(h.allowed).toBe(true);
        throw new Error('boom');
      })(),
    ).rejects.toThrow('boom');
    expect((await rl.peek('y')).remaining).toBe(1);
    await expect(rl.run('y', () => Promise.reject(new Error('fn failed')))).rejects.toThrow('fn failed');
    expect((await rl.peek('y')).remaining).toBe(1);
    expect(await rl.run('y', (d) => d.remaining)).toBe(0);
  });

  it('a holder asking again renews its slot; peek reports free slots; reset frees them', async () => {
    const rl = limiter([
      { name: 'rpm', algo: 'gcra', limit: 100, periodMs: DAY },
      { name: 'jobs', algo: 'concurrency', limit: 2, ttlMs: DAY },
    ]);
    expect(await rl.limit('z', { holder: 'worker-7' })).toMatchObject({ allowed: true, holder: 'worker-7' });
    expect(await rl.limit('z', { holder: 'worker-7' })).toMatchObject({ allowed: true, holder: 'worker-7' }); // renewed: still one slot
    let p = await rl.peek('z');
    expect(p.limits.map((l) => l.remaining)).toEqual([98, 1]);
    expect(p.allowed).toBe(true);
    await rl.limit('z');
    p = await rl.peek('z', { cost: 1 }); // could a new holder take a slot now? no
    expect(p).toMatchObject({ allowed: false, deniedBy: 'jobs' });
    expect((await rl.limit('z', { cost: 0 })).holder).toBeUndefined(); // a cost of 0 only asks
    await rl.reset('z');
    expect((await rl.peek('z')).limits.map((l) => l.remaining)).toEqual([100, 2]);
    expect(await rl.release('z', 'worker-7')).toBe(false); // the reset freed it
  });

  it('a blocked subject takes no slot; a priority class may take only its share of the slots', async () => {
    const rl = limiter({ name: 'jobs', algo: 'concurrency', limit: 4, ttlMs: DAY }, { blocks: true, priorities: { critical: 1, batch: 0.5 } });
    await rl.block('b', 60_000);
    expect(await rl.limit('b')).toMatchObject({ allowed: false, deniedBy: 'block' });
    await rl.block('b', 0);
    expect((await rl.peek('b')).remaining).toBe(4);
    expect((await rl.limit('b', { priority: 'batch' })).allowed).toBe(true);
    expect((await rl.limit('b', { priority: 'batch' })).allowed).toBe(true);
    expect(await rl.limit('b', { priority: 'batch' })).toMatchObject({ allowed: false, deniedBy: 'jobs', priority: { class: 'batch' } });
    expect((await rl.limit('b', { priority: 'critical' })).allowed).toBe(true);
    expect((await rl.limit('b')).allowed).toBe(true);
    expect((await rl.limit('b')).allowed).toBe(false);
  });

  it('refuses a bad configuration and bad holder ids before any round trip', async () => {
    const bad = (limits: unknown, extra: object = {}) => () => createRateLimiter({ redis, limits: limits as never, ...extra });
    expect(bad({ name: 'c', algo: 'concurrency', limit: 0 })).toThrow(InvalidConfigError);
    expect(bad({ name: 'c', algo: 'concurrency', limit: 2_000_000 })).toThrow(/limit \(holders at once\) must be an integer between 1 and 1000000/);
    expect(bad({ name: 'c', algo: 'concurrency', limit: 2, ttlMs: 0 })).toThrow(/ttlMs must be an integer/);
    expect(bad({ name: 'c', algo: 'concurrency', limit: 2, ttl: 500 })).toThrow(/unknown option "ttl" \(did you mean ttlMs\?\)/);
    expect(bad({ name: 'c', algo: 'concurrency', limit: 2, periodMs: 500 })).toThrow(/unknown option "periodMs"/);
    expect(bad({ name: 'c', algo: 'concurency', limit: 2 })).toThrow(/algo must be one of .*concurrency/);
    expect(bad({ name: 'c', algo: 'concurrency', limit: 2 }, { lease: { size: 10 } })).toThrow(/lease cannot be used with concurrency limit c/);

    const rl = limiter([
      { name: 'rpm', algo: 'gcra', limit: 100, periodMs: DAY },
      { name: 'jobs', algo: 'concurrency', limit: 2 },
    ]);
    const plain = limiter({ name: 'rpm', algo: 'gcra', limit: 100, periodMs: DAY });
    await rl.ready();
    const before = await scriptCalls();
    for (const holder of ['', 'x'.repeat(129), 'a\uD800', 42]) {
      await expect(rl.limit('s', { holder: holder as string })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(rl.release('s', holder as string)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(rl.limit('s', { cost: { jobs: 2 } })).rejects.toThrow(/must be 1 \(hold a slot\) or 0 \(only ask\) for concurrency limit jobs/);
    await expect(plain.limit('s', { holder: 'h' })).rejects.toThrow(/holder is for a limiter with a concurrency limit/);
    await expect(plain.release('s', 'h')).rejects.toBeInstanceOf(InvalidConfigError);
    expect(await scriptCalls()).toBe(before);
    // A number cost applies to the rate limits; the call still holds one slot.
    const d = await rl.limit('s', { cost: 5 });
    expect(d.limits.map((l) => l.remaining)).toEqual([95, 1]);
  });
});

describe('concurrency limits while Redis is down', () => {
  it('the fallback twin holds the slots and releases them; fail-open holds none; fail-closed denies', async () => {
    const s = await startLocalRedis();
    const client = new Redis({ port: s.port, host: '127.0.0.1', enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    client.on('error', () => {});
    cleanup.push(async () => client.disconnect());
    if (client.status !== 'ready') await new Promise((r) => client.once('ready', r));
    const limits: RateLimiterOptions['limits'] = [
      { name: 'rpm', algo: 'gcra', limit: 100, periodMs: DAY },
      { name: 'jobs', algo: 'concurrency', limit: 1, ttlMs: DAY },
    ];
    const make = (onRedisFailure: 'fallback' | 'open' | 'closed') => {
      const rl = createRateLimiter({ redis: client, prefix: `down-${onRedisFailure}`, limits, timeoutMs: 500, onRedisFailure });
      cleanup.push(() => rl.close());
      return rl;
    };
    const fb = make('fallback');
    const open = make('open');
    const closed = make('closed');
    await Promise.all([fb.ready(), open.ready(), closed.ready()]);
    const onRedis = await fb.hold('k');
    expect(onRedis).toMatchObject({ allowed: true, source: 'redis' });
    await s.kill();

    const a = await fb.hold('k2');
    expect(a).toMatchObject({ allowed: true, source: 'fallback', holder: expect.any(String) });
    expect(await fb.limit('k2')).toMatchObject({ allowed: false, source: 'fallback', deniedBy: 'jobs' });
    expect(await a.release()).toBe(true); // released on the twin, which held it
    expect(await fb.limit('k2')).toMatchObject({ allowed: true, source: 'fallback' });
    // A slot Redis holds cannot be released now: the caller is told (it expires after ttlMs).
    await expect(onRedis.release()).rejects.toBeInstanceOf(RedisUnavailableError);
    await expect(fb.run('k3', () => 'ran')).resolves.toBe('ran');

    const o = await open.hold('k');
    expect(o).toMatchObject({ allowed: true, source: 'fail-open' });
    expect(o.holder).toBeUndefined();
    expect(await o.release()).toBe(false);
    expect(await closed.limit('k')).toMatchObject({ allowed: false, source: 'fail-closed' });
  });
});
