import * as b from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError, RateLimitedError, RedisUnavailableError, ScriptError } from '../errors.js';
import type { RedisClientLike } from '../runtime/index.js';
import { TwinClient } from '../twin/client.js';
import { CircuitBreaker, breakerFor, type BreakerOptions, type BreakerStats } from './breaker.js';
import { validateConfig, type LimitSpec, type OnRedisFailure, type RateLimiterOptions } from './config.js';
import type { Decision, DecisionSource, LimitResult } from './decision.js';
import { DenyCache } from './deny-cache.js';
import { blockKey, limitKey, resolveSubject, subjectId, type Subject } from './keys.js';
import { LeasePool } from './leases.js';
import { errorReason, type MetricsHook } from './metrics.js';
import { clientWarnings, whenReady, withTimeout } from './redis-call.js';

/** Cost of a call: one number for every limit, or per limit name (missing names cost 1). */
export type Cost = number | Record<string, number>;

export interface LimiterStats {
  breaker: BreakerStats | null;
  denyCacheEntries: number;
  leases: { subjects: number; units: number };
  fallbackKeys: number;
  warnings: string[];
}

const REFUND: Record<string, ((client: RedisClientLike, args: never) => Promise<unknown>) | undefined> = {
  gcra: b.gcraRefund as never,
  token_bucket: b.tokenBucketRefund as never,
  fixed_window: b.fixedWindowRefund as never,
  sliding_window: b.slidingWindowRefund as never,
  quota: b.quotaRefund as never,
  sliding_log: undefined,
};

/**
 * The client most services use: one or several limits per subject, decided atomically in Redis
 * (the `multi` script), with what production needs around it — a breaker, timeouts, a fallback
 * to the exact in-memory twin, a local deny cache, leases and metrics. It computes nothing of its
 * own: every decision comes from the Lua scripts or their twin.
 */
export class RateLimiter {
  readonly name: string;
  readonly breaker: CircuitBreaker | null;
  private readonly limits: LimitSpec[];
  private readonly prefix: string;
  private readonly redis: RedisClientLike | undefined;
  private readonly twin: TwinClient;
  private readonly onFailure: OnRedisFailure;
  private readonly share: number;
  private readonly timeoutMs: number;
  private readonly denyCache: DenyCache | null;
  private readonly leases: LeasePool | null;
  private readonly metrics: MetricsHook;
  private readonly clock: () => number;
  private readonly throwWhenFailedClosed: boolean;
  private readonly warnings: string[];
  private readonly onBreakerState: (e: { to: string }) => void;
  private closed = false;
  private readonly unitCosts: number[];

  constructor(options: RateLimiterOptions) {
    this.limits = validateConfig(options);
    this.unitCosts = this.limits.map(() => 1);
    this.prefix = options.prefix ?? 'rl';
    this.name = options.name ?? this.prefix;
    this.redis = options.redis;
    this.clock = options.clock ?? Date.now;
    this.twin = new TwinClient({ clock: this.clock });
    this.onFailure = options.onRedisFailure ?? 'fallback';
    this.share = options.fallbackShare ?? 1;
    this.timeoutMs = options.timeoutMs ?? 100;
    this.throwWhenFailedClosed = options.throwWhenFailedClosed ?? false;
    this.metrics = options.metrics ?? {};
    const dc = options.denyCache ?? true;
    this.denyCache = dc ? new DenyCache(typeof dc === 'object' ? dc.maxEntries : undefined) : null;
    this.warnings = this.redis ? clientWarnings(this.redis) : ['no redis given: every decision comes from the in-memory twin'];
    if (this.redis && options.breaker instanceof CircuitBreaker) this.breaker = options.breaker;
    else if (this.redis) {
      const { breaker, conflict } = breakerFor(this.redis, options.breaker as BreakerOptions | undefined);
      this.breaker = breaker;
      if (conflict) this.warnings.push('this connection already has a breaker with other options; it is shared, so those options apply');
    } else this.breaker = null;
    this.onBreakerState = ({ to }) => {
      this.metrics.breakerState?.({ limiter: this.name, state: to as 'open' });
      // Redis is authoritative again: what the fallback counted meanwhile is dropped.
      if (to === 'closed') this.twin.store.clear();
    };
    this.breaker?.on('state', this.onBreakerState);
    this.leases = options.lease
      ? new LeasePool(options.lease.size, options.lease.ttlMs ?? 5_000, this.clock, (subject, units) => this.refund(subject, { cost: units }))
      : null;
  }

