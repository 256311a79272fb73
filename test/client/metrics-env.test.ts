import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import * as prom from 'prom-client';
import { createRateLimiter, fromEnv, InvalidConfigError } from '../../src/index.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { freePort } from '../../devtools/local-redis.js';
import { redisUrl, UNHURRIED, uniquePrefix } from '../support/redis.js';

let redis: Redis;
beforeAll(async () => {
  redis = new Redis(redisUrl());
  await redis.ping(); // connected: a limiter sends nothing to a client that is not ready
});
afterAll(() => redis.quit());

describe('prometheus adapter', () => {
  it('counts decisions by outcome and source, times them, and exports breaker state and errors', async () => {
    const registry = new prom.Registry();
    const metrics = prometheusMetrics(prom, { registry });
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('prom').slice(0, -1), name: 'api', limits: { name: 'r', algo: 'gcra', limit: 2, periodMs: 60_000 }, metrics, ...UNHURRIED });
    for (let i = 0; i < 4; i++) await rl.limit('u');
    const dead = new Redis({ port: await freePort(), enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    dead.on('error', () => {});
    const down = createRateLimiter({ redis: dead, name: 'down', limits: { name: 'r', algo: 'gcra', limit: 2, periodMs: 60_000 }, metrics, timeoutMs: 30, breaker: { consecutiveFailures: 1 } });
    await down.limit('u');
    const text = await registry.metrics();
    expect(text).toContain('redlimit_decisions_total{limiter="api",outcome="allowed",source="redis"} 2');
    expect(text).toContain('redlimit_decisions_total{limiter="api",outcome="denied",source="redis"} 1');
    expect(text).toContain('redlimit_decisions_total{limiter="api",outcome="denied",source="deny-cache"} 1');
    expect(text).toMatch(/redlimit_decision_duration_seconds_count\{limiter="api",source="redis"\} 3/);
    expect(text).toContain('redlimit_fallback_decisions_total{limiter="down"} 1');
    expect(text).toMatch(/redlimit_redis_errors_total\{limiter="down",reason="connection"\} 1/);
    expect(text).toContain('redlimit_breaker_state{limiter="down"} 2');
    await rl.close();
    await down.close();
    dead.disconnect();
  });
});

describe('fromEnv', () => {
  it('builds a limiter from REDIS_URL and REDLIMIT_* and closes its own connection', async () => {
    const rl = await fromEnv({ REDIS_URL: redisUrl(), REDLIMIT_LIMIT: '2', REDLIMIT_PERIOD_MS: '60000', REDLIMIT_PREFIX: uniquePrefix('env').slice(0, -1), REDLIMIT_TIMEOUT_MS: String(UNHURRIED.timeoutMs) });
    await rl.ready();
    expect((await rl.limit('x')).source).toBe('redis');
    expect((await rl.limit('x')).remaining).toBe(0);
    expect((await rl.limit('x')).allowed).toBe(false);
    expect(rl.stats().warnings).toEqual([]); // it made its client with offline queue and auto-resend off
    await rl.close();
  });

  it('says which variable is wrong', async () => {
    await expect(fromEnv({ REDLIMIT_PERIOD_MS: '1000' })).rejects.toThrow(InvalidConfigError);
    await expect(fromEnv({ REDLIMIT_LIMIT: 'ten', REDLIMIT_PERIOD_MS: '1000' })).rejects.toThrow(/REDLIMIT_LIMIT must be a whole number/);
    const local = await fromEnv({ REDLIMIT_LIMIT: '1', REDLIMIT_PERIOD_MS: '1000' });
    expect((await local.limit('x')).source).toBe('fallback'); // no REDIS_URL: the twin decides
    await local.close();
  });
});
