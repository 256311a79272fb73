import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// The examples import the package by its name, as an application does ('redlimit',
// 'redlimit/prometheus'); here the name means this checkout's source, not a build of it.
vi.mock('redlimit', () => import('../src/index.js'));
vi.mock('redlimit/prometheus', () => import('../src/metrics/prometheus.js'));
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { runTiers } from '../examples/tiers.js';
import { request, usage } from '../examples/hierarchy.js';
import { checkCall } from '../examples/llm-rpm-tpm.js';
import { TwinClient } from '../src/index.js';
import { ioredis, uniquePrefix } from './support/redis.js';
import * as prom from 'prom-client';
import { AgentQuotaManager } from '../examples/agent-quota.js';
import { TeamBudget, costMicros } from '../examples/llm-budget.js';
import { check, createGateway, httpAnswer } from '../examples/gateway-tiers.js';
import { ProviderLimiter } from '../examples/provider-limiter.js';
import { freePort } from '../devtools/local-redis.js';
import { repoRoot } from './support/temp-scripts.js';

let redis: Redis;
let id: string;
beforeAll(() => {
  redis = ioredis();
  id = uniquePrefix('ex').replace(/[:]/g, '-');
});
afterAll(() => redis.quit());

const T0 = Date.UTC(2026, 2, 10, 12);

