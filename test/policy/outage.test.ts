import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { algoNames } from '../../generated/index.js';
import { createPolicyLimiter, PolicyStore } from '../../src/policy/index.js';
import { startLocalRedis } from '../../devtools/local-redis.js';
import { repoRoot } from '../support/temp-scripts.js';

const DAY = 86_400_000;

describe('policies during a Redis outage', () => {
  it('the last known policies stay: the fallback decides with them', async () => {
    const own = await startLocalRedis();
    const redis = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    redis.on('error', () => {});
    await new Promise((r) => redis.once('ready', r));
    const limiter = createPolicyLimiter({ redis, prefix: 'out', chain: () => ['default', 'plan:pro'], timeoutMs: 200 });
    await limiter.policies.set('default', { limits: [{ name: 'rpm', algo: 'fixed_window', limit: 100, periodMs: DAY }] }, { author: 't' });
    await limiter.policies.set('plan:pro', { limits: [{ name: 'rpm', algo: 'fixed_window', limit: 3, periodMs: DAY }] }, { author: 't' });
    expect(await limiter.limit('u')).toMatchObject({ allowed: true, source: 'redis', limit: 3 });
    await own.stop();
    const during = [];
    for (let i = 0; i < 5; i++) during.push(await limiter.limit('u'));
    expect(during.every((d) => d.source === 'fallback' && d.limit === 3)).toBe(true);
    expect(during.filter((d) => d.allowed)).toHaveLength(2); // the known limit of 3, less the 1 the fallback learned Redis admitted
    expect(during.at(-1)!.policyVersion).toBe(2); // the last version known: nothing announced a change
    await limiter.close();
    redis.disconnect();
  }, 60_000);

  it('a limiter started during the outage: defaults decide, else onRedisFailure (closed/fallback fail closed, open allows); Redis back, the policies apply', async () => {
    const own = await startLocalRedis();
    const client = () => {
      const r = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
      r.on('error', () => {});
      return r;
    };
    await own.stop();
    const redis = client();
    const chain = () => ['default', 'plan:pro'];
    const bare = createPolicyLimiter({ redis, prefix: 'cold', chain, timeoutMs: 200 });
    const open = createPolicyLimiter({ redis, prefix: 'cold', chain, timeoutMs: 200, onRedisFailure: 'open' });
    const withDefaults = createPolicyLimiter({ redis, prefix: 'cold', chain, timeoutMs: 200, defaults: [{ name: 'rpm', algo: 'fixed_window', limit: 2, periodMs: DAY }] });
    try {
      expect(await bare.limit('u')).toMatchObject({ allowed: false, source: 'fail-closed', policyVersion: -1 });
      expect((await bare.limit('u')).retryAfterMs).toBeGreaterThan(0);
      expect(await open.limit('u')).toMatchObject({ allowed: true, source: 'fail-open', policyVersion: -1 });
      const d = [];
      for (let i = 0; i < 3; i++) d.push(await withDefaults.limit('u'));
      expect(d.map((x) => [x.allowed, x.source, x.limit])).toEqual([
        [true, 'fallback', 2],
        [true, 'fallback', 2],
        [false, 'fallback', 2],
      ]);
      await own.restart();
      const setup = client();
      await new Promise((r) => setup.once('ready', r));
      await new PolicyStore(setup, 'cold').set('plan:pro', { limits: [{ name: 'rpm', algo: 'fixed_window', limit: 7, periodMs: DAY }] }, { author: 't' });
      setup.disconnect();
      let back = await bare.peek('u');
      for (let i = 0; i < 2000 && back.policyVersion < 1; i++) {
        await new Promise((r) => setTimeout(r, 5));
        back = await bare.peek('u');
      }
      expect(back).toMatchObject({ source: 'redis', limit: 7, policyVersion: 1 });
    } finally {
      await Promise.all([bare.close(), open.close(), withDefaults.close()]);
      redis.disconnect();
      await own.stop().catch(() => {});
    }
  }, 60_000);

  it('a corrupted entry: a fresh process takes the last good version from the history, and keeps it through an outage', async () => {
    const own = await startLocalRedis();
    const redis = new Redis(own.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    redis.on('error', () => {});
    await new Promise((r) => redis.once('ready', r));
    const store = new PolicyStore(redis, 'bad');
    await store.set('default', { limits: [{ name: 'rpm', algo: 'fixed_window', limit: 4, periodMs: DAY }] }, { author: 't' });
    await redis.set('bad:{policies}:doc:default', '{"version": 9, "op": "set", "policy": {"limits": [{"name":"rpm","algo":"nope","limit":0}]}}');
    await redis.incr('bad:{policies}:version');
    const limiter = createPolicyLimiter({ redis, prefix: 'bad', chain: () => ['default'], timeoutMs: 200 });
    try {
      expect(await limiter.limit('u')).toMatchObject({ allowed: true, source: 'redis', limit: 4, remaining: 3 });
      expect(limiter.stats().corruptEntries).toBe(1);
      expect(limiter.stats().warnings.join('\n')).toMatch(/policy default: the last good version \(1, from its history\) is used/);
      await own.stop();
      const during = [];
      for (let i = 0; i < 4; i++) during.push(await limiter.limit('u'));
      expect(during.every((d) => d.source === 'fallback' && d.limit === 4)).toBe(true);
      expect(during.filter((d) => d.allowed)).toHaveLength(3); // 4, less the 1 the fallback learned Redis admitted
    } finally {
      await limiter.close();
      redis.disconnect();
      await own.stop().catch(() => {});
    }
  }, 60_000);

  it("the algorithms policy_set accepts are the limiter's", () => {
    const lua = readFileSync(join(repoRoot, 'scripts-lua/lib/policy.lua'), 'utf8');
    const block = /local RL_POLICY_ALGOS = \{([^}]*)\}/.exec(lua)![1]!;
    expect([...block.matchAll(/(\w+) = true/g)].map((m) => m[1]).sort()).toEqual([...algoNames].sort());
  });
});
