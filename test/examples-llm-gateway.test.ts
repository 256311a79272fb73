import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// The examples import the package by its name, as an application does ('redlimit',
// 'redlimit/prometheus'); here the name means this checkout's source, not a build of it.
vi.mock('redlimit', () => import('../src/index.js'));
vi.mock('redlimit/prometheus', () => import('../src/metrics/prometheus.js'));
import type { Redis } from 'ioredis';
import { AGENT_LIMITS, AGENTS, PROVIDERS, costMicros, createGateway, simulate, type CallResult, type GatewayOptions, type LlmGateway, type Usage } from '../examples/llm-gateway.js';
import { readyIoredis, uniquePrefix, UNHURRIED } from './support/redis.js';
import { freePort } from '../devtools/local-redis.js';

// Every scenario runs on real Redis, whose scripts read the server clock. So that nothing refills
// between two calls, every RPM / TPM limit here is stated over 366 days instead of a minute (its
// values are the example's: "TPM" means tokens per 366 days; the fastest of them, openai's, refills
// one token in 79 s, longer than a test may run), and fair share runs on a fixed clock (its window
// never rolls). The one bound that involves time (scenario 1) adds the refill over the measured
// run: an upper bound whatever the machine's speed.
const PERIOD_MS = 366 * 86_400_000;
const T0 = Date.UTC(2026, 2, 10, 12);

let redis: Redis;
const open: LlmGateway[] = [];
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(async () => {
  for (const gw of open) await gw.close();
  await redis.quit();
});

async function gateway(label: string, o: Omit<GatewayOptions, 'redis'> = {}): Promise<LlmGateway> {
  const gw = createGateway(redis, { prefix: uniquePrefix(label).replace(/:/g, '-').slice(0, -1), periodMs: PERIOD_MS, fairShareNowMs: () => T0, ...UNHURRIED, ...o });
  open.push(gw);
  await gw.ready();
  return gw;
}

/** What a usage holds, without the time until the team's day ends (it runs down as the test runs). */
const amounts = (u: Usage) => ({ ...u, team: { ...u.team, resetInMs: undefined } });

/** A call whose response has exactly `actual` tokens (default: the estimate) and does not fail. */
const exact = (estimate: number, o: { actual?: number; priority?: 'interactive' | 'batch' } = {}) => ({ estimate, actual: o.actual ?? estimate, fail: false, priority: o.priority });