  /** Decide one call for `subject`, consuming `cost` if admitted. Never throws for Redis trouble. */
  limit(subject: Subject, options?: { cost?: Cost }): Promise<Decision> {
    const started = this.clock();
    // Hot path: a plain id spending from its local lease, with nothing to allocate or await.
    const cost = options?.cost;
    if (this.leases && typeof subject === 'string' && (cost === undefined || typeof cost === 'number')) {
      try {
        const units = cost === undefined ? 1 : this.costs(cost)[0]!;
        const s = resolveSubject(subject);
        const sid = subjectId(s);
        const local = this.leases.take(sid, units, started);
        if (local !== null) {
          if (this.leases.wantsRefill(sid)) this.leases.refill(sid, this.takeBatch(s, sid));
          return Promise.resolve(this.report(this.allowedLocally(local, 'lease'), started));
        }
      } catch (err) {
        return Promise.reject(err); // bad input: a rejected promise, as from every other path
      }
    }
    return this.limitSlow(subject, cost, started);
  }

  private async limitSlow(subject: Subject, cost: Cost | undefined, started: number): Promise<Decision> {
    const s = resolveSubject(subject);
    const costs = this.costs(cost);
    const sid = subjectId(s);

    const cached = this.denyCache?.check(sid, costs, started);
    if (cached) return this.report(this.denied(cached.retryAfterMs, cached.deniedBy, 'deny-cache'), started);

    if (this.leases && typeof cost !== 'object') {
      const batch = await this.takeBatch(s, sid, costs[0]!);
      if (batch) return this.report(batch, started);
    }

    const decision = await this.decide(s, costs, true);
    if (!decision.allowed && decision.source === 'redis') this.denyCache?.remember(sid, costs, decision, started);
    return this.report(decision, started);
  }

  /** Like limit(), but throws RateLimitedError (with the decision) when denied. */
  async limitOrThrow(subject: Subject, options: { cost?: Cost } = {}): Promise<Decision> {
    const d = await this.limit(subject, options);
    if (!d.allowed) throw new RateLimitedError(d);
    return d;
  }

  /** What limit() would answer now, consuming nothing (read-only script: may run on a replica). */
  async peek(subject: Subject, options: { cost?: Cost } = {}): Promise<Decision> {
    return this.decide(resolveSubject(subject), this.costs(options.cost ?? 0), false);
  }

  /**
   * Back to full for every limit of `subject`; lifts a block. Applied to the fallback too; if
   * Redis cannot take it, throws RedisUnavailableError (the caller should know it did not land).
   */
  async reset(subject: Subject): Promise<void> {
    const s = resolveSubject(subject);
    this.forget(s);
    const keys = [...this.limits.map((l) => limitKey(this.prefix, s, l)), blockKey(this.prefix, s)];
    await b.reset(this.twin, { keys });
    if (this.redis) await this.call((c) => b.reset(c, { keys })).catch(unavailable('reset'));
  }

