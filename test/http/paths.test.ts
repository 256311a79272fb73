import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import Fastify, { type FastifyServerOptions } from 'fastify';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { expressRateLimit, fastifyRateLimit, fetchRateLimit, honoRateLimit, koaRateLimit, nodeRateLimit, type HttpRateLimitOptions } from '../../src/index.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';
import { listen, rawRequest } from './support.js';

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

/** Login: 1 per hour per user; everything else 100 per hour. */
const options = (): HttpRateLimitOptions => ({
  redis,
  prefix: uniquePrefix('paths').slice(0, -1),
  key: { header: 'x-user' },
  rules: [{ name: 'login', path: '/login', method: ['GET', 'POST'], limits: { name: 'login', algo: 'fixed_window', limit: 1, periodMs: 3_600_000 } }],
  limits: { name: 'other', algo: 'fixed_window', limit: 100, periodMs: 3_600_000 },
  limiter: UNHURRIED, // about HTTP, not deadlines: a starved Redis must not send a request to the fallback
});

type Started = { url: string; close(): Promise<void> };

async function started(server: Server): Promise<Started> {
  if (!server.listening) await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

async function fastifyApp(o: FastifyServerOptions): Promise<Started> {
  const app = Fastify(o);
  await app.register(fastifyRateLimit, options());
  app.get('/login', async () => 'login');
  app.post('/login', async () => 'login');
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url, close: () => app.close() };
}

function honoApp(strict: boolean): Promise<Started> {
  const app = new Hono({ strict });
  app.use('*', honoRateLimit(options()));
  app.get('/login', (c) => c.text('login'));
  return started(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
}

/** A hand-written router: WHATWG URL parsing, case folded, trailing slash ignored. */
const handRouted = (url: string) => new URL(url, 'http://x').pathname.toLowerCase().replace(/(.)\/$/, '$1') === '/login';

/** Each server routes every listed spelling to its /login handler (checked), and the login rule must catch each. */
const cases: Array<[string, () => Promise<Started>, string[]]> = [
  [
    'express (case-insensitive, non-strict by default)',
    async () => {
      const app = express();
      app.use(expressRateLimit(options()));
      app.get('/login', (_req, res) => void res.send('login'));
      return started(app.listen(0, '127.0.0.1'));
    },
    ['/LOGIN', '/login/', '/Login/', '/login#x', 'http://example.test/login', '/LOGIN?next=/'],
  ],
  [
    'express with case sensitive / strict routing, routes in an express.Router()',
    async () => {
      const app = express();
      app.set('case sensitive routing', true);
      app.set('strict routing', true);
      app.use(expressRateLimit(options()));
      const router = express.Router(); // its own defaults: case-insensitive, non-strict
      router.get('/login', (_req, res) => void res.send('login'));
      app.use(router);
      return started(app.listen(0, '127.0.0.1'));
    },
    ['/LOGIN', '/login/'],
  ],
  ['fastify (defaults)', () => fastifyApp({}), ['/l%6Fgin', '/%6C%6F%67%69%6E', '/login#x', 'http://example.test/login']],
  [
    'fastify with caseSensitive false, ignoreTrailingSlash, ignoreDuplicateSlashes, useSemicolonDelimiter',
    () => fastifyApp({ routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, useSemicolonDelimiter: true } } as FastifyServerOptions),
    ['/LOGIN', '/login/', '//login', '/login;jsessionid=1', '/L%6FGIN/'],
  ],
  ['hono (strict)', () => honoApp(true), ['/l%6Fgin', '/x/../login', '/%2e/login', 'http://example.test/login']],
  ['hono (strict: false)', () => honoApp(false), ['/login/', '/l%6Fgin/']],
  [
    'koa with a case-insensitive, non-strict router',
    async () => {
      const app = new Koa();
      app.use(koaRateLimit(options()));
      app.use((ctx) => {
        if (handRouted(ctx.url)) ctx.body = 'login';
      });
      return started(app.listen(0, '127.0.0.1'));
    },
    ['/LOGIN/', '/x/../login', '/Login?x=1'],
  ],
  [
    'node http routing with WHATWG URL',
    async () => {
      const limit = nodeRateLimit(options());
      return listen((req, res) => limit(req, res, () => (handRouted(req.url!) ? res.end('login') : ((res.statusCode = 404), res.end()))));
    },
    ['/x/../login', '/LOGIN', '/login/', '/login/.'],
  ],
  [
    'fetch handler routing with WHATWG URL',
    async () => {
      const handler = fetchRateLimit(options(), (req) => (handRouted(req.url) ? new Response('login') : new Response(null, { status: 404 })));
      return started(serve({ fetch: handler, port: 0, hostname: '127.0.0.1' }) as Server);
    },
    ['/x/../login', '/Login/'],
  ],
];

