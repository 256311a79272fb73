/**
 * An LLM gateway for a team's agents on several providers, on issue 15's features end to end:
 *
 * - RPM + TPM per agent, per provider (shared by every agent) and per (agent, provider, model),
 *   each model with its own values, plus the team's daily budget in money: seven limits taken
 *   atomically by one `reserve` (all or nothing) on one limiter;
 * - reserve the estimated tokens, stream the response, `commit` the tokens it really had (the
 *   difference goes back, or an overage is charged as debt), `cancel` when the upstream fails
 *   before its first token;
 * - interactive before batch: the provider's TPM keeps half of itself for interactive calls
 *   (priority classes: a batch call only while at least 50% would be left after it);
 * - fair share of each provider's TPM among the agents (createFairShare) when it is contended;
 * - the team's daily budget as a calendar-day quota in the team's time zone, in integer
 *   micro-dollars (tokens x the model's price; see teamDay for the zone);
 * - usage (peek, consuming nothing) and reset.
 *
 * Per-model values without a limiter per model: a limit's `byScope` gives its values per value of
 * a scope. The provider limits are keyed by `provider` and take their values by it; the model
 * limits are keyed per (agent, provider, model) route and take their values by `model`
 * (`provider/model`), so each agent has a key of its own on each model, at that model's RPM and
 * TPM. Costs are plain requests and tokens, decisions and usage report the model's own values,
 * and one `reserve` still takes every limit atomically (all or nothing). A priority share keeps
 * back the same part of whichever values apply (half of the provider's TPM for batch).
 *
 * Fair share is its own script (fair_share), not a limit of the limiter: the gateway asks it after
 * the reservation, and cancels the reservation when fair share refuses, so a refused call takes
 * nothing from the limiter. Fair share has no commit or refund: it counts the estimate, so it
 * is stricter than the limiter when responses come in below their estimates (and an overage
 * is not counted against the agent's share).
 *
 * Run it: `npx tsx examples/llm-gateway.ts` (REDIS_URL, default redis://127.0.0.1:6379).
 */
import { createFairShare, createRateLimiter, isCallerError, reset as resetKeys, TwinClient, type Decision, type FairShare, type FairShareDecision, type LimitSpec, type RateLimiter, type RedisClientLike, type Subject } from 'redlimit';

/** One model of a provider: its per-agent RPM and TPM, and its price per million tokens in micro-dollars. */
export interface ModelSpec {
  rpm: number;
  tpm: number;
  microsPerMTok: number;
}

/** A provider: RPM and TPM shared by every agent of the team, and its models. */
export interface ProviderSpec {
  rpm: number;
  tpm: number;
  models: Record<string, ModelSpec>;
}

export const PROVIDERS: Readonly<Record<string, ProviderSpec>> = {
  openai: {
    rpm: 500,
    tpm: 400_000,
    models: {
      'gpt-large': { rpm: 20, tpm: 40_000, microsPerMTok: 10_000_000 }, // $10 per million tokens
      'gpt-mini': { rpm: 100, tpm: 200_000, microsPerMTok: 600_000 }, //    $0.60
    },
  },
  anthropic: {
    rpm: 400,
    tpm: 300_000,
    models: {
      'claude-large': { rpm: 25, tpm: 50_000, microsPerMTok: 15_000_000 }, // $15
      'claude-small': { rpm: 50, tpm: 100_000, microsPerMTok: 4_000_000 }, //  $4
    },
  },
};

/** Every agent's own RPM and TPM, across providers. */
export const AGENT_LIMITS = { rpm: 60, tpm: 120_000 };

export const AGENTS = Array.from({ length: 8 }, (_, i) => `agent-${i + 1}`);

export type Priority = 'interactive' | 'batch';

/** interactive may use the provider's whole TPM; batch only while half of it stays free. */
export const PRIORITIES: Readonly<Record<Priority, number>> = { interactive: 1, batch: 0.5 };

