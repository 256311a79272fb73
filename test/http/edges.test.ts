import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { Redis } from 'ioredis';
import {
  HttpRateLimiter,
  InvalidConfigError,
  fastifyRateLimit,
  honoRateLimit,
  nodeRateLimit,
  opsHandler,
  opsMiddleware,
  type HttpRateLimitOptions,
} from '../../src/index.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';
import { listen, parseRateLimit, rawRequest } from './support.js';

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

const one = { name: 'once', algo: 'fixed_window' as const, limit: 1, periodMs: 3_600_000 };
// About HTTP, not deadlines: a starved Redis must not send a request to the fallback.
const base = (o: Partial<HttpRateLimitOptions> = {}): HttpRateLimitOptions => ({ redis, prefix: uniquePrefix('edges').slice(0, -1), limits: one, limiter: UNHURRIED, ...o });

async function nodeServer(o: Partial<HttpRateLimitOptions>, host = '127.0.0.1') {
  const http = new HttpRateLimiter(base(o));
  const limit = nodeRateLimit(http);
  const server: Server = createServer((req, res) => limit(req, res, () => res.end('ok')));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const url = host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
  return { url, http, close: async () => (await new Promise((r) => server.close(r)), await http.close()) };
}

describe('allow and deny lists are checked against the client address, IPv6 included', () => {
  it('through a trusted X-Forwarded-For: IPv6 addresses and CIDRs of both families, IPv4-mapped entries', async () => {
    const s = await nodeServer({
      trustProxy: ['127.0.0.1'],
      denyList: ['2001:db8:1:1200::5', '2001:db8:dead::/48', '::ffff:198.51.100.7', '192.0.2.0/24'],
      allowList: ['2001:db8:2::1', '2001:db8:3::/64'],
    });
    const from = (xff: string) => rawRequest(s.url, '/', { headers: { 'x-forwarded-for': xff } });
    expect((await from('2001:db8:1:1200::5')).status).toBe(403);
    expect((await from('2001:db8:dead:beef::1')).status).toBe(403);
    expect((await from('198.51.100.7')).status).toBe(403);
    expect((await from('192.0.2.44')).status).toBe(403);
    expect((await from('2001:db8:1:1200::6')).status).toBe(200); // same /56 key, not the denied address
    for (let i = 0; i < 3; i++) expect((await from('2001:db8:2::1')).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await from('2001:db8:3::42')).status).toBe(200);
    expect((await from('2001:db8:2::2')).status).toBe(200);
    expect((await from('2001:db8:2::3')).status).toBe(429); // same /56 as ::2, not allowed
    await s.close();
  });

  it('on a real IPv6 socket (::1)', async (ctx) => {
    const probe = createServer();
    const hasIPv6 = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen(0, '::1', () => probe.close(() => resolve(true)));
    });
    if (!hasIPv6) ctx.skip();
    const denied = await nodeServer({ denyList: ['::1'] }, '::1');
    expect((await fetch(`${denied.url}/`)).status).toBe(403);
    await denied.close();
    const allowed = await nodeServer({ allowList: ['::1/128'] }, '::1');
    for (let i = 0; i < 3; i++) expect((await fetch(`${allowed.url}/`)).status).toBe(200);
    await allowed.close();
  });

  it('a proxy writing ports or `unknown` in X-Forwarded-For does not shift the chain onto what the client wrote', async () => {
    const s = await nodeServer({ trustProxy: 1, denyList: ['203.0.113.5', '2001:db8::7'] });
    const from = (xff: string) => rawRequest(s.url, '/', { headers: { 'x-forwarded-for': xff } });
    expect((await from('6.6.6.6, 203.0.113.5:4711')).status).toBe(403);
    expect((await from('6.6.6.6, [2001:db8::7]:443')).status).toBe(403);
    expect((await from('203.0.113.5, unknown')).status).toBe(200); // the proxy did not know: the socket peer is the client
    expect((await from('203.0.113.5, unknown')).status).toBe(429);
    await s.close();
  });
});