  /**
   * Give back units an admitted call did not use (never above full); sliding_log cannot refund.
   * The refund goes to whichever side decides now: Redis, or the fallback while Redis cannot
   * (where a call admitted during the outage took its units). It never throws for Redis trouble.
   */
  async refund(subject: Subject, options: { cost?: Cost } = {}): Promise<void> {
    const s = resolveSubject(subject);
    const costs = this.costs(options.cost);
    this.denyCache?.forget(subjectId(s));
    const run = async (client: RedisClientLike, share: number) => {
      for (const [i, l] of this.limits.entries()) {
        const fn = REFUND[l.algo];
        if (fn && costs[i]! > 0) await fn(client, { key: limitKey(this.prefix, s, l), ...this.params(l, share), cost: costs[i]! } as never);
      }
    };
    if (this.redis) {
      const ok = await this.call((c) => run(c, 1)).then(() => true, () => false);
      if (ok) return;
    }
    await run(this.twin, this.share);
  }

  /**
   * Deny `subject` for `durationMs` whatever its limits say (0 lifts the block). Applied to the
   * fallback too; throws RedisUnavailableError if Redis cannot take it.
   */
  async block(subject: Subject, durationMs: number): Promise<void> {
    const s = resolveSubject(subject);
    this.forget(s);
    const args = { key: blockKey(this.prefix, s), durationMs };
    await b.block(this.twin, args);
    if (this.redis) await this.call((c) => b.block(c, args)).catch(unavailable('block'));
  }

  /**
   * Wait for capacity instead of being denied: books the next slot fleet-wide (gcra_reserve) and
   * resolves when it is due — no polling. Needs a limiter with one gcra limit. If the wait would
   * pass maxWaitMs, or the subject is blocked, resolves denied at once. Aborting after a booking
   * gives the units back.
   */
  async acquire(subject: Subject, options: { cost?: number; maxWaitMs?: number; signal?: AbortSignal } = {}): Promise<Decision> {
    const l = this.limits[0]!;
    if (this.limits.length !== 1 || l.algo !== 'gcra') throw new InvalidConfigError('acquire needs a limiter with exactly one gcra limit');
    const s = resolveSubject(subject);
    options.signal?.throwIfAborted();
    const cost = this.costs(options.cost)[0]!;
    const bucket = (share: number) => this.params(l, share) as { limit: number; periodMs: number; burst: number };
    const args = { key: limitKey(this.prefix, s, l), ...bucket(1), cost, maxWaitMs: options.maxWaitMs ?? 0 };
    const penalty = [{ key: blockKey(this.prefix, s), algo: 'block' as const }];
    let source: DecisionSource = 'redis';
    let r: b.GcraReserveResult;
    try {
      // A blocked subject books nothing (the block check is read-only, then the booking).
      const blocked = await this.call((c) => b.multiPeek(c, { limits: penalty }));
      if (!blocked.allowed) return this.denied(blocked.retryAfterMs, 'block', 'redis');
      r = await this.call((c) => b.gcraReserve(c, args));
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw err;
      source = 'fallback';
      const blocked = await b.multiPeek(this.twin, { limits: penalty });
      if (!blocked.allowed) return this.denied(blocked.retryAfterMs, 'block', 'fallback');
      r = await b.gcraReserve(this.twin, { ...args, ...bucket(this.share) });
    }
    const decision: Decision = {
      allowed: r.allowed,
      remaining: r.remaining,
      limit: this.params(l, 1).limit,
      resetAfterMs: r.resetAfterMs,
      retryAfterMs: r.retryAfterMs,
      deniedBy: r.allowed ? null : l.name,
      source,
      limits: [{ name: l.name, allowed: r.allowed, remaining: r.remaining, limit: l.limit, resetAfterMs: r.resetAfterMs, retryAfterMs: r.retryAfterMs }],
    };
    if (!r.allowed || r.waitMs === 0) return decision;
    try {
      await sleep(r.waitMs, options.signal);
    } catch (err) {
      await this.refund(subject, { cost }).catch(() => {});
      throw err;
    }
    return decision;
  }

  stats(): LimiterStats {
    return {
      breaker: this.breaker?.stats() ?? null,
      denyCacheEntries: this.denyCache?.size ?? 0,
      leases: this.leases?.stats() ?? { subjects: 0, units: 0 },
      fallbackKeys: this.twin.store.size,
      warnings: [...this.warnings],
    };
  }