export interface GatewayOptions {
  /** ioredis / node-redis client. Omitted: the in-memory twin decides (one process only). */
  redis?: object;
  /** Key prefix (default `llmgw`): gateways with the same prefix and team share every limit. */
  prefix?: string;
  /** The team: the budget's scope and the hash tag of every key (one Cluster slot per team). */
  team?: string;
  agents?: readonly string[];
  providers?: Readonly<Record<string, ProviderSpec>>;
  agentLimits?: { rpm: number; tpm: number };
  /** The team's budget per calendar day, micro-dollars (default $20). */
  dailyBudgetMicros?: number;
  /** The team's time zone: its day starts at its own midnight (default Europe/Berlin; see teamDay). */
  timeZone?: string;
  /** The window of every RPM / TPM limit and of fair share (default 60 000: per minute). */
  periodMs?: number;
  /** How long a reservation may stay unsettled before it counts at its estimate (default 120 s). */
  reservationTtlMs?: number;
  /** Seed of the simulated responses (deterministic). */
  seed?: number;
  /** Clock of the fair-share decisions (default: the Redis server's); a simulation or test may fix it. */
  fairShareNowMs?: () => number;
  /** Deadline of one Redis round trip (default 100 ms). */
  timeoutMs?: number;
}

export interface CallOptions {
  /** Estimated tokens (prompt + max output): what is reserved. */
  estimate: number;
  priority?: Priority;
  /** The tokens the response really has (default: simulated from the seed, 35%..120% of the estimate). */
  actual?: number;
  /** The upstream fails before its first token (default: simulated, 1 in 12). */
  fail?: boolean;
}

export type Outcome = 'committed' | 'cancelled' | 'denied';

export interface CallResult {
  outcome: Outcome;
  /** The limit that refused (a limit name, or `fair_share`); null when admitted. */
  deniedBy: string | null;
  /** ms until the refused call could pass; -1: never (the estimate can never fit). */
  retryAfterMs: number;
  priority: Priority;
  estimate: number;
  /** Tokens committed (0 unless committed). */
  tokens: number;
  /** Money committed, micro-dollars (0 unless committed). */
  costMicros: number;
  /** Where the decision came from (redis, or fallback while Redis cannot answer). */
  source: Decision['source'];
  /** The fair-share answer, when the call got that far: the agent's share of the provider's TPM and what it has taken this window. */
  fair: { share: number; used: number; activeAgents: number; reason: string } | null;
}

/** What this gateway instance did (its own calls; every instance sharing the prefix adds its own). */
export interface Report {
  calls: number;
  committed: number;
  cancelled: number;
  denied: Record<string, number>;
  tokensByProvider: Record<string, number>;
  tokensByAgent: Record<string, number>;
  /** Committed tokens per provider and priority class. */
  tokensByClass: Record<string, Record<Priority, number>>;
  spentMicros: number;
  sources: Record<string, number>;
  /** Steps Redis could not take: settles left to expire at their estimate, fair-share checks skipped. */
  unsettled: Record<string, number>;
}

/** What a (agent, provider, model) has left now, in tokens, requests and micro-dollars. */
export interface Usage {
  agent: { requestsLeft: number; tokensLeft: number };
  provider: { requestsLeft: number; tokensLeft: number };
  model: { requestsLeft: number; tokensLeft: number };
  /** resetInMs: until the team's day ends (its midnight), 0 while nothing is spent. */
  team: { budgetMicros: number; spentMicros: number; leftMicros: number; resetInMs: number };
}

