import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { expressRateLimit, fastifyRateLimit, fetchRateLimit, honoRateLimit, koaRateLimit, nodeRateLimit, type HttpRateLimitOptions } from '../../src/index.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';
import { listen, parseRateLimit } from './support.js';

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

/** Two requests per hour per API key; a request without a key is refused with 401. */
const options = (): HttpRateLimitOptions => ({
  redis,
  prefix: uniquePrefix('fw').slice(0, -1),
  limits: { name: 'per_key', algo: 'fixed_window', limit: 2, periodMs: 3_600_000 },
  key: { header: 'x-api-key' },
  missingKeyStatus: 401,
  limiter: UNHURRIED, // about HTTP, not deadlines: a starved Redis must not send a request to the fallback
});

type Started = { url: string; close(): Promise<void> };

const frameworks: Record<string, () => Promise<Started>> = {
  'node http': async () => {
    const limit = nodeRateLimit(options());
    return listen((req, res) => limit(req, res, () => res.end('ok')));
  },
  express: async () => {
    const app = express();
    app.use(expressRateLimit(options()));
    app.get('/', (_req, res) => void res.send('ok'));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
  },
  fastify: async () => {
    const app = Fastify();
    await fastifyRateLimit(app, options());
    app.get('/', async () => 'ok');
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, close: () => app.close() };
  },
  hono: async () => {
    const app = new Hono();
    app.use('*', honoRateLimit(options()));
    app.get('/', (c) => c.text('ok'));
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((r) => server.once('listening', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
  },
  'fetch handler': async () => {
    const handler = fetchRateLimit(options(), () => new Response('ok'));
    const server = serve({ fetch: handler, port: 0, hostname: '127.0.0.1' });
    await new Promise((r) => server.once('listening', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
  },
  koa: async () => {
    const app = new Koa();
    app.use(koaRateLimit(options()));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
  },
};

describe.each(Object.keys(frameworks))('%s', (name) => {
  let s: Started;
  beforeAll(async () => {
    s = await frameworks[name]!();
  });
  afterAll(() => s.close());

  it('passes admitted requests on with IETF RateLimit headers, answers 429 problem+json when denied', async () => {
    const get = (key: string) => fetch(`${s.url}/`, { headers: { 'x-api-key': key } });
    const first = await get('k1');
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('ok');
    expect(first.headers.get('ratelimit-policy')).toBe('"per_key";q=2;w=3600');
    expect(parseRateLimit(first.headers.get('ratelimit'))).toMatchObject({ name: 'per_key', r: 1 });
    expect((await get('k1')).status).toBe(200);
    const denied = await get('k1');
    expect(denied.status).toBe(429);
    expect(denied.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const t = parseRateLimit(denied.headers.get('ratelimit'))!;
    expect(t).toMatchObject({ name: 'per_key', r: 0 });
    expect(Number(denied.headers.get('retry-after'))).toBeGreaterThanOrEqual(t.t);
    expect(t.t).toBeGreaterThan(0);
    expect(t.t).toBeLessThanOrEqual(3600);
    expect(await denied.json()).toMatchObject({ status: 429, title: 'Too Many Requests', limit: 'per_key' });
    expect((await get('k2')).status).toBe(200);
  });

  it('a request without a key is refused with the configured status, never a 500', async () => {
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ status: 401 });
  });
});

describe('a response already sent before the decision arrives', () => {
  it('is left alone: no error, no crash, the early answer stands', async () => {
    const rejections: unknown[] = [];
    const onRejection = (e: unknown) => rejections.push(e);
    process.on('unhandledRejection', onRejection);
    const app = express();
    app.use((req, res, next) => {
      if (req.path === '/early') res.end('early'); // e.g. a timeout handler or a cache
      next();
    });
    app.use(expressRateLimit({ ...options(), limits: { name: 'l', algo: 'gcra', limit: 1, periodMs: 60_000 } }));
    app.get('/early', () => {});
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/early`;
    for (let i = 0; i < 3; i++) expect(await (await fetch(url, { headers: { 'x-api-key': 'e' } })).text()).toBe('early');
    await new Promise((r) => setTimeout(r, 50));
    process.off('unhandledRejection', onRejection);
    expect(rejections).toEqual([]);
    await new Promise((r) => server.close(() => r(undefined)));
  });
});