describe('examples', () => {
  it('import the package by its name only, so each runs wherever redlimit is installed', () => {
    const dir = join(repoRoot, 'examples');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const specifiers = [...readFileSync(join(dir, file), 'utf8').matchAll(/\bfrom\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2]!);
      for (const s of specifiers) expect(s, `${file} imports ${s}`).toMatch(/^(node:|redlimit(\/(http|bindings|prometheus))?$|ioredis$|redis$|prom-client$)/);
    }
  });

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


async function deadRedis() {
  const { Redis: IORedis } = await import('ioredis');
  const r = new IORedis({ port: await freePort(), enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  r.on('error', () => {});
  return r;
}

describe('client examples', () => {
  it('agent quota: checkAndConsume against a daily token budget, refunds, and keeps enforcing on the fallback', async () => {
    const q = new AgentQuotaManager({ redis, tokensPerDay: 10_000, requestsPerMinute: 100 });
    const agent = `${id}pyagent`;
    expect(await q.checkAndConsume(agent, 6_000)).toMatchObject({ allowed: true, tokensLeft: 4_000, source: 'redis' });
    expect(await q.checkAndConsume(agent, 6_000)).toMatchObject({ allowed: false, reason: 'tokens', source: 'redis' });
    await q.refundTokens(agent, 2_000);
    expect(await q.checkAndConsume(agent, 6_000)).toMatchObject({ allowed: true, tokensLeft: 0 });
    await q.close();
    const dead = await deadRedis();
    const offline = new AgentQuotaManager({ redis: dead, tokensPerDay: 10_000, requestsPerMinute: 100, instances: 4 });
    expect(await offline.checkAndConsume(agent, 2_500)).toMatchObject({ allowed: true, source: 'fallback', tokensLeft: 0 });
    expect(await offline.checkAndConsume(agent, 1)).toMatchObject({ allowed: false, source: 'fallback' });
    await offline.close();
    dead.disconnect();
  });

  it('llm-budget: a day\'s budget in micro-dollars, cost = tokens x the model\'s price, the unused estimate settled back', async () => {
    expect(costMicros('mid-general', 1_000, 500)).toBe(3_000 + 7_500);
    expect(costMicros('small-fast', 1, 0)).toBe(1); // rounded up: a token is never free
    const budget = new TeamBudget({ redis, dailyBudgetMicros: 100_000 }); // $0.10 a day
    const team = `${id}team-budget`;
    expect(await budget.charge(team, 'mid-general', 2_000, 4_000)).toMatchObject({ allowed: true, costMicros: 66_000, leftMicros: 34_000 });
    expect(await budget.charge(team, 'large-reasoning', 1_000, 1_000)).toMatchObject({ allowed: false, costMicros: 90_000, leftMicros: 34_000 });
    await budget.settle(team, 'mid-general', 2_000, 4_000, 1_000); // answered with 1 000 tokens: 45 000 back
    expect(await budget.charge(team, 'large-reasoning', 1_000, 1_000)).toMatchObject({ allowed: false, leftMicros: 79_000 });
    expect(await budget.charge(team, 'large-reasoning', 1_000, 500)).toMatchObject({ allowed: true, costMicros: 52_500, leftMicros: 26_500 });
    await budget.close();
  });

  it('gateway: tiers across user/team/org, 429 with Retry-After, fail-open when Redis is down, metrics', async () => {
    const registry = new prom.Registry();
    const gw = createGateway({ redis, failOpen: true, prom, registry });
    const org = `${id}org2`;
    let last = await check(gw, 'u1', 'team-a', org);
    for (let i = 0; i < 95; i++) last = await check(gw, 'u1', 'team-a', org);
    expect(httpAnswer(last)).toMatchObject({ status: 429, headers: { 'Retry-After': '1', 'RateLimit-Limit': '60' } });
    expect(last.deniedBy).toBe('user_minute');
    expect((await check(gw, 'u2', 'team-a', org)).allowed).toBe(true);
    await gw.close();
    const dead = await deadRedis();
    const down = createGateway({ redis: dead, failOpen: true, prom, registry: new prom.Registry() });
    expect(await check(down, 'u1', 'team-a', org)).toMatchObject({ allowed: true, source: 'fail-open' });
    await down.close();
    dead.disconnect();
    expect(await registry.metrics()).toContain('redlimit_decisions_total{limiter="gateway",outcome="denied",source="redis"}');
  });

  it('provider limiter: RPM + TPM per agent and provider, usage, reset', async () => {
    const pl = new ProviderLimiter(redis, { openai: { rpm: 3, tpm: 1_000 }, anthropic: { rpm: 10, tpm: 5_000 } });
    const agent = `${id}l04`;
    const start = Date.now();
    expect((await pl.check(agent, 'openai', 900)).allowed).toBe(true);
    expect(await pl.check(agent, 'openai', 200)).toMatchObject({ allowed: false, deniedBy: 'tpm' });
    expect((await pl.check(agent, 'anthropic', 900)).allowed).toBe(true); // providers are separate
    const usage = await pl.getUsage(agent, 'openai');
    expect(usage).toMatchObject({ requestsLeft: 2, source: 'redis' });
    // 100 left, plus what refilled meanwhile (1 000 per minute: one token per 60 ms; a loaded CI machine took longer than that).
    expect(usage.tokensLeft).toBeGreaterThanOrEqual(100);
    expect(usage.tokensLeft).toBeLessThanOrEqual(100 + Math.ceil(((Date.now() - start) * 1_000) / 60_000));
    await pl.reset(agent, 'openai');
    expect(await pl.getUsage(agent, 'openai')).toMatchObject({ requestsLeft: 3, tokensLeft: 1_000, fullInMs: 0 });
    await pl.close();
  });

  it('service mesh: per-service policies inherit the default, production at 80%, a new default rolled out and rolled back under traffic', async () => {
    const { runMesh } = await import('../examples/service-mesh.js');
    const report = await runMesh(redis, `${id}mesh`);
    expect(report.phases).toEqual({
      v1: { checkout: 40, search: 40, payments: 16 }, // 50 x 0.8; payments' own 20 x 0.8
      rollout: { checkout: 40, search: 40, payments: 0 }, // 100 x 0.8 with the first 40 still used; payments keeps its own
      rollback: { checkout: 0, search: 0, payments: 0 }, // back to 40, and 80 are used
    });
    expect(report.limits.rollout).toEqual({ checkout: 80, search: 80, payments: 16 });
    for (const phase of ['v1', 'rollout', 'rollback'] as const) expect(report.versions[phase]).toHaveLength(1); // one version per phase, never mixed
    expect(report.versions.rollback[0]).toBe(report.versions.rollout[0]! + 1);
  });
});
