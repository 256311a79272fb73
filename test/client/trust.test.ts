import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { createRateLimiter, InvalidConfigError, UnsupportedClientError, type Decision, type RateLimiter } from '../../src/index.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

const gcra = (limit: number, periodMs = 3_600_000) => ({ name: 'r', algo: 'gcra' as const, limit, periodMs });

describe('leases never over-admit', () => {
  it('with short ttls, overlapping expiry sweeps and many ids, no id gets more than its limit', async () => {
    const prefix = uniquePrefix('lease-ttl');
    // Two instances, leases of 7 that expire every 15 ms (sweeps every 10 ms) against a limit of 100 per hour.
    const mk = () => createRateLimiter({ redis, ...UNHURRIED, prefix, limits: gcra(100), lease: { size: 7, ttlMs: 15 }, denyCache: false });
    const instances = [mk(), mk()];
    const ids = Array.from({ length: 30 }, (_, i) => `id-${i}`);
    const allowed = new Map<string, number>();
    const sources = new Set<string>();
    const until = Date.now() + 600;
    await Promise.all(
      Array.from({ length: 24 }, async (_, w) => {
        while (Date.now() < until) {
          const id = ids[(w * 7 + allowed.size) % ids.length]!;
          const d = await instances[w % 2]!.limit(id);
          sources.add(d.source);
          if (d.allowed) allowed.set(id, (allowed.get(id) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 1));
        }
      }),
    );
    await Promise.all(instances.map((i) => i.close()));
    // Every decision from Redis or a lease: a fallback decision is not counted in Redis, and this
    // test is about leases, not deadlines (the generous timeoutMs keeps a starved Redis on path).
    expect([...sources].filter((x) => x !== 'redis' && x !== 'lease' && x !== 'deny-cache')).toEqual([]);
    for (const [id, n] of allowed) expect(n, id).toBeLessThanOrEqual(100);
    // Every unit handed out and not spent went back exactly once: Redis holds the rest.
    const check = createRateLimiter({ redis, ...UNHURRIED, prefix, limits: gcra(100) });
    for (const id of ids) {
      const left = (await check.peek(id)).remaining;
      expect(left + (allowed.get(id) ?? 0), id).toBeLessThanOrEqual(100);
    }
    await check.close();
  }, 20_000);
});

describe('identity is injective', () => {
  it('no two different subjects share a Redis key or a local entry', async () => {
    const prefix = uniquePrefix('ident');
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix, limits: gcra(1) });
    // 'T\0I\0' as a plain id must not be { id: 'I', hashTag: 'T' }, locally or in Redis.
    expect((await rl.limit({ id: 'I', hashTag: 'T' })).allowed).toBe(true);
    expect((await rl.limit({ id: 'I', hashTag: 'T' })).allowed).toBe(false); // now in the deny cache
    expect((await rl.limit('T\u0000I\u0000')).allowed).toBe(true);
    expect((await rl.limit('I')).allowed).toBe(true);
    // Lone surrogates would be encoded to one key: refused with a clear error.
    for (const bad of ['a\uD800', 'a\uDBFF', '\uDC00x']) await expect(rl.limit(bad)).rejects.toThrow(/well-formed/);
    expect((await rl.limit('a\uFFFD')).allowed).toBe(true);
    // The bindings refuse such keys too (other code may call them directly).
    const { gcra: gcraBinding } = await import('../../src/index.js');
    await expect(gcraBinding(redis, { key: 'k\uD800', limit: 1, periodMs: 1000 })).rejects.toThrow(/lone UTF-16 surrogate/);
    await rl.close();
  });

  it('scope and limit names that are Object prototype members are names like any other', async () => {
    const prefix = uniquePrefix('proto');
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix, limits: [{ ...gcra(2), name: 'constructor' }, { ...gcra(5), name: 'toString', scope: 'constructor' }] });
    await expect(rl.limit({ id: 'u' })).rejects.toThrow(/scoped by constructor/);
    const d = await rl.limit({ id: 'u', scopes: { constructor: 'team-1' } }, { cost: { toString: 2 } });
    expect(d.limits.map((l) => [l.name, l.remaining])).toEqual([
      ['constructor', 1],
      ['toString', 3],
    ]);
    const u = { id: 'u', scopes: { constructor: 'team-1' } };
    await expect(rl.limit(u, { cost: JSON.parse('{"__proto__": 1}') })).rejects.toThrow(/cost names limit __proto__, which this limiter does not have/);
    expect((await rl.limit(u)).limits.map((l) => l.remaining)).toEqual([0, 2]);
    await expect(rl.limit(u, { cost: { valueOf: 1 } as never })).rejects.toThrow(/which this limiter does not have/);
    await rl.close();
  });
});

