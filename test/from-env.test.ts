import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fromEnv, InvalidArgumentError, type RateLimiter } from '../src/index.js';
import { NO_REDIS_WARNING } from '../src/client/from-env.js';
import { redisUrl, uniquePrefix } from './support/redis.js';

/** process warnings seen while a test runs (emitWarning delivers them on a later tick). */
let seen: Error[] = [];
const record = (w: Error) => seen.push(w);
beforeEach(() => {
  seen = [];
  process.on('warning', record);
});
afterEach(() => {
  process.off('warning', record);
});
const settle = () => new Promise((resolve) => setImmediate(resolve));
const noRedisWarnings = () => seen.filter((w) => (w as Error & { code?: string }).code === NO_REDIS_WARNING);

describe('fromEnv, as a new user meets it', () => {
  it('without REDIS_URL: one loud process warning on the first call of each limiter, with a code', async () => {
    const a = await fromEnv({ REDLIMIT_LIMIT: '5', REDLIMIT_PERIOD_MS: '60000' });
    await settle();
    expect(noRedisWarnings()).toEqual([]); // building it is not using it
    expect((await a.limit('x')).source).toBe('fallback');
    await a.peek('x');
    await a.limit('y');
    await settle();
    expect(noRedisWarnings()).toHaveLength(1);
    expect(noRedisWarnings()[0]!.message).toMatch(/no REDIS_URL.*each process enforces the whole limit/);
    // Another limiter is another warning; the first one stays quiet.
    const b = await fromEnv({ REDLIMIT_LIMIT: '5', REDLIMIT_PERIOD_MS: '60000' });
    await b.peek('x');
    await a.limit('z');
    await settle();
    expect(noRedisWarnings()).toHaveLength(2);
    // The decisions are still the twin's, exactly.
    expect((await b.limit('q', { cost: 5 })).remaining).toBe(0);
    expect((await b.limit('q')).allowed).toBe(false);
    await a.close();
    await b.close();
  });

  it('with REDIS_URL: no such warning', async () => {
    const rl = await fromEnv({ REDIS_URL: redisUrl(), REDLIMIT_LIMIT: '2', REDLIMIT_PERIOD_MS: '60000', REDLIMIT_PREFIX: uniquePrefix('envw').slice(0, -1) });
    expect((await rl.limit('x')).source).toBe('redis');
    await settle();
    expect(noRedisWarnings()).toEqual([]);
    await rl.close();
  });

  it('a limiter method called on the un-awaited promise says to await it', async () => {
    const pending = fromEnv({ REDLIMIT_LIMIT: '5', REDLIMIT_PERIOD_MS: '60000' });
    const misused = pending as unknown as RateLimiter;
    for (const call of [() => misused.limit('x'), () => misused.peek('x'), () => misused.reset('x'), () => misused.stats(), () => misused.close()]) {
      expect(call).toThrow(InvalidArgumentError);
      expect(call).toThrow(/fromEnv\(\) returns a Promise<RateLimiter>.*await fromEnv\(\)/);
    }
    const limiter = await pending; // still an ordinary promise of a working limiter
    expect((await limiter.limit('x')).allowed).toBe(true);
    await limiter.close();
  });
});