describe('examples/llm-gateway.ts', () => {
  it('per-model values in common units: each route admits exactly its own model TPM and RPM', async () => {
    const gw = await gateway('gw-model');
    // gpt-large allows 40 000 tokens per agent, gpt-mini 200 000: one limit, different values.
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(40_000))).toMatchObject({ outcome: 'committed', tokens: 40_000 });
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(1))).toMatchObject({ outcome: 'denied', deniedBy: 'model_tpm' });
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(40_001))).toMatchObject({ outcome: 'denied', deniedBy: 'model_tpm', retryAfterMs: -1 });
    expect(await gw.call('agent-1', 'openai', 'gpt-mini', exact(60_000))).toMatchObject({ outcome: 'committed' });
    const u = await gw.usage('agent-1', 'openai', 'gpt-mini');
    expect(u.model).toEqual({ requestsLeft: 99, tokensLeft: 140_000 });
    expect(u.agent).toEqual({ requestsLeft: 58, tokensLeft: 20_000 }); // 100 000 of 120 000 across both models
    expect(u.provider).toEqual({ requestsLeft: 498, tokensLeft: 300_000 });
    expect((await gw.usage('agent-1', 'openai', 'gpt-large')).model).toEqual({ requestsLeft: 19, tokensLeft: 0 });
    // claude-large: 25 requests per agent. Another agent's route is its own key.
    for (let i = 0; i < 25; i++) expect((await gw.call('agent-2', 'anthropic', 'claude-large', exact(10))).outcome).toBe('committed');
    expect(await gw.call('agent-2', 'anthropic', 'claude-large', exact(10))).toMatchObject({ outcome: 'denied', deniedBy: 'model_rpm' });
    expect((await gw.call('agent-3', 'anthropic', 'claude-large', exact(10))).outcome).toBe('committed');
  });

  it('1. across 8 agents and 2 gateway instances, random estimates and actuals never take a provider past its TPM plus the debt bound', async () => {
    const prefix = uniquePrefix('gw-run').replace(/:/g, '-').slice(0, -1);
    const a = await gateway('unused', { prefix, seed: 11 });
    const b = await gateway('unused', { prefix, seed: 12 });
    const started = Date.now();
    // Responses of 80% to 150% of their estimate: fair share counts estimates (it cannot settle),
    // so it is the provider's TPM on the limiter, settled at the actuals, that must hold here.
    const results: CallResult[] = await simulate([a, b], { rounds: 40, seed: 3, actualRange: [0.8, 1.5] });
    const elapsedMs = Date.now() - started + 1_000; // + the clocks' granularity and skew
    expect(results).toHaveLength(320);
    const ra = a.report();
    const rb = b.report();
    expect({ ...ra.sources, ...rb.sources }).toEqual({ redis: expect.any(Number) }); // every decision was Redis'
    const sum = (x: Record<string, number>, y: Record<string, number>, k: string) => (x[k] ?? 0) + (y[k] ?? 0);
    // Debt bound (settle.lua): a gcra limit holds at least -burst, so what is committed over the
    // run is at most burst (full at the start) + burst (debt) + the refill over the run.
    const bound = (limit: number) => 2 * limit + Math.ceil((limit * elapsedMs) / PERIOD_MS);
    for (const [p, spec] of Object.entries(PROVIDERS)) {
      const committed = sum(ra.tokensByProvider, rb.tokensByProvider, p);
      expect(committed, p).toBeGreaterThan(0);
      expect(committed, p).toBeLessThanOrEqual(bound(spec.tpm));
    }
    for (const agent of AGENTS) expect(sum(ra.tokensByAgent, rb.tokensByAgent, agent)).toBeLessThanOrEqual(bound(AGENT_LIMITS.tpm));
    // The run was contended: the providers' TPM (priority or fair share) refused calls, some
    // responses came in above their estimate (settled as debt), and failed ones were cancelled.
    const denied = (k: string) => sum(ra.denied, rb.denied, k);
    expect(denied('provider_tpm')).toBeGreaterThan(0);
    expect(denied('fair_share')).toBeGreaterThan(0);
    expect(results.some((r) => r.outcome === 'committed' && r.tokens > r.estimate)).toBe(true);
    expect(ra.cancelled + rb.cancelled).toBeGreaterThan(0);
    expect(ra.calls + rb.calls).toBe(320);
    expect(ra.committed + rb.committed + ra.cancelled + rb.cancelled + Object.values(ra.denied).concat(Object.values(rb.denied)).reduce((x, y) => x + y, 0)).toBe(320);
    // What Redis holds agrees with what was committed: the spend is exactly the sum of the commits.
    const u = await a.usage('agent-1', 'openai', 'gpt-mini');
    expect(u.team.spentMicros).toBe(ra.spentMicros + rb.spentMicros);
  });

  it('2. a reservation committed below its estimate gives the difference back: a later call passes that would otherwise be denied', async () => {
    const gw = await gateway('gw-refund');
    // gpt-large: 40 000 tokens per agent. Reserve 30 000, the response has 5 000.
    const first = await gw.call('agent-1', 'openai', 'gpt-large', exact(30_000, { actual: 5_000 }));
    expect(first).toMatchObject({ outcome: 'committed', tokens: 5_000, costMicros: 50_000 });
    expect((await gw.usage('agent-1', 'openai', 'gpt-large')).model.tokensLeft).toBe(35_000);
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(30_000))).toMatchObject({ outcome: 'committed' });
    // The same two calls where the response used its whole estimate: the second is denied.
    expect(await gw.call('agent-2', 'openai', 'gpt-large', exact(30_000))).toMatchObject({ outcome: 'committed', tokens: 30_000 });
    expect(await gw.call('agent-2', 'openai', 'gpt-large', exact(30_000))).toMatchObject({ outcome: 'denied', deniedBy: 'model_tpm' });
    // A failed upstream gives everything back; an overage is charged (debt).
    expect(await gw.call('agent-3', 'openai', 'gpt-large', { estimate: 30_000, fail: true })).toMatchObject({ outcome: 'cancelled', tokens: 0 });
    expect((await gw.usage('agent-3', 'openai', 'gpt-large')).model).toEqual({ requestsLeft: 20, tokensLeft: 40_000 });
    expect(await gw.call('agent-3', 'openai', 'gpt-large', exact(30_000, { actual: 36_000 }))).toMatchObject({ outcome: 'committed', tokens: 36_000 });
    expect((await gw.usage('agent-3', 'openai', 'gpt-large')).model.tokensLeft).toBe(4_000);
    expect(await gw.call('agent-3', 'openai', 'gpt-large', exact(4_001))).toMatchObject({ outcome: 'denied', deniedBy: 'model_tpm' });
  });

  it('3. at the same state, batch is refused by the provider TPM it keeps for interactive, and interactive passes', async () => {
    const gw = await gateway('gw-priority');
    // Four agents take 60 000 each of openai's 400 000 (interactive): 160 000 = 40% left.
    for (const agent of AGENTS.slice(0, 4)) expect((await gw.call(agent, 'openai', 'gpt-mini', exact(60_000))).outcome).toBe('committed');
    // Batch is admitted only while 50% would be left after it; the refusal takes nothing.
    const before = amounts(await gw.usage('agent-5', 'openai', 'gpt-mini'));
    const batch = await gw.call('agent-5', 'openai', 'gpt-mini', exact(10_000, { priority: 'batch' }));
    expect(batch).toMatchObject({ outcome: 'denied', deniedBy: 'provider_tpm', priority: 'batch', fair: null });
    expect(amounts(await gw.usage('agent-5', 'openai', 'gpt-mini'))).toEqual(before);
    expect(await gw.call('agent-5', 'openai', 'gpt-mini', exact(10_000, { priority: 'interactive' }))).toMatchObject({ outcome: 'committed', tokens: 10_000 });
    // Batch passes as long as half stays free: on anthropic, 150 000 of 300 000 may go to batch.
    expect(await gw.call('agent-6', 'anthropic', 'claude-small', exact(90_000, { priority: 'batch' }))).toMatchObject({ outcome: 'committed' });
    expect(await gw.call('agent-7', 'anthropic', 'claude-small', exact(60_000, { priority: 'batch' }))).toMatchObject({ outcome: 'committed' });
    expect(await gw.call('agent-8', 'anthropic', 'claude-small', exact(1, { priority: 'batch' }))).toMatchObject({ outcome: 'denied', deniedBy: 'provider_tpm' });
    expect(gw.report().tokensByClass).toEqual({ openai: { interactive: 250_000, batch: 0 }, anthropic: { interactive: 0, batch: 150_000 } });
  });

  it('4. under contention no agent takes more than its fair share of a provider TPM; a lone agent may take the idle capacity', async () => {
    const gw = await gateway('gw-fair');
    const share = PROVIDERS.anthropic!.tpm / AGENTS.length; // 37 500 each while all 8 are active
    const taken: Record<string, number> = {};
    const take = (agent: string, r: CallResult) => {
      if (r.outcome === 'committed') taken[agent] = (taken[agent] ?? 0) + r.tokens;
      return r;
    };
    for (const agent of AGENTS) take(agent, await gw.call(agent, 'anthropic', 'claude-small', exact(1_000)));
    // Skewed demand: two greedy agents ask far beyond their share; the others ask a little.
    const fairRefusals: CallResult[] = [];
    for (let round = 0; round < 12; round++) {
      for (const agent of ['agent-1', 'agent-2']) {
        const r = take(agent, await gw.call(agent, 'anthropic', 'claude-small', exact(5_000)));
        if (r.deniedBy === 'fair_share') fairRefusals.push(r);
      }
      if (round % 3 === 0) for (const agent of AGENTS.slice(2)) take(agent, await gw.call(agent, 'anthropic', 'claude-small', exact(2_000)));
    }
    expect(fairRefusals.length).toBeGreaterThan(0);
    for (const r of fairRefusals) expect(r.fair).toMatchObject({ share, activeAgents: 8, reason: 'owed' });
    for (const agent of AGENTS) expect(taken[agent] ?? 0, agent).toBeLessThanOrEqual(share);
    expect(taken['agent-1']).toBe(36_000); // 1 000 + 7 x 5 000: the eighth would pass its share
    // What the greedy ones could not take is still there for the others: each gets its whole share.
    for (const agent of AGENTS.slice(2)) {
      const left = share - taken[agent]!;
      expect(take(agent, await gw.call(agent, 'anthropic', 'claude-small', exact(left))).outcome, agent).toBe('committed');
    }
    // Not contended: alone on openai, an agent takes a fifth of its TPM (more than an eighth).
    expect(await gw.call('agent-3', 'openai', 'gpt-mini', exact(80_000))).toMatchObject({ outcome: 'committed', fair: { share: 400_000, activeAgents: 1, reason: 'within-share' } });
  });

  it('5. the team budget in micro-dollars refuses once the money is spent, and the usage matches the committed costs exactly', async () => {
    const budget = 1_000_000; // $1 a day
    const gw = await gateway('gw-budget', { dailyBudgetMicros: budget });
    const spent: number[] = [];
    let refused: CallResult | null = null;
    // claude-large at $15 per million tokens: 10 000 estimated tokens reserve $0.15.
    for (let i = 0; i < 40 && refused === null; i++) {
      const agent = AGENTS[i % AGENTS.length]!;
      const r = await gw.call(agent, 'anthropic', 'claude-large', exact(10_000, { actual: 7_001 + 37 * i }));
      if (r.outcome === 'committed') spent.push(r.costMicros);
      else refused = r;
    }
    expect(refused).toMatchObject({ outcome: 'denied', deniedBy: 'team_budget' });
    const total = spent.reduce((x, y) => x + y, 0);
    expect(spent).toEqual(spent.map((_, i) => costMicros(PROVIDERS.anthropic!.models['claude-large']!, 7_001 + 37 * i)));
    expect(budget - total).toBeLessThan(150_000); // what was left could not hold the estimate
    const u = await gw.usage('agent-1', 'openai', 'gpt-mini');
    expect(u.team).toMatchObject({ budgetMicros: budget, spentMicros: total, leftMicros: budget - total });
    expect(gw.report().spentMicros).toBe(total);
    // The team's day ends at midnight in Berlin: the quota is back to full then.
    const end = new Date(Date.now() + u.team.resetInMs + 500);
    const berlin = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(end);
    expect(berlin).toBe('00:00');
    // A cheaper call that fits what is left still passes: the budget refuses only what it cannot hold.
    const fits = Math.min(100_000, Math.floor(((budget - total) * 1_000_000) / 600_000)); // gpt-mini: $0.60 per million tokens
    const cheap = await gw.call('agent-2', 'openai', 'gpt-mini', exact(fits));
    expect(cheap).toMatchObject({ outcome: 'committed', costMicros: Math.ceil(fits * 0.6) });
    expect((await gw.usage('agent-2', 'openai', 'gpt-mini')).team.spentMicros).toBe(total + cheap.costMicros);
  });

  it('6. reset puts every limit and fair share back to full', async () => {
    const gw = await gateway('gw-reset', { dailyBudgetMicros: 350_000 });
    // gpt-large at $10 per million tokens: 30 000 tokens spend $0.30 of $0.35.
    expect((await gw.call('agent-1', 'openai', 'gpt-large', exact(30_000))).outcome).toBe('committed');
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(10_000))).toMatchObject({ outcome: 'denied', deniedBy: 'team_budget' });
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(10_001))).toMatchObject({ outcome: 'denied', deniedBy: 'model_tpm' });
    const full = {
      agent: { requestsLeft: 60, tokensLeft: 120_000 },
      provider: { requestsLeft: 500, tokensLeft: 400_000 },
      model: { requestsLeft: 20, tokensLeft: 40_000 },
      team: { budgetMicros: 350_000, spentMicros: 0, leftMicros: 350_000, resetInMs: 0 },
    };
    expect(await gw.usage('agent-1', 'openai', 'gpt-large')).not.toEqual(full);
    await gw.reset();
    expect(await gw.usage('agent-1', 'openai', 'gpt-large')).toEqual(full);
    // Fair share too: a lone agent's first call is within its (whole) share again, with nothing used.
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(30_000, { actual: 10_000 }))).toMatchObject({ outcome: 'committed', fair: { used: 30_000, activeAgents: 1 } });
  });

  it('7. while Redis is down the limits hold on the fallback: reservations settle there, fairness is skipped', async () => {
    const { Redis: IORedis } = await import('ioredis');
    const dead = new IORedis({ port: await freePort(), enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    dead.on('error', () => {});
    const gw = createGateway(dead, { prefix: 'gw-down', periodMs: PERIOD_MS, timeoutMs: 200 });
    open.push(gw);
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(30_000, { actual: 10_000 }))).toMatchObject({ outcome: 'committed', source: 'fallback', fair: null });
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(30_000))).toMatchObject({ outcome: 'committed', source: 'fallback' });
    expect(await gw.call('agent-1', 'openai', 'gpt-large', exact(1))).toMatchObject({ outcome: 'denied', deniedBy: 'model_tpm', source: 'fallback' });
    expect(gw.report().unsettled).toEqual({ 'fair-share-skipped': 2 });
    dead.disconnect();
  });
});
