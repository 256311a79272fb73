import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * Many connections hammering one key: on the server clock, with limits that cannot refill during
 * the test, exactly `limit` units are admitted, never more, for every algorithm.
 */
let connections: Redis[];
let prefix: string;
beforeAll(() => {
  connections = Array.from({ length: 8 }, () => ioredis());
  prefix = uniquePrefix('hammer');
});
afterAll(() => Promise.all(connections.map((c) => c.quit())));

const LIMIT = 37;
const CALLERS = 300;
const HOUR = 3_600_000;
const YEAR = 31_622_400_000;
/** Puts the start of the current fixed window a day ago, so it cannot roll over mid-test. */
const WINDOW_OFFSET = (Date.now() - 86_400_000) % YEAR;

const cases: [string, (c: Redis, key: string) => Promise<boolean>][] = [
  ['gcra', async (c, key) => (await b.gcra(c, { key, limit: 1, periodMs: HOUR, burst: LIMIT })).allowed],
  ['token_bucket', async (c, key) => (await b.tokenBucket(c, { key, limit: 1, periodMs: HOUR, burst: LIMIT })).allowed],
  ['gcra_reserve', async (c, key) => (await b.gcraReserve(c, { key, limit: 1, periodMs: HOUR, burst: LIMIT, maxWaitMs: 0 })).allowed],
  ['fixed_window', async (c, key) => (await b.fixedWindow(c, { key, limit: LIMIT, periodMs: YEAR, offsetMs: WINDOW_OFFSET })).allowed],
  ['sliding_window', async (c, key) => (await b.slidingWindow(c, { key, limit: LIMIT, periodMs: 31_000_000_000 })).allowed],
  ['sliding_log', async (c, key) => (await b.slidingLog(c, { key, limit: LIMIT, periodMs: HOUR })).allowed],
  ['quota', async (c, key) => (await b.quota(c, { key, limit: LIMIT, unit: 'month' })).allowed],
  ['concurrency', async (c, key) => (await b.concurrencyAcquire(c, { key, limit: LIMIT, periodMs: HOUR, leaseId: `${Math.random()}` })).allowed],
  [
    'multi',
    async (c, key) =>
      (
        await b.multi(c, {
          limits: [
            { key: `${key}{m}:a`, algo: 'gcra', limit: 1, periodMs: HOUR, burst: LIMIT },
            { key: `${key}{m}:b`, algo: 'sliding_log', limit: LIMIT + 5, periodMs: HOUR },
          ],
        })
      ).allowed,
  ],
];

describe.each(cases)('%s', (name, call) => {
  it(`${CALLERS} callers over 8 connections admit exactly ${LIMIT}`, async () => {
    const key = `${prefix}${name}`;
    const results = await Promise.all(Array.from({ length: CALLERS }, (_, i) => call(connections[i % connections.length]!, key)));
    expect(results.filter(Boolean).length).toBe(LIMIT);
  });
});
