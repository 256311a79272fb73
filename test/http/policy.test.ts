import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { Redis } from 'ioredis';
import { expressRateLimit, fetchRateLimit, honoRateLimit, HttpRateLimiter, opsHandler, type HttpRateLimitOptions } from '../../src/http/index.js';
import { createPolicyLimiter, PolicyStore } from '../../src/policy/index.js';
import { startLocalRedis } from '../../devtools/local-redis.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';
import { parseRateLimit } from './support.js';

const HOUR = 3_600_000;
const fw = (name: string, limit: number) => ({ name, algo: 'fixed_window' as const, limit, periodMs: HOUR });
const who = { author: 'test', reason: 'a test' };
/** Each API key's plan, as an app would look it up. */
const plans: Record<string, string> = { k1: 'free', k2: 'pro' };
const chain = (_req: unknown, key: string) => ['default', `plan:${plans[key] ?? 'none'}`, `key:${key}`];

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

type Started = { url: string; close(): Promise<void> };

/** An Express app; closing it closes the core it built. */
async function expressApp(o: HttpRateLimitOptions | HttpRateLimiter): Promise<Started> {
  const app = express();
  const middleware = expressRateLimit(o);
  app.use(middleware);
  app.get('/', (_req, res) => void res.send('ok'));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const close = async () => {
    await new Promise<void>((r) => server.close(() => r()));
    if (!(o instanceof HttpRateLimiter)) await middleware.limiter.close();
  };
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close };
}

async function honoApp(o: HttpRateLimitOptions | HttpRateLimiter): Promise<Started> {
  const app = new Hono();
  app.use('*', honoRateLimit(o));
  app.get('/', (c) => c.text('ok'));
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

const get = (url: string, key: string) => fetch(url, { headers: { 'x-api-key': key } });

/** Admitted requests out of `n` for `key`. */
async function admitted(url: string, key: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await get(url, key)).status === 200) ok++;
  return ok;
}

/** The quota RateLimit-Policy reports for `key` (a request is spent to read it). */
async function quota(url: string, key: string): Promise<number | null> {
  const p = (await get(url, key)).headers.get('ratelimit-policy');
  const m = p ? /;q=(\d+);/.exec(p) : null;
  return m ? Number(m[1]) : null;
}