  /** Returns unused leased units and stops timers. Does not close the Redis client you passed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.breaker?.off('state', this.onBreakerState);
    await this.leases?.close();
  }

  // --- internals -----------------------------------------------------------------------------

  private costs(cost: Cost | undefined): number[] {
    const check = (v: unknown, what: string) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 1e15) {
        throw new InvalidArgumentError('limiter', 'cost', `${what} must be an integer between 0 and 1e15, got ${String(v)}`);
      }
      return v;
    };
    if (cost === undefined) return this.unitCosts;
    if (typeof cost === 'number') return this.limits.map(() => check(cost, 'cost'));
    if (typeof cost !== 'object' || cost === null) throw new InvalidArgumentError('limiter', 'cost', 'cost must be a number or { [limitName]: number }');
    for (const k of Object.keys(cost)) {
      if (!this.limits.some((l) => l.name === k)) throw new InvalidArgumentError('limiter', 'cost', `cost names limit ${k}, which this limiter does not have`);
    }
    return this.limits.map((l) => check(cost[l.name] ?? 1, `cost.${l.name}`));
  }

  /** A limit's parameters for the scripts, divided by `share` for the fallback. */
  private params(l: LimitSpec, share: number) {
    const div = (n: number) => Math.max(1, Math.floor(n / share));
    switch (l.algo) {
      case 'gcra':
      case 'token_bucket':
        return { limit: div(l.limit), periodMs: l.periodMs, burst: div(l.burst ?? l.limit) };
      case 'fixed_window':
        return { limit: div(l.limit), periodMs: l.periodMs, offsetMs: l.offsetMs ?? 0 };
      case 'quota':
        return { limit: div(l.limit), unit: l.unit, utcOffsetMs: l.utcOffsetMs ?? 0 };
      default:
        return { limit: div(l.limit), periodMs: l.periodMs };
    }
  }

  private items(s: ReturnType<typeof resolveSubject>, costs: number[], share: number): b.MultiItem[] {
    return [
      { key: blockKey(this.prefix, s), algo: 'block' },
      ...this.limits.map((l, i): b.MultiItem => {
        const p = this.params(l, share) as Record<string, unknown>;
        const item: b.MultiItem = { key: limitKey(this.prefix, s, l), algo: l.algo, limit: p.limit as number, cost: costs[i]! };
        if (p.periodMs !== undefined) item.periodMs = p.periodMs as number;
        if (p.burst !== undefined) item.burst = p.burst as number;
        if (l.algo === 'fixed_window') item.offsetMs = p.offsetMs as number;
        if (l.algo === 'quota') {
          item.unit = l.unit;
          item.offsetMs = p.utcOffsetMs as number;
        }
        return item;
      }),
    ];
  }

  /** Runs `work` on Redis through the breaker, readiness check and deadline. Throws on failure. */
  private async call<T>(work: (client: RedisClientLike) => Promise<T>): Promise<T> {
    const client = this.redis!;
    if (!this.breaker!.tryAcquire()) throw new RedisUnavailableError('redlimit: circuit breaker is open');
    try {
      const started = this.clock();
      await whenReady(client, this.timeoutMs);
      const result = await withTimeout(work(client), Math.max(1, this.timeoutMs - (this.clock() - started)));
      this.breaker!.success();
      return result;
    } catch (err) {
      if (err instanceof InvalidArgumentError) {
        this.breaker!.success(); // the caller's mistake, not Redis'
        throw err;
      }
      // A key holding something else (WRONGTYPE, foreign state) is that key's problem: Redis
      // answered, so the breaker hears a success; this call still takes the failure path.
      if (err instanceof ScriptError && /WRONGTYPE|does not hold/.test(err.redisMessage)) this.breaker!.success();
      else this.breaker!.failure(err);
      this.metrics.redisError?.({ limiter: this.name, reason: errorReason(err) });
      throw err;
    }
  }

