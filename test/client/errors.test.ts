import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { CircuitBreaker, createRateLimiter, InvalidArgumentError, ScriptError, StateKeyError, type Decision } from '../../src/index.js';
import { autoFunctions } from '../../src/runtime/functions.js';
import { classify, isCallerError } from '../../src/client/failure.js';
import { errorReason } from '../../src/client/metrics.js';
import { RedisPath } from '../../src/client/redis-path.js';
import { TimeoutError } from '../../src/client/redis-call.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * Errors are codes, and a caller's error is the caller's: a key of another type or foreign state
 * fails only the decision it belongs to (the others in its batch are decided by Redis), and a
 * stream of refused arguments neither opens the breaker nor reaches the fallback.
 */
let redis: Redis;
let prefix: string;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('errors').slice(0, -1);
});
afterAll(() => redis.quit());

const settled = (ps: Promise<Decision>[]) => Promise.allSettled(ps);

describe('one key of another type or foreign state', () => {
  it('fails only its own decision in a coalesced batch; the others are decided by Redis and the breaker hears one success', async () => {
    const p = `${prefix}1`;
    for (const onRedisFailure of ['fallback', 'closed'] as const) {
      const rl = createRateLimiter({ redis, prefix: `${p}${onRedisFailure}`, limits: { name: 'r', algo: 'gcra', limit: 5, periodMs: 60_000 }, onRedisFailure, breaker: new CircuitBreaker({ consecutiveFailures: 1 }) });
      await rl.ready();
      await redis.rpush(`${p}${onRedisFailure}:{list}:r`, 'not a limiter'); // another Redis type
      await redis.set(`${p}${onRedisFailure}:{text}:r`, 'not-gcra-state'); // a string that is not gcra state
      for (let turn = 1; turn <= 3; turn++) {
        const before = rl.stats().breaker!.totalSuccesses;
        const [a, list, c, text] = await settled([rl.limit('a'), rl.limit('list'), rl.limit('c'), rl.limit('text')]);
        expect(a).toMatchObject({ status: 'fulfilled', value: { allowed: true, source: 'redis', remaining: 5 - turn } });
        expect(c).toMatchObject({ status: 'fulfilled', value: { allowed: true, source: 'redis', remaining: 5 - turn } });
        expect(list!.status).toBe('rejected');
        const wrongType = (list as PromiseRejectedResult).reason as StateKeyError;
        expect(wrongType).toBeInstanceOf(StateKeyError);
        expect(wrongType).toMatchObject({ code: 'ERR_WRONG_STATE', redisCode: 'WRONGTYPE', key: `${p}${onRedisFailure}:{list}:r` });
        const wrongState = (text as PromiseRejectedResult).reason as StateKeyError;
        expect(wrongState).toMatchObject({ code: 'ERR_WRONG_STATE', redisCode: 'WRONGSTATE', key: `${p}${onRedisFailure}:{text}:r` });
        const stats = rl.stats().breaker!;
        expect(stats).toMatchObject({ state: 'closed', totalFailures: 0 });
        expect(stats.totalSuccesses - before).toBe(1); // one batch call, one success
      }
      expect(await redis.lrange(`${p}${onRedisFailure}:{list}:r`, 0, -1)).toEqual(['not a limiter']);
      expect(await redis.get(`${p}${onRedisFailure}:{text}:r`)).toBe('not-gcra-state');
      expect(rl.stats().fallbackKeys).toBe(0);
      await rl.close();
    }
  });

  it('fails only its own multi-limit decision (multi_batch, with blocks), writing nothing of it', async () => {
    const p = `${prefix}2`;
    const rl = createRateLimiter({
      redis,
      prefix: p,
      limits: [
        { name: 'rpm', algo: 'gcra', limit: 5, periodMs: 60_000 },
        { name: 'day', algo: 'quota', limit: 100, unit: 'day' },
      ],
      blocks: true,
      breaker: new CircuitBreaker({ consecutiveFailures: 1 }),
    });
    await rl.ready();
    await redis.hset(`${p}:{bad}:day`, 'not', 'a quota');
    const before = rl.stats().breaker!.totalSuccesses;
    const [a, bad, c] = await settled([rl.limit('a'), rl.limit('bad'), rl.limit('c')]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { allowed: true, source: 'redis' } });
    expect(c).toMatchObject({ status: 'fulfilled', value: { allowed: true, source: 'redis' } });
    expect((bad as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_WRONG_STATE', redisCode: 'WRONGTYPE', key: `${p}:{bad}:day` });
    expect(await redis.exists(`${p}:{bad}:rpm`)).toBe(0); // its gcra limit admitted, but nothing of a failed decision lands
    expect(rl.stats().breaker!).toMatchObject({ state: 'closed', totalFailures: 0 });
    expect(rl.stats().breaker!.totalSuccesses - before).toBe(1);
    // Alone (the limiter's own multi script), the same key fails the same way.
    await expect(rl.limit('bad')).rejects.toBeInstanceOf(StateKeyError);
    expect(rl.stats().breaker!).toMatchObject({ state: 'closed', totalFailures: 0 });
    await rl.close();
  });
});

describe('a stream of caller errors', () => {
  let own: LocalRedis;
  beforeAll(async () => {
    own = await startLocalRedis();
  });
  afterAll(() => own?.stop());

  it('refused by the script (BADARG) reaches the caller typed, never the breaker or the fallback', async () => {
    // A server whose redlimit library refuses every decision: what a script refusing what the
    // TypeScript accepted looks like (a release skew between services, say).
    const client = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
    await new Promise((r) => client.once('ready', r));
    await client.function('FLUSH');
    const refuse = (name: string) => `redis.register_function('${name}', function() return redis.error_reply('BADARG redlimit ${name}: refused by this release') end)`;
    const library = [
      '#!lua name=redlimit',
      `redis.register_function{ function_name = 'redlimit_library', flags = { 'no-writes' }, callback = function() return '${b.functionsLibraryHash}' end }`,
      refuse(`redlimit_gcra_v${b.gcraScript.version}`),
      refuse(`redlimit_batch_v${b.batchScript.version}`),
    ].join('\n');
    await client.function('LOAD', library);
    const rl = createRateLimiter({ redis: client, prefix: 'stream', limits: { name: 'r', algo: 'gcra', limit: 5, periodMs: 60_000 }, breaker: new CircuitBreaker({ consecutiveFailures: 1 }) });
    await rl.ready();
    expect(await autoFunctions(client)).toBe('fcall');
    for (let i = 0; i < 20; i++) {
      const err = await rl.limit(`s${i}`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError); // alone: the gcra function
      expect(((err as InvalidArgumentError).cause as ScriptError).redisCode).toBe('BADARG');
      const burst = await settled([rl.limit('x'), rl.limit('y'), rl.limit('z')]); // coalesced: the batch function
      for (const r of burst) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(InvalidArgumentError);
    }
    expect(rl.stats().breaker!).toMatchObject({ state: 'closed', totalFailures: 0, opens: 0 });
    expect(rl.stats().fallbackKeys).toBe(0);
    // The library gone, scripts take over: decided by Redis, the breaker still closed.
    await client.function('FLUSH');
    expect(await rl.limit('after')).toMatchObject({ allowed: true, source: 'redis' });
    expect(rl.stats().breaker!).toMatchObject({ state: 'closed', totalFailures: 0 });
    await rl.close();
    client.disconnect();
  });

  it('on the Redis path itself: typed, and counted neither way', async () => {
    const breaker = new CircuitBreaker({ consecutiveFailures: 1 });
    const path = new RedisPath(redis, breaker, 5_000, () => {}, undefined);
    for (let i = 0; i < 10; i++) {
      const err = await path.run(b.gcraScript, [`${prefix}3:k`], ['0', '1000']).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).detail).toMatch(/^limit \(ARGV\[1\]\) must be between 1 and/);
    }
    await redis.sadd(`${prefix}3:set`, 'x');
    const wrong = await path.run(b.gcraScript, [`${prefix}3:set`], ['5', '1000']).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'ERR_WRONG_STATE', redisCode: 'WRONGTYPE', key: `${prefix}3:set` });
    expect(breaker.stats()).toMatchObject({ state: 'closed', totalFailures: 0, totalSuccesses: 0 });
    path.close();
  });
});