describe('HTTP rules with limits from the policy store', () => {
  for (const [framework, start] of [
    ['express', expressApp],
    ['hono', honoApp],
  ] as const) {
    it(`${framework}: two API keys on different plans get their own limits; a change to a plan applies without a restart`, async () => {
      const prefix = uniquePrefix(`hpol-${framework}`).slice(0, -1);
      const http = new HttpRateLimiter({ redis, prefix, key: { header: 'x-api-key' }, limiter: UNHURRIED, rules: [{ name: 'api', policy: { chain } }] });
      // Another process's store: the policies of rule api live under `${prefix}:api`.
      const store = new PolicyStore(await readyIoredis(), `${prefix}:api`);
      await store.set('default', { limits: [fw('rpm', 100)] }, who);
      await store.set('plan:free', { limits: [fw('rpm', 2)] }, who);
      await store.set('plan:pro', { limits: [fw('rpm', 5)] }, who);
      const app = await start(http);
      try {
        const first = await get(app.url, 'k1');
        expect(first.status).toBe(200);
        expect(first.headers.get('ratelimit-policy')).toBe('"rpm";q=2;w=3600');
        expect(parseRateLimit(first.headers.get('ratelimit'))).toMatchObject({ name: 'rpm', r: 1 });
        expect(await admitted(app.url, 'k1', 3)).toBe(1);
        const denied = await get(app.url, 'k1');
        expect(denied.status).toBe(429);
        expect(denied.headers.get('ratelimit-policy')).toBe('"rpm";q=2;w=3600');
        expect(Number(denied.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(await admitted(app.url, 'k2', 7)).toBe(5);

        // The plan changes in another process; the next requests follow (as-is: the 2 used stay used).
        const v = await store.set('plan:free', { limits: [fw('rpm', 4)] }, { author: 'ops', reason: 'more for free' });
        for (let i = 0; i < 2000 && (await http.policyLimiter('api')!.peek('k1', { chain: chain(null, 'k1') })).policyVersion < v; i++) await new Promise((r) => setTimeout(r, 5));
        expect(await quota(app.url, 'k1')).toBe(4); // spends the 3rd unit
        expect(await admitted(app.url, 'k1', 3)).toBe(1);
        expect((await get(app.url, 'k2')).headers.get('ratelimit-policy')).toBe('"rpm";q=5;w=3600'); // pro untouched

        // A key of its own: key:<id> is the most specific layer.
        await store.set('key:k2', { limits: [fw('rpm', 50)] }, who);
        for (let i = 0; i < 2000 && (await http.policyLimiter('api')!.peek('k2', { chain: chain(null, 'k2') })).limit !== 50; i++) await new Promise((r) => setTimeout(r, 5));
        expect(await quota(app.url, 'k2')).toBe(50);
      } finally {
        await app.close();
        await http.close();
      }
    });
  }

  it('fetch handler with a policy limiter of your own: shared with the operations endpoint, environment scale applies, an unknown plan is a 403', async () => {
    const prefix = uniquePrefix('hpol-fetch').slice(0, -1);
    const policies = createPolicyLimiter({ redis, prefix, environment: 'production', ...UNHURRIED });
    const http = new HttpRateLimiter({ redis, prefix, key: { header: 'x-api-key' }, rules: [{ name: 'api', policy: { limiter: policies, chain: (_req, key) => (plans[key] ? chain(null, key) : ['default']) } }] });
    const handler = fetchRateLimit(http, () => new Response('ok'));
    const ops = opsHandler(http, { authorize: () => true, policies: policies.policies });
    try {
      const put = (name: string, policy: object) => ops(new Request(`http://x/ratelimit/policies/${name}`, { method: 'PUT', body: JSON.stringify({ policy, author: 'ops' }) }));
      expect((await put('plan:free', { limits: [fw('rpm', 10)] }))!.status).toBe(200);
      expect((await put('env:production', { scale: 0.8 }))!.status).toBe(200);
      const r = await handler(new Request('http://x/', { headers: { 'x-api-key': 'k1' } }));
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit-policy')).toBe('"rpm";q=8;w=3600'); // floor(10 x 0.8)
      // k3 has no plan: its chain is ['default'] (+ env), which sets no limit: onNoLimits deny.
      const none = await handler(new Request('http://x/', { headers: { 'x-api-key': 'k3' } }));
      expect(none.status).toBe(403);
      expect(none.headers.get('ratelimit-policy')).toBeNull();
      const subjects = await (await ops(new Request('http://x/ratelimit/subjects/k1')))!.json();
      expect(subjects.rules.api).toEqual({ resolvedPerRequest: true });
      const health = await (await ops(new Request('http://x/ratelimit/health')))!.json();
      expect(health).toMatchObject({ ok: true, rules: { api: { redis: 'up' } } });
    } finally {
      await http.close();
      await policies.close();
    }
  });

  it('refuses a malformed policy rule, with did-you-mean', () => {
    const base = (rule: object): HttpRateLimitOptions => ({ redis, rules: [{ name: 'api', ...rule } as never] });
    expect(() => new HttpRateLimiter(base({ policy: { chian: chain } }))).toThrow(/rules\[0\] \(api\)\.policy: unknown option "chian" \(did you mean chain\?\)/);
    expect(() => new HttpRateLimiter(base({ polciy: { chain } }))).toThrow(/unknown option "polciy" \(did you mean policy\?\)/);
    expect(() => new HttpRateLimiter(base({ policy: {} }))).toThrow(/give chain/);
    expect(() => new HttpRateLimiter(base({ policy: { chain: 'default' } }))).toThrow(/policy\.chain must be a function/);
    expect(() => new HttpRateLimiter(base({ policy: { chain }, limits: fw('rpm', 1) }))).toThrow(/give limits, a limiter or a policy \(one of them\)/);
    expect(() => new HttpRateLimiter(base({ policy: { chain, onNoLimits: 'maybe' } }))).toThrow(/onNoLimits must be 'deny' or 'allow'/);
    expect(() => new HttpRateLimiter(base({ policy: { chain, limiter: {} } }))).toThrow(/policy\.limiter must be a PolicyLimiter/);
    expect(() => new HttpRateLimiter({ rules: [{ name: 'api', policy: { chain } }] })).toThrow(/needs redis/);
    const bare = createPolicyLimiter({ redis, prefix: uniquePrefix('hpol-bare').slice(0, -1) });
    expect(() => new HttpRateLimiter(base({ policy: { limiter: bare } }))).toThrow(/has no chain\(subject\): give policy\.chain/);
    expect(() => new HttpRateLimiter(base({ policy: { limiter: bare, chain, environment: 'prod' } }))).toThrow(/environment belong to the policy limiter given/);
    void bare.close();
  });
});

describe('HTTP policy rules during a Redis outage', () => {
  it('the last known policies stay: the fallback decides with them; closed fails with 503; a core started during the outage fails closed, or uses its defaults', async () => {
    const own = await startLocalRedis();
    const client = () => {
      const r = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
      r.on('error', () => {});
      return r;
    };
    const r1 = client();
    await new Promise((r) => r1.once('ready', r));
    const prefix = 'hout';
    const opts = (extra: object = {}): HttpRateLimitOptions => ({ redis: r1, prefix, key: { header: 'x-api-key' }, limiter: { timeoutMs: 200 }, rules: [{ name: 'api', policy: { chain, ...extra } }] });
    const fallback = await expressApp(opts());
    const closed = await expressApp({ ...opts(), limiter: { timeoutMs: 200, onRedisFailure: 'closed' } });
    const store = new PolicyStore(r1, `${prefix}:api`);
    await store.set('plan:free', { limits: [fw('rpm', 3)] }, who);
    await store.set('plan:pro', { limits: [fw('rpm', 9)] }, who);
    try {
      expect((await get(fallback.url, 'k1')).headers.get('ratelimit-policy')).toBe('"rpm";q=3;w=3600');
      expect((await get(fallback.url, 'k2')).headers.get('ratelimit-policy')).toBe('"rpm";q=9;w=3600');
      expect((await get(closed.url, 'k1')).status).toBe(200);
      await own.stop();
      const during = [];
      for (let i = 0; i < 4; i++) during.push(await get(fallback.url, 'k1'));
      expect(during.map((r) => r.headers.get('ratelimit-policy'))).toEqual(Array(4).fill('"rpm";q=3;w=3600'));
      expect(during.filter((r) => r.status === 200)).toHaveLength(2); // 3, less the 1 the fallback learned Redis admitted
      expect((await get(fallback.url, 'k2')).headers.get('ratelimit-policy')).toBe('"rpm";q=9;w=3600');
      expect((await get(closed.url, 'k1')).status).toBe(503);

      // Started while Redis is down: nothing of the chain is known.
      const cold = await expressApp(opts());
      const coldDefaults = await expressApp(opts({ defaults: [fw('rpm', 1)] }));
      try {
        const c = await get(cold.url, 'k1');
        expect(c.status).toBe(503);
        expect(Number(c.headers.get('retry-after'))).toBeGreaterThan(0);
        const d = await get(coldDefaults.url, 'k1');
        expect(d.status).toBe(200);
        expect(d.headers.get('ratelimit-policy')).toBe('"rpm";q=1;w=3600');
        expect((await get(coldDefaults.url, 'k1')).status).toBe(429);
      } finally {
        await cold.close();
        await coldDefaults.close();
      }
    } finally {
      await fallback.close();
      await closed.close();
      r1.disconnect();
      await own.stop().catch(() => {});
    }
  }, 60_000);
});
