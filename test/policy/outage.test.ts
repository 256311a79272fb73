import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { algoNames } from '../../generated/index.js';
import { createPolicyLimiter } from '../../src/policy/index.js';
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

  it("the algorithms policy_set accepts are the limiter's", () => {
    const lua = readFileSync(join(repoRoot, 'scripts-lua/lib/policy.lua'), 'utf8');
    const block = /local RL_POLICY_ALGOS = \{([^}]*)\}/.exec(lua)![1]!;
    expect([...block.matchAll(/(\w+) = true/g)].map((m) => m[1]).sort()).toEqual([...algoNames].sort());
  });
});