describe('closing', () => {
  it('a process using fromEnv() exits after close(), even with Redis down', async () => {
    const { execFile } = await import('node:child_process');
    const { freePort } = await import('../../devtools/local-redis.js');
    const code = `
      import { fromEnv } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).pathname)};
      const limiter = await fromEnv();
      const d = await limiter.limit('a');
      await limiter.close();
      console.log(JSON.stringify({ source: d.source, closedAt: Date.now() }));`;
    const env = { ...process.env, REDIS_URL: `redis://127.0.0.1:${await freePort()}`, REDLIMIT_LIMIT: '5', REDLIMIT_PERIOD_MS: '1000', REDLIMIT_TIMEOUT_MS: '50' };
    // Starting node with tsx can take many seconds on a loaded machine: the clock starts when
    // close() has returned in the child, and stops when the child has exited.
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { env, timeout: 100_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    const exitedAt = Date.now();
    const { source, closedAt } = JSON.parse(out.trim()) as { source: string; closedAt: number };
    expect(source).toBe('fallback');
    expect(exitedAt - closedAt).toBeLessThan(10_000); // it exited by itself: nothing kept it alive
  }, 120_000);
});

describe('no listener-leak warnings', () => {
  it('with 12 limiters on one connection and 16 callers waiting for it to come up', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const own = await startLocalRedis();
    const client = new Redis(own.url, { lazyConnect: true, enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
    client.on('error', () => {});
    const limiters = Array.from({ length: 12 }, (_, i) => createRateLimiter({ redis: client, prefix: `leak${i}`, limits: gcra(10), timeoutMs: 10_000 }));
    const decisions = await Promise.all(Array.from({ length: 16 }, (_, i) => limiters[i % 12]!.limit(`u${i}`))); // all wait for 'ready'
    expect(decisions.every((d) => d.source === 'redis')).toBe(true);
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    expect(warnings.filter((w) => /MaxListenersExceeded|memory leak/i.test(w))).toEqual([]);
    await Promise.all(limiters.map((l) => l.close()));
    client.disconnect();
    await own.stop();
  });
});

describe('configuration mistakes are refused or reported', () => {
  it('refuses misspelt options, values of the wrong type and things that are not clients', () => {
    const limits = gcra(10);
    expect(() => createRateLimiter({ redis, limits, timeoutMS: 10 } as never)).toThrow(/unknown option "timeoutMS" \(did you mean timeoutMs\?\)/);
    expect(() => createRateLimiter({ redis, limits: { ...limits, brust: 3 } as never })).toThrow(/unknown option "brust" \(did you mean burst\?\)/);
    expect(() => createRateLimiter({ redis, limits: { name: 'r', algo: 'gcra', limit: 1, perodMs: 1 } as never })).toThrow(/unknown option "perodMs"/);
    expect(() => createRateLimiter({ redis, limits: { ...limits, limit: '10' as never } })).toThrow(/got "10"/);
    expect(() => createRateLimiter({ redis: 'redis://localhost:6379' as never, limits })).toThrow(InvalidConfigError);
    expect(() => createRateLimiter({ redis: 'redis://localhost:6379' as never, limits })).toThrow(/create the client yourself/);
    expect(() => createRateLimiter({ redis: {}, limits })).toThrow(UnsupportedClientError);
  });

  it('a node-redis client that was never connected is reported at once, not a silent fallback', async () => {
    const client = createClient({ url: 'redis://127.0.0.1:6379' });
    const rl = createRateLimiter({ redis: client, limits: gcra(10) });
    expect(rl.stats().warnings.join('\n')).toMatch(/not connected/);
    expect((await rl.limit('a')).source).toBe('fallback');
    await rl.close();
  });
});

describe('every decision is truthful, whatever its source', () => {
  it('deny cache answers carry the denying limit and its times, counted down', async () => {
    // The limiter's clock goes to Redis (sendClock), in the middle of a 60 s window: the window
    // cannot turn between the two calls however slow the machine is.
    let now = (Math.floor(Date.now() / 60_000) + 1) * 60_000 + 20_000;
    // Held past the 100 ms default for unannounced changes (no keyspace events on this server).
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: uniquePrefix('dc'), limits: { name: 'w', algo: 'fixed_window', limit: 1, periodMs: 60_000 }, clock: () => now, sendClock: true, denyCache: { maxHoldMs: 60_000 } });
    // A subscription that recovers (a heartbeat answered late on a loaded machine) rightly drops
    // every held denial: then the scenario runs again on another id, at most three times.
    let checked = 0;
    for (let attempt = 0; attempt < 3 && checked === 0; attempt++) {
      const id = `x${attempt}`;
      expect((await rl.limit(id)).allowed).toBe(true);
      const fromRedis = await rl.limit(id);
      expect(fromRedis).toMatchObject({ allowed: false, source: 'redis' });
      now += 1_000;
      if (rl.stats().denyCacheEntries === 0) continue; // the next call checks the cache before any await
      const cached = await rl.limit(id);
      expect(cached.source).toBe('deny-cache');
      expect(cached).toMatchObject({ allowed: false, deniedBy: 'w', limit: 1, remaining: 0 });
      expect(cached.retryAfterMs).toBe(fromRedis.retryAfterMs - 1_000);
      expect(cached.resetAfterMs).toBe(fromRedis.resetAfterMs - 1_000);
      expect(cached.limits).toHaveLength(1);
      expect(cached.resetAfterMs).toBeGreaterThan(0);
      checked++;
    }
    expect(checked).toBe(1);
    await rl.close();
  });

  it('with several limits the top-level numbers are those of the limit that denied', async () => {
    const rl = createRateLimiter({
      redis,
      prefix: uniquePrefix('multi'),
      limits: [
        { name: 'big', algo: 'gcra', limit: 100, periodMs: 60_000 },
        { name: 'small', algo: 'fixed_window', limit: 2, periodMs: 60_000 },
      ],
      denyCache: false,
    });
    await rl.limit('a');
    const allowed = await rl.limit('a');
    expect(allowed).toMatchObject({ allowed: true, remaining: 0, limit: 2 }); // closest to denying: small
    const denied = await rl.limit('a');
    expect(denied).toMatchObject({ allowed: false, deniedBy: 'small', remaining: 0, limit: 2 });
    expect(denied.resetAfterMs).toBe(denied.limits[1]!.resetAfterMs);
    expect(denied.retryAfterMs).toBeGreaterThan(0);
    await rl.close();
  });

  it('fail-open promises nothing; fail-closed says when Redis will be tried again', async () => {
    const own = await startLocalRedis();
    const client = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    await own.stop();
    const open = createRateLimiter({ redis: client, prefix: 'o', limits: gcra(10), onRedisFailure: 'open', breaker: { consecutiveFailures: 1, resetTimeoutMs: 5_000, jitter: 0 } });
    const o = await open.limit('a');
    expect(o).toMatchObject({ allowed: true, source: 'fail-open', remaining: 0, limits: [] });
    const closed = createRateLimiter({ redis: client, prefix: 'c', limits: gcra(10), onRedisFailure: 'closed', breaker: { consecutiveFailures: 1, resetTimeoutMs: 5_000, jitter: 0 } });
    const c: Decision = await closed.limit('a');
    expect(c).toMatchObject({ allowed: false, source: 'fail-closed', remaining: 0 });
    expect(c.retryAfterMs).toBeGreaterThan(4_000); // the breaker opened: the next probe is ~5 s away
    expect(c.retryAfterMs).toBeLessThanOrEqual(5_000);
    await open.close();
    await closed.close();
    client.disconnect();
  });
});

