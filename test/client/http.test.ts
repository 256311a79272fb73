import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, httpRateLimit } from '../../src/index.js';
import { redisUrl, uniquePrefix } from '../support/redis.js';

let redis: Redis;
let server: Server;
let base: string;
beforeAll(async () => {
  redis = new Redis(redisUrl());
  const limiter = createRateLimiter({ redis, prefix: uniquePrefix('http').slice(0, -1), limits: { name: 'per_key', algo: 'fixed_window', limit: 2, periodMs: 3_600_000 } });
  const guard = httpRateLimit(limiter, { subject: (req) => String(req.headers['x-api-key'] ?? 'anonymous') });
  server = createServer((req, res) => guard(req, res, () => res.end('ok')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await redis.quit();
});

describe('http middleware', () => {
  it('passes admitted requests on with RateLimit headers and answers 429 + Retry-After when denied', async () => {
    const get = () => fetch(base, { headers: { 'x-api-key': 'k1' } });
    const first = await get();
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('ok');
    expect(first.headers.get('ratelimit-remaining')).toBe('1');
    await get();
    const third = await get();
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await third.json()).toMatchObject({ error: 'rate_limited', deniedBy: 'per_key' });
    expect((await fetch(base, { headers: { 'x-api-key': 'k2' } })).status).toBe(200);
  });
});