/** Cost of `tokens` on a model, micro-dollars, rounded up (a token is never free). */
export function costMicros(spec: ModelSpec, tokens: number): number {
  return Math.ceil((tokens * spec.microsPerMTok) / 1_000_000);
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export class UpstreamError extends Error {}

/**
 * A provider's streamed answer: chunks of tokens. `actual` is what it will have in all; `fail`
 * makes it fail before the first token (nothing was generated, nothing is billed).
 */
export async function* simulatedStream(actual: number, fail: boolean): AsyncGenerator<number> {
  if (fail) throw new UpstreamError('upstream 503 before the first token');
  for (let left = actual; left > 0; left -= 256) yield Math.min(256, left);
}

/**
 * The team's day: a quota in the team's IANA time zone (DST-correct on the server clock: a day is
 * 23 or 25 hours when the clocks change). reserve takes the zone's rules (reserve v3), and a
 * reservation is settled in the day it was made in: a call reserved before local midnight and
 * settled after it gives nothing back to, and charges nothing on, the new day.
 */
function teamDay(timeZone: string): { timeZone: string } {
  return { timeZone };
}

/** byScope entries from a table: per key of `specs`, its `value` as the limit. */
function valuesBy<T>(specs: Record<string, T>, value: (spec: T) => number): Record<string, { limit: number }> {
  return Object.fromEntries(Object.entries(specs).map(([k, spec]) => [k, { limit: value(spec) }]));
}

export class LlmGateway {
  readonly limiter: RateLimiter;
  readonly team: string;
  readonly agents: readonly string[];
  readonly providers: Readonly<Record<string, ProviderSpec>>;
  readonly budgetMicros: number;
  private readonly fair = new Map<string, FairShare>();
  private readonly fairClient: RedisClientLike;
  /** Per provider, the keys of its fair share (one hash tag each). */
  private readonly fairKeys: string[][] = [];
  private readonly fairNow: (() => number) | undefined;
  private readonly ttlMs: number;
  private readonly rng: () => number;
  private readonly tally: Report;

  constructor(o: GatewayOptions = {}) {
    const prefix = o.prefix ?? 'llmgw';
    const periodMs = o.periodMs ?? 60_000;
    const a = o.agentLimits ?? AGENT_LIMITS;
    this.team = o.team ?? 'team-a';
    this.agents = o.agents ?? AGENTS;
    this.providers = o.providers ?? PROVIDERS;
    this.budgetMicros = o.dailyBudgetMicros ?? 20_000_000;
    this.ttlMs = o.reservationTtlMs ?? 120_000;
    this.rng = seededRandom(o.seed ?? 1);
    this.fairNow = o.fairShareNowMs;
    // Every provider and model is listed (subject() refuses others): a limit's own value is the
    // smallest of them, what an unlisted one would get.
    const models: Record<string, ModelSpec> = Object.fromEntries(Object.entries(this.providers).flatMap(([p, ps]) => Object.entries(ps.models).map(([m, ms]) => [`${p}/${m}`, ms])));
    const least = (values: number[]) => Math.min(...values);
    const providers = Object.values(this.providers);
    const modelSpecs = Object.values(models);
    const limits: LimitSpec[] = [
      { name: 'agent_rpm', algo: 'gcra', limit: a.rpm, periodMs },
      { name: 'agent_tpm', algo: 'gcra', limit: a.tpm, periodMs },
      { name: 'provider_rpm', algo: 'gcra', limit: least(providers.map((s) => s.rpm)), periodMs, scope: 'provider', byScope: { provider: valuesBy(this.providers, (s) => s.rpm) } },
      { name: 'provider_tpm', algo: 'gcra', limit: least(providers.map((s) => s.tpm)), periodMs, scope: 'provider', byScope: { provider: valuesBy(this.providers, (s) => s.tpm) }, priorities: { ...PRIORITIES } },
      // One key per (agent, provider, model) route, at the model's values.
      { name: 'model_rpm', algo: 'gcra', limit: least(modelSpecs.map((s) => s.rpm)), periodMs, scope: 'route', byScope: { model: valuesBy(models, (s) => s.rpm) } },
      { name: 'model_tpm', algo: 'gcra', limit: least(modelSpecs.map((s) => s.tpm)), periodMs, scope: 'route', byScope: { model: valuesBy(models, (s) => s.tpm) } },
      // The quota's day is the team's own: from its midnight to its next midnight.
      { name: 'team_budget', algo: 'quota', limit: this.budgetMicros, unit: 'day', scope: 'team', ...teamDay(o.timeZone ?? 'Europe/Berlin') },
    ];
    this.limiter = createRateLimiter({ redis: o.redis, prefix, name: 'llm-gateway', limits, timeoutMs: o.timeoutMs });
    // Fair share of each provider's TPM among the agents: its own state under its own hash tag.
    this.fairClient = (o.redis as RedisClientLike | undefined) ?? (new TwinClient() as unknown as RedisClientLike);
    for (const [p, s] of Object.entries(this.providers)) {
      const name = `${this.team}.${p}.tpm`;
      this.fair.set(p, createFairShare({ redis: this.fairClient, prefix: `${prefix}-fair`, name, limit: { algo: 'fixed_window', limit: s.tpm, periodMs } }));
      this.fairKeys.push(['state', 'tenants', 'active'].map((k) => `${prefix}-fair:{${name}}:fair:${k}`));
    }
    this.tally = { calls: 0, committed: 0, cancelled: 0, denied: {}, tokensByProvider: {}, tokensByAgent: {}, tokensByClass: {}, spentMicros: 0, sources: {}, unsettled: {} };
  }

  ready(): Promise<void> {
    return this.limiter.ready();
  }

  private model(provider: string, model: string): ModelSpec {
    const m = this.providers[provider]?.models[model];
    if (!m) throw new Error(`unknown model ${provider}/${model}`);
    return m;
  }

  /** Every key of one call shares the team's hash tag; scopes pick the provider's, the route's and the team's keys, and the model's values. */
  subject(agent: string, provider: string, model: string): Subject {
    if (!this.agents.includes(agent)) throw new Error(`unknown agent ${agent}`);
    this.model(provider, model);
    return { id: agent, hashTag: this.team, scopes: { provider, model: `${provider}/${model}`, route: `${provider}/${model}/${agent}`, team: this.team } };
  }

  /** Units of each limit for `tokens` tokens and `requests` requests on this model. */
  private units(provider: string, model: string, tokens: number, requests: number) {
    return {
      agent_rpm: requests,
      agent_tpm: tokens,
      provider_rpm: requests,
      provider_tpm: tokens,
      model_rpm: requests,
      model_tpm: tokens,
      team_budget: costMicros(this.model(provider, model), tokens),
    };
  }

  /**
   * One LLM call: reserve the estimate on every limit (all or nothing, at the call's priority
   * class), ask fair share, stream the response, then commit what it really used (or cancel).
   */
  async call(agent: string, provider: string, model: string, o: CallOptions): Promise<CallResult> {
    const priority = o.priority ?? 'interactive';
    if (!Number.isSafeInteger(o.estimate) || o.estimate < 1) throw new Error(`estimate must be a positive integer, got ${o.estimate}`);
    if (!(priority in PRIORITIES)) throw new Error(`priority must be ${Object.keys(PRIORITIES).join(' or ')}`);
    const subject = this.subject(agent, provider, model);
    // The simulated upstream draws from the seed whether or not the call is admitted: the same
    // sequence of calls gets the same answers.
    const fail = o.fail ?? this.rng() < 1 / 12;
    const actual = o.actual ?? Math.max(1, Math.round(o.estimate * (0.35 + 0.85 * this.rng())));
    const result: CallResult = { outcome: 'denied', deniedBy: null, retryAfterMs: 0, priority, estimate: o.estimate, tokens: 0, costMicros: 0, source: 'redis', fair: null };
    this.tally.calls++;

    const r = await this.limiter.reserve(subject, { cost: this.units(provider, model, o.estimate, 1), ttlMs: this.ttlMs, priority });
    result.source = r.source;
    this.count(this.tally.sources, r.source);
    if (r.handle === null) return this.denied(result, r.deniedBy ?? 'unavailable', r.retryAfterMs);

    let fair: FairShareDecision | null = null;
    try {
      fair = await this.fair.get(provider)!.limit(agent, { cost: o.estimate, nowMs: this.fairNow?.() });
    } catch (err) {
      // Fair share has no fallback: while Redis cannot answer it, the limits (on the limiter's
      // fallback) still hold and fairness is skipped. A caller's mistake is not swallowed.
      if (isCallerError(err)) {
        await this.settle(r.handle, null);
        throw err;
      }
      this.count(this.tally.unsettled, 'fair-share-skipped');
    }
    if (fair) {
      result.fair = { share: fair.share, used: fair.used, activeAgents: fair.activeTenants, reason: fair.reason };
      if (!fair.allowed) {
        await this.settle(r.handle, null); // a refused call takes nothing
        return this.denied(result, 'fair_share', fair.retryAfterMs);
      }
    }

    let streamed = 0;
    try {
      for await (const chunk of simulatedStream(actual, fail)) streamed += chunk;
    } catch (err) {
      await this.settle(r.handle, null); // nothing generated: everything goes back
      if (!(err instanceof UpstreamError)) throw err;
      this.tally.cancelled++;
      result.outcome = 'cancelled';
      return result;
    }
    // RPM keeps its estimate (1 request); tokens and money settle at what the stream really had.
    const { agent_rpm: _a, provider_rpm: _p, model_rpm: _m, ...settled } = this.units(provider, model, streamed, 1);
    await this.settle(r.handle, settled);
    result.outcome = 'committed';
    result.tokens = streamed;
    result.costMicros = settled.team_budget;
    this.tally.committed++;
    this.tally.spentMicros += settled.team_budget;
    this.count(this.tally.tokensByProvider, provider, streamed);
    this.count(this.tally.tokensByAgent, agent, streamed);
    const byClass = (this.tally.tokensByClass[provider] ??= { interactive: 0, batch: 0 });
    byClass[priority] += streamed;
    return result;
  }

  /**
   * Commit (actuals) or cancel (null). If Redis cannot take it now the reservation stays and
   * expires after its TTL, counted at its estimate (stricter, never looser): the answer the
   * caller already has is not failed for it.
   */
  private async settle(handle: string, actuals: Record<string, number> | null): Promise<void> {
    try {
      await (actuals ? this.limiter.commit(handle, actuals) : this.limiter.cancel(handle));
    } catch (err) {
      if (isCallerError(err)) throw err;
      this.count(this.tally.unsettled, actuals ? 'commit' : 'cancel');
    }
  }

  private denied(result: CallResult, by: string, retryAfterMs: number): CallResult {
    result.deniedBy = by;
    result.retryAfterMs = retryAfterMs;
    this.count(this.tally.denied, by);
    return result;
  }

  private count(into: Record<string, number>, key: string, n = 1): void {
    into[key] = (into[key] ?? 0) + n;
  }

  /** What this instance did: calls, outcomes, tokens and money committed. */
  report(): Report {
    return structuredClone(this.tally);
  }

  /** What an (agent, provider, model) has left now, consuming nothing (peek). */
  async usage(agent: string, provider: string, model: string): Promise<Usage> {
    const d = await this.limiter.peek(this.subject(agent, provider, model));
    const left = Object.fromEntries(d.limits.map((l) => [l.name, l.remaining]));
    const budget = d.limits.find((l) => l.name === 'team_budget')!;
    return {
      agent: { requestsLeft: left.agent_rpm!, tokensLeft: left.agent_tpm! },
      provider: { requestsLeft: left.provider_rpm!, tokensLeft: left.provider_tpm! },
      model: { requestsLeft: left.model_rpm!, tokensLeft: left.model_tpm! },
      team: { budgetMicros: this.budgetMicros, spentMicros: this.budgetMicros - budget.remaining, leftMicros: budget.remaining, resetInMs: budget.resetAfterMs },
    };
  }

  /** Everything back to full: every agent's, provider's, model route's and the team's limits, and fair share. */
  async reset(): Promise<void> {
    const all = this.limiter.limits.map((l) => l.name);
    const jobs: Promise<unknown>[] = [];
    for (const agent of this.agents) {
      for (const [p, ps] of Object.entries(this.providers)) {
        for (const m of Object.keys(ps.models)) jobs.push(this.limiter.reset(this.subject(agent, p, m), { limits: all }));
      }
    }
    // createFairShare has no reset: its keys (documented in FairShareOptions.prefix) go through the reset script.
    for (const keys of this.fairKeys) jobs.push(resetKeys(this.fairClient, { keys }));
    await Promise.all(jobs);
  }

  close(): Promise<void> {
    return this.limiter.close();
  }
}

export function createGateway(redis: object | undefined, options: Omit<GatewayOptions, 'redis'> = {}): LlmGateway {
  return new LlmGateway({ ...options, redis });
}

export interface SimulationOptions {
  rounds: number;
  seed?: number;
  /** Share of batch calls (default 0.3). */
  batchShare?: number;
  /** The responses' tokens as a share of their estimate, [low, high) (default: the gateway's own draw, 0.35..1.2). */
  actualRange?: [number, number];
}

/** A simulated workload: each round, every agent makes one call on a random model, class and estimate. */
export async function simulate(gateways: LlmGateway | LlmGateway[], o: SimulationOptions): Promise<CallResult[]> {
  const gws = Array.isArray(gateways) ? gateways : [gateways];
  const gw = gws[0]!;
  const rng = seededRandom(o.seed ?? 7);
  const routes = Object.entries(gw.providers).flatMap(([p, ps]) => Object.keys(ps.models).map((m) => [p, m] as const));
  const results: CallResult[] = [];
  for (let round = 0; round < o.rounds; round++) {
    // Every agent's call of this round at once (several gateway instances share the limits).
    const calls = gw.agents.map((agent, i) => {
      const [p, m] = routes[Math.floor(rng() * routes.length)]!;
      const estimate = 500 + Math.floor(rng() * 15_500);
      const priority: Priority = rng() < (o.batchShare ?? 0.3) ? 'batch' : 'interactive';
      const range = o.actualRange;
      const actual = range ? Math.max(1, Math.round(estimate * (range[0] + (range[1] - range[0]) * rng()))) : undefined;
      return gws[i % gws.length]!.call(agent, p, m, { estimate, priority, actual });
    });
    results.push(...(await Promise.all(calls)));
  }
  return results;
}

async function main(): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
  const gw = createGateway(redis, { prefix: `llmgw-demo-${process.pid}`, seed: 42 });
  await gw.ready();
  const results = await simulate(gw, { rounds: 30, seed: 42 });
  const r = gw.report();
  const usd = (micros: number) => `$${(micros / 1_000_000).toFixed(4)}`;
  console.log(`${results.length} calls from ${gw.agents.length} agents: ${r.committed} committed, ${r.cancelled} cancelled (upstream failed), denied by ${JSON.stringify(r.denied)}`);
  for (const [p, t] of Object.entries(r.tokensByProvider)) console.log(`  ${p}: ${t} tokens (${JSON.stringify(r.tokensByClass[p])}), limit ${gw.providers[p]!.tpm} a minute`);
  console.log(`  team spent ${usd(r.spentMicros)} of ${usd(gw.budgetMicros)} today`);
  const u = await gw.usage('agent-1', 'openai', 'gpt-large');
  console.log('usage of agent-1 on openai/gpt-large:', JSON.stringify(u));
  await gw.reset();
  console.log('after reset:', JSON.stringify(await gw.usage('agent-1', 'openai', 'gpt-large')));
  await gw.close();
  redis.disconnect();
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