  /** One decision over all limits: Redis when it can, else the configured failure path. */
  private async decide(s: ReturnType<typeof resolveSubject>, costs: number[], consume: boolean): Promise<Decision> {
    const run = consume ? b.multi : b.multiPeek;
    if (this.redis) {
      try {
        return this.fromMulti(await this.call((c) => run(c, { limits: this.items(s, costs, 1) })), 'redis', 1);
      } catch (err) {
        if (err instanceof InvalidArgumentError) throw err;
        if (this.onFailure === 'open') return this.allowedLocally(null, 'fail-open');
        if (this.onFailure === 'closed') {
          if (this.throwWhenFailedClosed) throw new RedisUnavailableError('redlimit: Redis unavailable and the limiter fails closed', { cause: err });
          return this.denied(0, null, 'fail-closed');
        }
      }
    }
    return this.fromMulti(await run(this.twin, { limits: this.items(s, costs, this.share) }), 'fallback', this.share);
  }

  private fromMulti(r: b.MultiResult, source: DecisionSource, share: number): Decision {
    const limits: LimitResult[] = this.limits.map((l, i) => {
      const x = r.limits[i + 1]!;
      return { name: l.name, allowed: x.allowed, remaining: x.remaining, limit: this.params(l, share).limit, resetAfterMs: x.resetAfterMs, retryAfterMs: x.retryAfterMs };
    });
    let tightest = limits[0]!;
    for (const x of limits) if (x.remaining / x.limit < tightest.remaining / tightest.limit) tightest = x;
    return {
      allowed: r.allowed,
      remaining: tightest.remaining,
      limit: tightest.limit,
      resetAfterMs: Math.max(...limits.map((x) => x.resetAfterMs)),
      retryAfterMs: r.retryAfterMs,
      deniedBy: r.allowed ? null : r.deniedIndex === 1 ? 'block' : this.limits[r.deniedIndex - 2]!.name,
      source,
      limits,
    };
  }

  private allowedLocally(remaining: number | null, source: DecisionSource): Decision {
    const l = this.limits[0]!;
    return { allowed: true, remaining: remaining ?? l.limit, limit: l.limit, resetAfterMs: 0, retryAfterMs: 0, deniedBy: null, source, limits: [] };
  }

  private denied(retryAfterMs: number, deniedBy: string | null, source: DecisionSource): Decision {
    return { allowed: false, remaining: 0, limit: this.limits[0]!.limit, resetAfterMs: 0, retryAfterMs, deniedBy, source, limits: [] };
  }

  /** A batch of lease units from Redis; answers this call from it. Null if none could be taken. */
  private async takeBatch(s: ReturnType<typeof resolveSubject>, sid: string, forCost = 0): Promise<Decision | null> {
    const size = Math.max(this.leases!.size, forCost);
    try {
      const r = await this.call((c) => b.multi(c, { limits: this.items(s, this.limits.map(() => size), 1) }));
      if (!r.allowed) return null;
      const left = this.leases!.add(sid, s, size - forCost);
      return this.allowedLocally(left, forCost > 0 ? 'redis' : 'lease');
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw err;
      return null;
    }
  }

  private forget(s: ReturnType<typeof resolveSubject>): void {
    const sid = subjectId(s);
    this.denyCache?.forget(sid);
    this.leases?.drop(sid);
  }

  private report(d: Decision, started: number): Decision {
    if (this.metrics.decision) this.metrics.decision({ limiter: this.name, outcome: d.allowed ? 'allowed' : 'denied', source: d.source, latencyMs: this.clock() - started });
    return d;
  }
}

function unavailable(operation: string) {
  return (err: unknown): never => {
    if (err instanceof InvalidArgumentError || err instanceof RedisUnavailableError) throw err;
    throw new RedisUnavailableError(`redlimit: ${operation} did not reach Redis: ${(err as Error).message}`, { cause: err });
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason ?? new Error('aborted'));
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  return new RateLimiter(options);
}
