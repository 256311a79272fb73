import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { HttpRateLimiter, nodeRateLimit, opsMiddleware, signBypass, type HttpRateLimitOptions } from '../../src/index.js';
import { startLocalRedis } from '../../devtools/local-redis.js';
import { freePort } from '../../devtools/local-redis.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';
import { listen, parseRateLimit } from './support.js';

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

const one = { name: 'once', algo: 'fixed_window' as const, limit: 1, periodMs: 3_600_000 };

/** A node http server behind nodeRateLimit; `send` makes a real request and gives status and headers. */
async function server(o: Partial<HttpRateLimitOptions>) {
  const http = new HttpRateLimiter({ redis, prefix: uniquePrefix('rules').slice(0, -1), limiter: UNHURRIED, ...o } as HttpRateLimitOptions);
  const limit = nodeRateLimit(http);
  const s = await listen((req, res) => limit(req, res, () => res.end('ok')));
  const send = async (path = '/', init: { method?: string; headers?: Record<string, string> } = {}) => {
    const res = await fetch(`${s.url}${path}`, init);
    return { status: res.status, headers: res.headers, body: await res.text() };
  };
  return { send, http, close: async () => (await s.close(), await http.close()) };
}

describe('keys', () => {
  it('keys by the socket address and ignores X-Forwarded-For unless a proxy is trusted', async () => {
    const s = await server({ limits: one });
    expect((await s.send('/', { headers: { 'x-forwarded-for': '203.0.113.1' } })).status).toBe(200);
    expect((await s.send('/', { headers: { 'x-forwarded-for': '203.0.113.2' } })).status).toBe(429); // same socket: same client
    await s.close();
  });

  it('with a trusted proxy, IPv6 clients are keyed by their /56 and IPv4-mapped addresses by their IPv4', async () => {
    const s = await server({ limits: one, trustProxy: ['127.0.0.1'] });
    const from = (xff: string) => s.send('/', { headers: { 'x-forwarded-for': xff } });
    expect((await from('2001:db8:1:1200::1')).status).toBe(200);
    expect((await from('2001:db8:1:12ff:ffff::9')).status).toBe(429); // same /56
    expect((await from('2001:db8:1:1300::1')).status).toBe(200); // next /56
    expect((await from('::ffff:198.51.100.7')).status).toBe(200);
    expect((await from('198.51.100.7')).status).toBe(429); // the same IPv4 client
    // A forged entry in front of the real one changes nothing: the proxy appended the real client.
    expect((await from('10.9.9.9, 2001:db8:1:1200::5')).status).toBe(429);
    await s.close();
  });

  it('a missing key is a documented choice: reject (400), skip, or a shared key', async () => {
    const reject = await server({ limits: one, key: { header: 'x-user' } });
    const r = await reject.send();
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ status: 400, title: 'Bad Request' });
    await reject.close();
    const skip = await server({ limits: one, key: { header: 'x-user' }, onMissingKey: 'skip' });
    expect((await skip.send()).status).toBe(200);
    expect((await skip.send()).status).toBe(200);
    await skip.close();
    const shared = await server({ limits: one, key: { header: 'x-user' }, onMissingKey: { key: 'anonymous' } });
    expect((await shared.send()).status).toBe(200);
    expect((await shared.send()).status).toBe(429);
    expect((await shared.send('/', { headers: { 'x-user': 'ann' } })).status).toBe(200);
    await shared.close();
  });
});