describe('the fallback starts from what Redis last said', () => {
  let own: LocalRedis;
  let client: Redis;
  let limiters: RateLimiter[] = [];
  beforeAll(async () => {
    own = await startLocalRedis();
  });
  afterAll(async () => {
    await Promise.all(limiters.map((l) => l.close()));
    client?.disconnect();
    await own?.kill();
  });

  it('an id Redis exhausted stays exhausted during an outage; others keep exactly their share', async () => {
    client = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    const mk = (fallbackShare: number) => createRateLimiter({ redis: client, prefix: `warm${fallbackShare}`, limits: gcra(6), fallbackShare, denyCache: false, timeoutMs: 500 });
    const [one, two] = [mk(1), mk(2)];
    limiters = [one, two];
    await Promise.all(limiters.map((l) => l.ready()));
    for (const rl of [one, two]) {
      for (let i = 0; i < 6; i++) expect((await rl.limit('spent')).source).toBe('redis');
      for (let i = 0; i < 2; i++) await rl.limit('partial'); // 4 left in Redis
    }
    await own.kill(); // a crash: SIGKILL
    const admitted = async (rl: RateLimiter, id: string) => {
      let n = 0;
      for (let i = 0; i < 10; i++) {
        const d = await rl.limit(id);
        expect(d.source).toBe('fallback');
        if (d.allowed) n++;
      }
      return n;
    };
    expect(await admitted(one, 'spent')).toBe(0);
    expect(await admitted(one, 'partial')).toBe(4);
    expect(await admitted(one, 'never-seen')).toBe(6);
    expect(await admitted(two, 'spent')).toBe(0);
    expect(await admitted(two, 'partial')).toBe(2); // floor(4 / 2): its share
    expect(await admitted(two, 'never-seen')).toBe(3);
  }, 60_000);
});