describe('the classifier', () => {
  const reply = (message: string) => new ScriptError('gcra', message);
  it('sorts errors by class and code, never by their words', () => {
    expect(classify(new InvalidArgumentError('gcra', 'limit', 'bad'))).toBe('caller');
    expect(classify(new StateKeyError('gcra', 'WRONGSTATE', 'k'))).toBe('caller');
    for (const code of ['BADARG', 'WRONGSTATE', 'WRONGTYPE']) expect(classify(reply(`${code} whatever it says`))).toBe('caller');
    for (const code of ['TRYAGAIN', 'MOVED', 'ASK']) expect(classify(reply(`${code} 3999 127.0.0.1:7001`))).toBe('moving');
    for (const code of ['LOADING', 'BUSY', 'OOM', 'NOSCRIPT', 'READONLY', 'ERR', 'MASTERDOWN']) expect(classify(reply(`${code} does not hold WRONGTYPE BADARG`))).toBe('redis');
    expect(classify(new TimeoutError(100))).toBe('redis');
    expect(classify(new Error('Connection is closed.'))).toBe('redis');
    expect(isCallerError(reply('BADARG redlimit gcra: cost must be ...'))).toBe(true);
    expect(isCallerError(reply('ERR BADARG in the words only'))).toBe(false);
  });

  it('labels metrics by code', () => {
    expect(errorReason(reply('OOM command not allowed'))).toBe('oom');
    expect(errorReason(reply('WRONGSTATE redlimit gcra: key k does not hold gcra state'))).toBe('wrongstate');
    expect(errorReason(reply('SOMETHINGNEW happened'))).toBe('other');
    expect(errorReason(new TimeoutError(5))).toBe('timeout');
    expect(errorReason(new Error('Connection is closed.'))).toBe('connection');
    expect(errorReason(new TypeError('a bug'))).toBe('other');
  });
});