describe.each(cases)('%s', (_name, start, variants) => {
  let s: Started;
  beforeAll(async () => {
    s = await start();
  });
  afterAll(() => s.close());

  it.each(variants)('%s reaches /login and counts against the login rule', async (variant) => {
    const user = { 'x-user': `u-${variant}` };
    const first = await rawRequest(s.url, variant, { headers: user });
    expect([first.status, first.body.includes('login')]).toEqual([200, true]); // the framework routes it to /login
    expect((await rawRequest(s.url, '/login', { headers: user })).status).toBe(429); // and it was the login rule's one
  });

  it('HEAD runs the GET handler, so a GET rule counts it', async () => {
    const user = { 'x-user': 'head' };
    expect((await rawRequest(s.url, '/login', { method: 'HEAD', headers: user })).status).toBe(200);
    expect((await rawRequest(s.url, '/login', { headers: user })).status).toBe(429);
  });
});

describe('path rules', () => {
  it('a RegExp rule with the g flag matches every time (test() would be stateful)', async () => {
    const limit = nodeRateLimit({ ...options(), rules: [{ name: 'api', path: /^\/api\//g, limits: { name: 'api', algo: 'fixed_window', limit: 2, periodMs: 3_600_000 } }] });
    const s = await listen((req, res) => limit(req, res, () => res.end('ok')));
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await rawRequest(s.url, '/api/x', { headers: { 'x-user': 'g' } })).status);
    expect(statuses).toEqual([200, 200, 429]);
    await s.close();
  });

  it('a RegExp rule is tested against the decoded, normalised path too, case-insensitively where the router is', async () => {
    const limit = nodeRateLimit({ ...options(), rules: [{ name: 'api', path: /^\/api\/v1$/, limits: { name: 'api', algo: 'fixed_window', limit: 1, periodMs: 3_600_000 } }] });
    const s = await listen((req, res) => limit(req, res, () => res.end('ok')));
    for (const [i, v] of ['/API/v1/', '/api/v%31', '/x/../api/v1'].entries()) {
      const user = { 'x-user': `r${i}` };
      expect((await rawRequest(s.url, v, { headers: user })).status).toBe(200);
      expect((await rawRequest(s.url, '/api/v1', { headers: user })).status, v).toBe(429);
    }
    await s.close();
  });

  it('a percent-escape is decoded once, not twice', async () => {
    const limit = nodeRateLimit(options());
    const s = await listen((req, res) => limit(req, res, () => res.end('ok')));
    const user = { 'x-user': 'twice' };
    expect((await rawRequest(s.url, '/l%256Fgin', { headers: user })).status).toBe(200);
    expect((await rawRequest(s.url, '/login', { headers: user })).status).toBe(200); // /l%6Fgin is another path
    await s.close();
  });

  it('Koa: rules see the path as received, also after a mount rewrote it (as Express does with originalUrl)', async () => {
    const app = new Koa();
    app.use((ctx, next) => {
      ctx.path = ctx.path.replace(/^\/api/, '') || '/'; // what koa-mount does
      return next();
    });
    app.use(koaRateLimit({ ...options(), rules: [{ name: 'login', path: '/api/login', limits: { name: 'login', algo: 'fixed_window', limit: 1, periodMs: 3_600_000 } }] }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const s = await started(app.listen(0, '127.0.0.1'));
    const user = { 'x-user': 'mounted' };
    expect((await rawRequest(s.url, '/api/login', { headers: user })).status).toBe(200);
    expect((await rawRequest(s.url, '/api/login', { headers: user })).status).toBe(429);
    await s.close();
  });
});