describe('headers', () => {
  it.each([
    ['ietf', ['ratelimit', 'ratelimit-policy'], ['ratelimit-limit', 'x-ratelimit-limit']],
    ['draft-6', ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit-policy'], ['ratelimit', 'x-ratelimit-limit']],
    ['legacy', ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'], ['ratelimit', 'ratelimit-limit']],
    ['none', [], ['ratelimit', 'ratelimit-limit', 'x-ratelimit-limit']],
  ] as const)('%s', async (style, present, absent) => {
    const s = await server({ limits: { name: 'm', algo: 'gcra', limit: 5, periodMs: 60_000 }, headers: style });
    const { headers } = await s.send();
    for (const h of present) expect(headers.get(h), h).not.toBeNull();
    for (const h of absent) expect(headers.get(h), h).toBeNull();
    if (style === 'draft-6') expect([headers.get('ratelimit-limit'), headers.get('ratelimit-remaining'), headers.get('ratelimit-policy')]).toEqual(['5', '4', '5;w=60']);
    if (style === 'legacy') expect(Number(headers.get('x-ratelimit-reset'))).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
    await s.close();
  });

  it('with several limits, RateLimit names the one that denied and Retry-After is never below its t', async () => {
    const s = await server({
      limits: [
        { name: 'minute', algo: 'gcra', limit: 100, periodMs: 60_000 },
        { name: 'hour', algo: 'fixed_window', limit: 2, periodMs: 3_600_000 },
      ],
    });
    const a = await s.send();
    expect(a.headers.get('ratelimit-policy')).toBe('"minute";q=100;w=60, "hour";q=2;w=3600');
    expect(parseRateLimit(a.headers.get('ratelimit'))).toMatchObject({ name: 'hour', r: 1 }); // closest to denying
    await s.send();
    const denied = await s.send();
    const t = parseRateLimit(denied.headers.get('ratelimit'))!;
    expect(t).toMatchObject({ name: 'hour', r: 0 });
    expect(Number(denied.headers.get('retry-after'))).toBeGreaterThanOrEqual(t.t);
    expect(JSON.parse(denied.body)).toMatchObject({ limit: 'hour' });
    await s.close();
  });
});

describe('rules', () => {
  it('the first rule whose path, method and client class match decides; others pass unlimited', async () => {
    const s = await server({
      key: (req) => req.header('x-user') ?? 'anon',
      rules: [
        { name: 'login', path: '/login', method: 'POST', limits: one },
        { name: 'keys', path: /^\/api\//, clientClass: 'api-key', limits: { ...one, limit: 2 } },
        { name: 'anon', path: /^\/api\//, clientClass: 'anonymous', limits: one },
      ],
    });
    expect((await s.send('/login', { method: 'POST' })).status).toBe(200);
    expect((await s.send('/login', { method: 'POST' })).status).toBe(429);
    expect((await s.send('/login')).status).toBe(200); // GET: no rule
    expect((await s.send('/api/x')).status).toBe(200);
    expect((await s.send('/api/x')).status).toBe(429);
    const withKey = { headers: { 'x-api-key': 'secret', 'x-user': 'anon' } };
    expect((await s.send('/api/x', withKey)).status).toBe(200); // another class, another rule
    expect((await s.send('/api/x', withKey)).status).toBe(200);
    expect((await s.send('/api/x', withKey)).status).toBe(429);
    expect((await s.send('/other')).status).toBe(200);
    await s.close();
  });

  it('shadow mode decides and reports but never denies', async () => {
    const seen: boolean[] = [];
    const s = await server({ rules: [{ name: 'new', limits: one, shadow: true }], onDecision: (e) => seen.push(e.decision.allowed) });
    for (let i = 0; i < 3; i++) expect((await s.send()).status).toBe(200);
    expect(seen).toEqual([true, false, false]);
    expect(s.http.counters.byRule.new).toMatchObject({ allowed: 1, shadowDenied: 2, denied: 0 });
    await s.close();
  });

  it('allow list, deny list (403), skip and environment scaling', async () => {
    const s = await server({
      limits: { name: 'two', algo: 'fixed_window', limit: 4, periodMs: 3_600_000 },
      key: { header: 'x-user' },
      allowList: ['vip'],
      denyList: ['mallory', '203.0.113.0/24'],
      trustProxy: 1,
      skip: (req) => req.path === '/healthz',
      scale: 0.5,
    });
    for (let i = 0; i < 5; i++) expect((await s.send('/', { headers: { 'x-user': 'vip' } })).status).toBe(200);
    expect((await s.send('/', { headers: { 'x-user': 'mallory' } })).status).toBe(403);
    expect((await s.send('/', { headers: { 'x-user': 'eve', 'x-forwarded-for': '203.0.113.9' } })).status).toBe(403);
    for (let i = 0; i < 5; i++) expect((await s.send('/healthz')).status).toBe(200);
    const bob = { headers: { 'x-user': 'bob' } };
    expect([await s.send('/', bob), await s.send('/', bob), await s.send('/', bob)].map((r) => r.status)).toEqual([200, 200, 429]); // 4 × 0.5
    await s.close();
  });
});

describe('internal-service bypass', () => {
  it('a valid signature passes unlimited; an expired, forged or replayed-elsewhere one does not', async () => {
    const secret = 's3cret';
    const s = await server({ limits: one, key: { header: 'x-user' }, bypass: { secret: ['old', secret], maxAgeMs: 5_000 } });
    const signed = (path: string, o: { now?: number; key?: string; method?: string } = {}) => ({
      headers: { 'x-user': 'svc', 'x-ratelimit-bypass': signBypass({ secret: o.key ?? secret, method: o.method ?? 'GET', path, now: o.now }) },
    });
    for (let i = 0; i < 3; i++) expect((await s.send('/jobs', signed('/jobs'))).status).toBe(200);
    expect((await s.send('/jobs', signed('/jobs', { now: Date.now() - 60_000 }))).status).toBe(200); // counted: first real use
    expect((await s.send('/jobs', signed('/jobs', { now: Date.now() - 60_000 }))).status).toBe(429); // expired
    expect((await s.send('/jobs', signed('/jobs', { key: 'guess' }))).status).toBe(429); // forged
    expect((await s.send('/jobs', signed('/other'))).status).toBe(429); // signed for another path
    expect((await s.send('/jobs', signed('/jobs', { method: 'POST' }))).status).toBe(429); // another method
    expect((await s.send('/jobs', { headers: { 'x-user': 'svc', 'x-ratelimit-bypass': 'internal' } })).status).toBe(429);
    expect(s.http.counters.bypassed).toBe(3);
    await s.close();
  });
});

describe('when Redis is down', () => {
  async function downServer(policy: 'fallback' | 'open' | 'closed', extra: Partial<HttpRateLimitOptions> = {}) {
    const dead = new Redis(await freePort(), { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    dead.on('error', () => {});
    const s = await server({ redis: dead, limits: { ...one, limit: 2 }, key: { header: 'x-user' }, limiter: { onRedisFailure: policy, timeoutMs: 50 }, ...extra });
    return { ...s, close: async () => (await s.close(), dead.disconnect()) };
  }
  const u = { headers: { 'x-user': 'u' } };

  it('fallback: the in-memory twin decides, with true headers', async () => {
    const s = await downServer('fallback');
    const [a, b, c] = [await s.send('/', u), await s.send('/', u), await s.send('/', u)];
    expect([a.status, b.status, c.status]).toEqual([200, 200, 429]);
    expect(parseRateLimit(a.headers.get('ratelimit'))).toMatchObject({ r: 1 });
    await s.close();
  });

  it('open: every request passes, and no rate headers promise anything', async () => {
    const s = await downServer('open');
    for (let i = 0; i < 3; i++) {
      const r = await s.send('/', u);
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit')).toBeNull();
    }
    await s.close();
  });

  it('closed: 503 with Retry-After by default, or 429 when configured', async () => {
    const s = await downServer('closed');
    const r = await s.send('/', u);
    expect(r.status).toBe(503);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    await s.close();
    const t = await downServer('closed', { unavailableStatus: 429 });
    expect((await t.send('/', u)).status).toBe(429);
    await t.close();
  });
});

describe('the operations endpoint', () => {
  it('health, a subject’s usage, reset, breaker reset and counters, behind the caller’s authorization', async () => {
    const http = new HttpRateLimiter({ redis, prefix: uniquePrefix('ops').slice(0, -1), limiter: UNHURRIED, key: { header: 'x-user' }, rules: [{ name: 'api', limits: { ...one, limit: 3 } }] });
    const limit = nodeRateLimit(http);
    const ops = opsMiddleware(http, { authorize: (req) => req.headers.get('authorization') === 'Bearer ops-token' });
    const s = await listen((req, res) => ops(req, res, () => limit(req, res, () => res.end('ok'))));
    const auth = { authorization: 'Bearer ops-token' };
    await fetch(s.url, { headers: { 'x-user': 'ann' } });
    expect((await fetch(`${s.url}/ratelimit/health`)).status).toBe(401);
    const health = await fetch(`${s.url}/ratelimit/health`, { headers: auth });
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, rules: { api: { redis: 'up', breaker: 'closed' } } });
    expect(await (await fetch(`${s.url}/ratelimit/subjects/ann`, { headers: auth })).json()).toMatchObject({ key: 'ann', rules: { api: { source: 'redis', limits: [{ name: 'once', remaining: 2, limit: 3 }] } } });
    expect((await fetch(`${s.url}/ratelimit/subjects/ann/reset`, { method: 'POST', headers: auth })).status).toBe(200);
    expect(await (await fetch(`${s.url}/ratelimit/subjects/ann`, { headers: auth })).json()).toMatchObject({ rules: { api: { limits: [{ remaining: 3 }] } } });
    http.limiter('api')!.breaker!.failure(new Error('x'));
    for (let i = 0; i < 5; i++) http.limiter('api')!.breaker!.failure(new Error('x'));
    expect(http.limiter('api')!.breaker!.state).toBe('open');
    expect((await fetch(`${s.url}/ratelimit/breakers/reset`, { method: 'POST', headers: auth })).status).toBe(200);
    expect(http.limiter('api')!.breaker!.state).toBe('closed');
    expect(await (await fetch(`${s.url}/ratelimit/counters`, { headers: auth })).json()).toMatchObject({ byRule: { api: { allowed: 1 } } });
    expect((await fetch(s.url, { headers: { 'x-user': 'bob' } })).status).toBe(200); // other paths go on to the limiter
    await s.close();
    await http.close();
  });

  it('health says 503 when Redis is not reachable', async () => {
    const own = await startLocalRedis();
    const client = new Redis(own.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    const http = new HttpRateLimiter({ redis: client, prefix: 'opsdown', limits: one, limiter: { timeoutMs: 50 } });
    await own.kill();
    const ops = opsMiddleware(http, { authorize: () => true });
    const s = await listen((req, res) => ops(req, res));
    const res = await fetch(`${s.url}/ratelimit/health`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ok: false, rules: { default: { redis: 'down' } } });
    await s.close();
    await http.close();
    client.disconnect();
  });
});