describe('header styles', () => {
  it('a list writes each style’s own headers; two styles writing one header are refused', async () => {
    expect(() => new HttpRateLimiter(base({ headers: ['ietf', 'draft-6'] }))).toThrow(/ietf and draft-6 both write RateLimit-Policy/);
    expect(() => new HttpRateLimiter(base({ headers: ['draft-6', 'ietf'] }))).toThrow(InvalidConfigError);
    expect(() => new HttpRateLimiter(base({ headers: 'IETF' as never }))).toThrow(/did you mean ietf/);
    expect(() => new HttpRateLimiter(base({ headers: ['ietf', 'none'] }))).toThrow(InvalidConfigError);
    expect(() => new HttpRateLimiter(base({ headers: ['legacy', 'legacy'] }))).toThrow(InvalidConfigError);
    const s = await nodeServer({ limits: { name: 'm', algo: 'gcra', limit: 5, periodMs: 60_000 }, headers: ['ietf', 'legacy'] });
    const r = await rawRequest(s.url, '/');
    expect(r.headers['ratelimit-policy']).toBe('"m";q=5;w=60');
    expect(parseRateLimit(r.headers['ratelimit']!)).toMatchObject({ name: 'm', r: 4 });
    expect([r.headers['x-ratelimit-limit'], r.headers['x-ratelimit-remaining']]).toEqual(['5', '4']);
    await s.close();
    const d = await nodeServer({ limits: { name: 'm', algo: 'gcra', limit: 5, periodMs: 60_000 }, headers: ['draft-6', 'legacy'] });
    const h = (await rawRequest(d.url, '/')).headers;
    expect([h['ratelimit-policy'], h['ratelimit-limit'], h['x-ratelimit-limit'], h['ratelimit']]).toEqual(['5;w=60', '5', '5', undefined]);
    await d.close();
  });
});

