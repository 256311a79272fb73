import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, httpHeaders, httpRateLimit } from '../../src/index.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';
import { listen } from './support.js';

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

describe('the 0.1 middleware (httpRateLimit), kept working', () => {
  it('draft-6 headers, the 0.1 JSON 429, object subjects, 400 without a subject, nothing written to a finished response', async () => {
    const limiter = createRateLimiter({
      redis,
      prefix: uniquePrefix('compat').slice(0, -1),
      limits: [
        { name: 'user', algo: 'fixed_window', limit: 2, periodMs: 3_600_000 },
        { name: 'org', algo: 'fixed_window', limit: 3, periodMs: 3_600_000, scope: 'org' },
      ],
      ...UNHURRIED,
    });
    const guard = httpRateLimit(limiter, {
      subject: (req) => {
        const key = req.headers['x-api-key'];
        return typeof key === 'string' ? { id: key, hashTag: 'acme', scopes: { org: 'acme' } } : undefined;
      },
    });
    const rejections: unknown[] = [];
    const onRejection = (e: unknown) => rejections.push(e);
    process.on('unhandledRejection', onRejection);
    const s = await listen((req, res) => {
      if (req.url === '/early') res.end('early');
      guard(req, res, () => res.end('ok'));
    });
    const get = (key?: string, path = '/') => fetch(`${s.url}${path}`, { headers: key ? { 'x-api-key': key } : {} });
    const a = await get('k1');
    expect([a.status, a.headers.get('ratelimit-limit'), a.headers.get('ratelimit-remaining')]).toEqual([200, '2', '1']);
    await get('k1');
    const denied = await get('k1');
    expect(denied.status).toBe(429);
    expect(await denied.json()).toMatchObject({ error: 'rate_limited', deniedBy: 'user' });
    expect((await get('k2')).status).toBe(200);
    expect((await get('k3')).status).toBe(429); // the org's 3 are spent
    const missing = await get();
    expect(missing.status).toBe(400);
    expect(await (await get('k4', '/early')).text()).toBe('early');
    await new Promise((r) => setTimeout(r, 50));
    process.off('unhandledRejection', onRejection);
    expect(rejections).toEqual([]);
    await s.close();
    await limiter.close();
  });

  it('httpHeaders never reports a Reset beyond the Retry-After of a denial', () => {
    const h = httpHeaders({ allowed: false, limitName: 'm', remaining: 0, limit: 10, resetAfterMs: 60_000, retryAfterMs: 4_200, deniedBy: 'm', source: 'deny-cache', limits: [] });
    expect(h).toEqual({ status: 429, headers: { 'RateLimit-Limit': '10', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '5', 'Retry-After': '5' } });
  });
});
