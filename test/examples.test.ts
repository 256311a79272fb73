import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { runTiers } from '../examples/tiers.js';
import { request, usage } from '../examples/hierarchy.js';
import { checkCall } from '../examples/llm-rpm-tpm.js';
import { TwinClient } from '../src/index.js';
import { ioredis, uniquePrefix } from './support/redis.js';

let redis: Redis;
let id: string;
beforeAll(() => {
  redis = ioredis();
  id = uniquePrefix('ex').replace(/[:]/g, '-');
});
afterAll(() => redis.quit());

const T0 = Date.UTC(2026, 2, 10, 12);

describe('examples', () => {
  it('tiers: the minute tier admits its burst (limit x multiplier), then the minute tier denies', async () => {
    const plan = { perMinute: 10, burstMultiplier: 1.5, perHour: 100, perDay: 1000, utcOffsetMs: 0 };
    expect(await runTiers(redis, `${id}a`, plan, 20, T0)).toEqual({ allowed: 15, deniedBy: { minute: 5 } });
    // A small day quota is what denies instead.
    expect(await runTiers(redis, `${id}b`, { ...plan, perDay: 4 }, 6, T0)).toEqual({ allowed: 4, deniedBy: { day: 2 } });
  });

  it('hierarchy: users share the team and org budgets; usage reads without consuming', async () => {
    const org = `${id}org`;
    for (let i = 0; i < 25; i++) await request(redis, { org, team: 'core', user: 'ann' }, 1, T0);
    for (let i = 0; i < 40; i++) await request(redis, { org, team: 'core', user: 'bob' }, 1, T0);
    const u = await usage(redis, { org, team: 'core', user: 'ann' }, T0);
    expect(u).toEqual({ user: 0, team: 10, org: 960 }); // ann got her burst of 20, bob 20; team used 40 of 50
    expect(await usage(redis, { org, team: 'core', user: 'ann' }, T0)).toEqual(u);
  });

  it('RPM + TPM: a token-heavy call is denied by TPM without spending an RPM slot', async () => {
    const agent = `${id}agent`;
    expect(await checkCall(redis, agent, 'openai', 60_000, undefined, T0)).toMatchObject({ allowed: true, tokensLeft: 30_000 });
    const denied = await checkCall(redis, agent, 'openai', 40_000, undefined, T0);
    expect(denied).toMatchObject({ allowed: false, deniedBy: 'tpm', retryAfterMs: 6_667 });
    expect(await checkCall(redis, agent, 'openai', 40_000, { tpm: 200_000 }, T0)).toMatchObject({ allowed: true });
    // The examples run unchanged on the in-memory twin.
    const twin = new TwinClient();
    expect(await checkCall(twin, agent, 'openai', 60_000, undefined, T0)).toMatchObject({ allowed: true, tokensLeft: 30_000 });
  });
});