describe('Hono', () => {
  it('an admitted request keeps its rate-limit headers when the handler returns its own Response (also an immutable one)', async () => {
    const app = new Hono();
    app.use('*', honoRateLimit(base({ limits: { name: 'm', algo: 'gcra', limit: 5, periodMs: 60_000 } })));
    app.get('/own', () => new Response('own', { headers: { 'x-own': '1' } }));
    app.get('/text', (c) => c.text('text'));
    app.get('/frozen', async () => {
      const res = await fetch(`${url}/text`); // a fetched Response: its headers are immutable
      return res;
    });
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
    await new Promise((r) => server.once('listening', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const path of ['/own', '/text', '/frozen']) {
      const res = await fetch(`${url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('ratelimit-policy'), path).toBe('"m";q=5;w=60');
      expect(parseRateLimit(res.headers.get('ratelimit')), path).not.toBeNull();
    }
    expect((await fetch(`${url}/own`)).headers.get('x-own')).toBe('1');
    await new Promise((r) => server.close(r));
  });
});

describe('Fastify', () => {
  it('app.register(fastifyRateLimit, options) at the root limits the app’s routes', async () => {
    const app = Fastify();
    await app.register(fastifyRateLimit, base({ key: { header: 'x-user' } }));
    app.get('/a', async () => 'a');
    app.register(async (child) => {
      child.get('/child', async () => 'child');
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const get = (p: string, user: string) => fetch(`${url}${p}`, { headers: { 'x-user': user } });
    expect((await get('/a', 'x')).status).toBe(200);
    expect((await get('/a', 'x')).status).toBe(429);
    expect((await get('/child', 'y')).status).toBe(200);
    expect((await get('/child', 'y')).status).toBe(429);
    await app.close();
  });

  it('registered with a core instance, and inside a plugin it limits only that plugin’s routes', async () => {
    const http = new HttpRateLimiter(base({ key: { header: 'x-user' } }));
    const app = Fastify();
    app.register(async (scoped) => {
      await scoped.register(fastifyRateLimit, http);
      scoped.get('/limited', async () => 'limited');
    });
    app.get('/free', async () => 'free');
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const get = (p: string) => fetch(`${url}${p}`, { headers: { 'x-user': 'z' } });
    expect([(await get('/limited')).status, (await get('/limited')).status]).toEqual([200, 429]);
    expect([(await get('/free')).status, (await get('/free')).status]).toEqual([200, 200]);
    await app.close();
    await http.close();
  });
});

describe('the operations endpoint', () => {
  async function withOps() {
    const http = new HttpRateLimiter(base({ key: { header: 'x-user' }, limits: { ...one, limit: 100 } }));
    const ops = opsMiddleware(http, { authorize: () => true });
    const limit = nodeRateLimit(http);
    const s = await listen((req, res) =>
      ops(req, res, () =>
        limit(req, res, async () => {
          let body = '';
          for await (const c of req) body += String(c);
          res.end(`got:${body}`);
        }),
      ),
    );
    return { s, http, close: async () => (await s.close(), await http.close()) };
  }

  it('leaves requests for other paths alone: the application reads their bodies', async () => {
    const o = await withOps();
    const res = await fetch(`${o.s.url}/items`, { method: 'POST', headers: { 'x-user': 'a', 'content-type': 'application/json' }, body: '{"n":1}' });
    expect(await res.text()).toBe('got:{"n":1}');
    const raw = await rawRequest(o.s.url, '/items', { method: 'POST', headers: { 'x-user': 'a' }, body: 'raw body', host: '[bad host' });
    expect([raw.status, raw.body.includes('got:raw body')]).toEqual([200, true]);
    await o.close();
  });

  it('answers 4xx, never 500, for a malformed subject, Host or method', async () => {
    const o = await withOps();
    for (const subject of ['%E0%A4%A', '%ZZ', '%7Ba%7D', 'a{b}', 'x'.repeat(600), '%F0%9F']) {
      const get = await rawRequest(o.s.url, `/ratelimit/subjects/${subject}`);
      expect(get.status, subject).toBe(400);
      const post = await rawRequest(o.s.url, `/ratelimit/subjects/${subject}/reset`, { method: 'POST', body: '' });
      expect(post.status, subject).toBe(400);
    }
    expect((await rawRequest(o.s.url, '/ratelimit/health', { host: '[bad host' })).status).toBe(200);
    expect((await rawRequest(o.s.url, '/ratelimit/health', { host: 'a b:c' })).status).toBe(200);
    expect((await rawRequest(o.s.url, '/ratelimit/counters', { method: 'DELETE' })).status).toBe(405);
    expect((await rawRequest(o.s.url, '/ratelimit/subjects/ann%2Fbob')).status).toBe(200);
    await o.close();
  });

  it('refuses unknown options', () => {
    const http = new HttpRateLimiter(base());
    expect(() => opsHandler(http, { authorize: () => true, basepath: '/ops' } as never)).toThrow(/did you mean basePath/);
    expect(() => opsHandler(http, {} as never)).toThrow(/authorize/);
  });
});

describe('configuration is validated', () => {
  it('a misspelt rule key is refused with the name meant', () => {
    expect(() => new HttpRateLimiter(base({ rules: [{ name: 'login', pth: '/login', limits: one } as never] }))).toThrow(/rules\[0\] \(login\): unknown option "pth" \(did you mean path\?\)/);
    expect(() => new HttpRateLimiter(base({ rules: [{ path: '/login', methods: 'POST', limits: one } as never] }))).toThrow(/did you mean method\?/);
    expect(() => new HttpRateLimiter(base({ rules: [{ path: '/login', Limits: one } as never] }))).toThrow(InvalidConfigError);
  });

  it('rule values that could never match are refused', () => {
    expect(() => new HttpRateLimiter(base({ rules: [{ path: 'login', limits: one }] }))).toThrow(/start.* with \//);
    expect(() => new HttpRateLimiter(base({ rules: [{ path: '/api/*', limits: one }] }))).toThrow(/RegExp/);
    expect(() => new HttpRateLimiter(base({ rules: [{ path: '/users/:id', limits: one }] }))).toThrow(/RegExp/);
    expect(() => new HttpRateLimiter(base({ rules: [{ path: '/x', method: 'GET /x', limits: one }] }))).toThrow(/method/);
    expect(() => new HttpRateLimiter(base({ rules: [{ path: '/x', method: [], limits: one }] }))).toThrow(/method/);
  });

  it('the other options are checked too', () => {
    expect(() => new HttpRateLimiter(base({ denylist: ['1.2.3.4'] } as never))).toThrow(/did you mean denyList\?/);
    expect(() => new HttpRateLimiter(base({ trustproxy: true } as never))).toThrow(/did you mean trustProxy\?/);
    expect(() => new HttpRateLimiter(base({ key: { headr: 'x' } } as never))).toThrow(/did you mean header\?/);
    expect(() => new HttpRateLimiter(base({ bypass: { secret: 's', maxAge: 5 } } as never))).toThrow(/did you mean maxAgeMs\?/);
    expect(() => new HttpRateLimiter(base({ ipv6Subnet: 200 }))).toThrow(/ipv6Subnet/);
    expect(() => new HttpRateLimiter(base({ missingKeyStatus: 403 as never }))).toThrow(/missingKeyStatus/);
    expect(() => new HttpRateLimiter(base({ onMissingKey: 'allow' as never }))).toThrow(/onMissingKey/);
    expect(() => new HttpRateLimiter(base({ denyList: ['fe80::1/200'] }))).toThrow(/prefix/);
  });
});
