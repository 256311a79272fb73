import * as b from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError, RateLimitedError } from '../errors.js';
import { hashSlot, intArg, slotOwner, type RedisClientLike } from '../runtime/index.js';
import { booking, sleep, type AcquireOptions, type Booking } from './acquire.js';
import type { BreakerStats, CircuitBreaker } from './breaker.js';
import { Changes } from './changes.js';
import { Coalescer } from './coalescer.js';
import { validateConfig, type LimitSpec, type RateLimiterOptions } from './config.js';
import { connect } from './connect.js';
import type { Decision } from './decision.js';
import { DenyCache } from './deny-cache.js';
import { Fallback } from './fallback.js';
import { Invalidation } from './invalidation.js';
import { LeasePool } from './leases.js';
import type { MetricsHook } from './metrics.js';
import { compileLimit, valuesWith, argvWith, type LimitPlan } from './plan.js';
import { FailurePolicy, isCallerError, unavailable } from './policy.js';
import type { RedisPath } from './redis-path.js';
import { Shape } from './shape.js';
import { Subjects, type Target } from './subjects.js';
import type { Subject } from './keys.js';

/** Cost of a call: one number for every limit, or per limit name (missing names cost 1; in a refund, 0). */
export type Cost = number | Record<string, number>;

export interface LimiterStats {
  breaker: BreakerStats | null;
  /** On a Cluster: the breaker of each primary ("host:port") this limiter has called. */
  nodes: Record<string, BreakerStats>;
  denyCacheEntries: number;
  leases: { subjects: number; units: number };
  fallbackKeys: number;
  /** Whether this limiter hears of changes made elsewhere right now (resets, refunds, blocks; DELs with keyspace events). */
  invalidation: { subscribed: boolean; keyEvents: boolean };
  warnings: string[];
}

/**
 * The client most services use: one or several limits per subject, decided atomically in Redis,
 * with what production needs around it. It computes nothing of its own — every decision comes
 * from the Lua scripts or their twin — and composes small steps, each with one job:
 *
 *   subjects (keys) → lease → deny cache → coalescer → Redis path → failure policy → fallback twin
 *
 * How decisions travel (a limit's own script, batch, multi, multi_batch) and how replies decode
 * are compiled once into the Shape; every method differs only in what it asks.
 */
export class RateLimiter {
  readonly name: string;
  readonly breaker: CircuitBreaker | null;
  /** The limits as configured. */
  readonly limits: readonly LimitSpec[];
  private readonly plans: LimitPlan[];
  private readonly shape: Shape;
  private readonly subjects: Subjects;
  private readonly fallback: Fallback;
  private readonly policy: FailurePolicy;
  private readonly path: RedisPath | null;
  private readonly coalescer: Coalescer | null;
  private readonly changes: Changes;
  private readonly invalidation: Invalidation | null;
  private readonly denyCache: DenyCache | null;
  private readonly leases: LeasePool | null;
  private readonly metrics: MetricsHook;
  private readonly clock: () => number;
  private readonly blocks: boolean;
  private readonly warnings: string[];
  private readonly unitCosts: number[];
  private readonly prepared: Promise<void>;
  private readonly onBreakerState: (e: { to: string }) => void;
  private closed = false;
  private subscribedBefore = false;

  constructor(options: RateLimiterOptions) {
    const limits = validateConfig(options);
    this.limits = Object.freeze([...limits]);
    const share = options.fallbackShare ?? 1;
    this.plans = limits.map((l) => compileLimit(l, share));
    this.unitCosts = this.plans.map(() => 1);
    const prefix = options.prefix ?? 'rl';
    this.name = options.name ?? prefix;
    this.clock = options.clock ?? Date.now;
    this.blocks = options.blocks ?? false;
    this.metrics = options.metrics ?? {};
    this.shape = new Shape(this.plans, this.blocks);
    const redis = options.redis as RedisClientLike | undefined;
    const conn = redis ? connect(redis, options, this.plans, { onError: (reason) => this.metrics.redisError?.({ limiter: this.name, reason }), onNodeState: (n, to) => this.onNodeState(n, to) }) : null;
    this.path = conn?.path ?? null;
    this.breaker = conn?.breaker ?? null;
    this.warnings = conn?.warnings ?? ['no redis given: every decision comes from the in-memory twin'];
    this.prepared = conn?.prepared ?? Promise.resolve();
    this.subjects = new Subjects(prefix, this.plans, this.blocks, conn?.cluster ?? false);
    this.changes = new Changes(() => this.dropLocal());
    this.fallback = new Fallback(this.plans, this.shape, share, this.clock, conn !== null, this.changes);
    this.policy = new FailurePolicy(options.onRedisFailure ?? 'fallback', options.throwWhenFailedClosed ?? false, this.breaker, this.shape.decode);
    this.coalescer = this.path && (options.coalesce ?? true) ? new Coalescer((def, keys, argv, slot) => this.path!.run(def, keys, argv, slot), this.shape.batch) : null;
    // Changes made elsewhere reach every local cache: the scripts publish the keys they change.
    this.invalidation = redis ? new Invalidation(redis, (key) => this.changed(key), {
          prefix: `${prefix}:{`,
          // Back after a loss: what was announced meanwhile is unknown, so nothing held is trusted.
          onHealthChange: (up) => {
            if (up && this.subscribedBefore) this.dropLocal();
            if (up) this.subscribedBefore = true;
          },
        }) : null;
    this.invalidation?.start();
    const dc = options.denyCache ?? true;
    const hold = typeof dc === 'object' ? dc.maxHoldMs : undefined;
    // A denial is held until its retry time only while every change, a DEL by hand included
    // (keyspace events), is announced; otherwise at most 100 ms, the bound for unannounced changes.
    const maxHold = () => hold ?? (this.invalidation?.healthy() && this.invalidation.keyEvents() ? Infinity : 100);
    this.denyCache = dc ? new DenyCache(this.changes, maxHold, typeof dc === 'object' ? dc.maxEntries : undefined) : null;
    this.leases = options.lease ? new LeasePool(options.lease.size, options.lease.ttlMs ?? 5_000, this.clock, (s, units) => this.refund(s, { cost: units }), this.changes) : null;
    this.onBreakerState = ({ to }) => {
      this.metrics.breakerState?.({ limiter: this.name, state: to as 'open' });
      if (to === 'closed') this.fallback.twin.store.clear(); // Redis is authoritative again
    };
    this.breaker?.on('state', this.onBreakerState);
  }

  /** Resolves once the client is ready and prepared (server checked, scripts or Functions loaded). Optional. */
  ready(): Promise<void> {
    return this.prepared;
  }

  /** Decide one call for `subject`, consuming `cost` if admitted. Never throws for Redis trouble. */
  limit(subject: Subject, options?: { cost?: Cost }): Promise<Decision> {
    const started = this.clock();
    let t: Target;
    let costs: number[];
    try {
      t = this.subjects.resolve(subject);
      costs = this.costs(options?.cost);
    } catch (err) {
      return Promise.reject(err); // bad input: a rejected promise, as from every other path
    }
    if (!this.path) return Promise.resolve(this.report(this.fallback.decide(t, costs, true, started), started)); // no Redis: decided now
    // Leases hold the same number of units of every limit (a per-limit cost object skips them),
    // and are spent only while a block or reset made elsewhere reaches this instance.
    const leased = this.leases !== null && typeof options?.cost !== 'object' && this.invalidation!.healthy();
    if (leased) {
      const left = this.leases!.take(t, costs[0]!, started);
      if (left !== null) {
        if (this.leases!.wantsRefill(t.ident)) this.leases!.refill(t.ident, this.takeBatch(t, 0));
        return Promise.resolve(this.report(this.shape.decode.lease(left), started));
      }
    }
    const cached = this.denyCache?.check(t, costs, started);
    if (cached) return Promise.resolve(this.report(cached, started));
    const decided = leased ? this.takeBatch(t, costs[0]!).then((d) => d ?? this.decide(t, costs)) : this.decide(t, costs);
    return decided.then((d) => {
      if (d.source === 'redis') {
        this.fallback.learn(t, d, started);
        if (!d.allowed) this.denyCache?.remember(t, costs, d, started);
      }
      return this.report(d, started);
    });
  }

  /** Like limit(), but throws RateLimitedError (with the decision) when denied. */
  async limitOrThrow(subject: Subject, options: { cost?: Cost } = {}): Promise<Decision> {
    const d = await this.limit(subject, options);
    if (!d.allowed) throw new RateLimitedError(d);
    return d;
  }

  /** What limit() would answer now, consuming nothing (read-only scripts: may run on a replica). */
  async peek(subject: Subject, options: { cost?: Cost } = {}): Promise<Decision> {
    const t = this.subjects.resolve(subject);
    const costs = this.costs(options.cost ?? 0);
    const call = this.shape.peek(costs);
    return this.viaRedis(
      (path) => path.run(call.def, t.keys, call.argv, t.slot).then((r) => this.shape.decide(call, r as number[], 'redis')),
      () => this.fallback.decide(t, costs, false),
    );
  }

  /**
   * Back to full for what belongs to `subject`: by default the limits keyed by its own id (not
   * those it shares with others through a scope, e.g. a team's or an org's budget) and its
   * block. Name limits (`limits`) or scopes (`scopes`: every limit keyed by that scope) to reset
   * exactly those. Applied to the fallback too; every other instance drops what it holds for
   * these keys (the script publishes them). Throws RedisUnavailableError if Redis cannot take it.
   */
  async reset(subject: Subject, options: { limits?: readonly string[]; scopes?: readonly string[] } = {}): Promise<void> {
    const t = this.subjects.resolve(subject);
    const keys = this.resetKeys(t, options);
    this.forget(t);
    this.fallback.twin.runParsed(b.resetScript, keys, {});
    if (this.path) await this.announced(keys, this.path.run(b.resetScript, keys, [], t.slot)).catch(unavailable('reset'));
  }

  /**
   * Give back units an admitted call did not use (never above full); sliding_log cannot refund.
   * A number refunds that many units of every limit; an object only the limits it names (an
   * RPM + TPM limiter refunding unused tokens names `tpm` and gives back no request). The refund
   * goes to whichever side decides now: Redis, or the fallback while Redis cannot. Never throws
   * for Redis trouble.
   */
  async refund(subject: Subject, options: { cost?: Cost } = {}): Promise<void> {
    const t = this.subjects.resolve(subject);
    const costs = this.costs(options.cost, 0);
    this.forget(t);
    const refunds = this.plans.flatMap((p, i) => (p.refund && costs[i]! > 0 ? [{ p, i }] : []));
    const onTwin = () => {
      for (const { p, i } of refunds) this.fallback.twin.runParsed(p.fallback.refund!.def, [t.keys[i]!], valuesWith(p.fallback.refund!, costs[i]!));
    };
    if (!this.path) return onTwin();
    const sent = refunds.map(({ p, i }) => this.announced([t.keys[i]!], this.path!.run(p.refund!.def, [t.keys[i]!], argvWith(p.refund!, costs[i]!), t.slot)));
    const landed = await Promise.all(sent).then(
      () => true,
      (err: unknown) => {
        if (isCallerError(err)) throw err;
        return false;
      },
    );
    if (!landed) onTwin();
  }

  /**
   * Deny `subject` for `durationMs` whatever its limits say (0 lifts the block). Needs
   * `blocks: true`, which makes every decision check the block atomically with the limits.
   * Applied to the fallback too; throws RedisUnavailableError if Redis cannot take it.
   */
  async block(subject: Subject, durationMs: number): Promise<void> {
    if (!this.blocks) throw new InvalidConfigError('block() needs a limiter created with blocks: true (every decision then checks the block atomically)');
    const t = this.subjects.resolve(subject);
    this.forget(t);
    const key = [this.subjects.blockKey(t)];
    const argv = [intArg(b.blockScript.name, b.blockScript.args[0]!, durationMs, 'durationMs')];
    this.fallback.twin.runParsed(b.blockScript, key, { duration_ms: durationMs });
    if (this.path) await this.announced(key, this.path.run(b.blockScript, key, argv, t.slot)).catch(unavailable('block'));
  }

  /**
   * Wait for capacity instead of being denied: books the next slot fleet-wide (gcra_reserve) and
   * resolves when it is due — no polling. Needs a limiter with one gcra limit. If the wait would
   * pass maxWaitMs, or the subject is blocked, resolves denied at once. Aborting after a booking
   * gives the units back.
   */
  async acquire(subject: Subject, options: AcquireOptions = {}): Promise<Decision> {
    const p = this.plans[0]!;
    if (this.plans.length !== 1 || p.algo !== 'gcra') throw new InvalidConfigError('acquire needs a limiter with exactly one gcra limit');
    const t = this.subjects.resolve(subject);
    options.signal?.throwIfAborted();
    const book = booking(p, t, this.blocks ? this.subjects.blockKey(t) : null, options, this.shape.decode);
    const result = await this.viaRedis<Booking>(book.onRedis, () => book.onTwin(this.fallback), (d) => ({ d, waitMs: 0 }));
    if (!result.d.allowed || result.waitMs === 0) return result.d;
    try {
      await sleep(result.waitMs, options.signal);
    } catch (err) {
      await this.refund(subject, { cost: book.cost }).catch(() => {});
      throw err;
    }
    return result.d;
  }

  /** The breakers of the Cluster primaries this limiter has called. */
  nodeBreakers(): CircuitBreaker[] {
    return [...(this.path?.nodeBreakers.values() ?? [])];
  }

  stats(): LimiterStats {
    return {
      breaker: this.breaker?.stats() ?? null,
      nodes: Object.fromEntries([...(this.path?.nodeBreakers ?? [])].map(([node, nb]) => [node, nb.stats()])),
      denyCacheEntries: this.denyCache?.size ?? 0,
      leases: this.leases?.stats() ?? { subjects: 0, units: 0 },
      fallbackKeys: this.fallback.twin.store.size,
      invalidation: { subscribed: this.invalidation?.healthy() ?? false, keyEvents: this.invalidation?.keyEvents() ?? false },
      warnings: [...this.warnings],
    };
  }

  /** Returns unused leased units and stops timers. Does not close the Redis client you passed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.breaker?.off('state', this.onBreakerState);
    await this.leases?.close();
    this.path?.close();
    await this.invalidation?.close();
  }

  // --- steps ---------------------------------------------------------------------------------

  /** Every Redis call's failure path: Redis when it can, else the policy (fallback, open, closed). */
  private viaRedis<T>(onRedis: (path: RedisPath) => Promise<T>, onFallback: () => T, wrap: (d: Decision) => T = (d) => d as T): Promise<T> {
    if (!this.path) return Promise.resolve().then(onFallback);
    return onRedis(this.path).catch((err: unknown) => this.policy.answer(err, onFallback, wrap));
  }

  /** One decision over all limits: coalesced with the turn's others when it can be, else alone. */
  private decide(t: Target, costs: number[]): Promise<Decision> {
    const fallback = () => this.fallback.decide(t, costs, true);
    if (!this.coalescer) return this.viaRedis((path) => this.consumeOnRedis(path, t, costs), fallback);
    return new Promise<Decision>((resolve, reject) => {
      this.coalescer!.add(t.slot, {
        keys: t.keys,
        costs: this.shape.costStrings(costs),
        done: (r, o) => resolve(this.shape.decideAt(r, o, 'redis')),
        fail: (err) => {
          try {
            resolve(this.policy.answer(err, fallback, (d) => d));
          } catch (e) {
            reject(e);
          }
        },
      });
    });
  }

  private consumeOnRedis(path: RedisPath, t: Target, costs: readonly number[]): Promise<Decision> {
    const call = this.shape.consume(costs);
    return path.run(call.def, t.keys, call.argv, t.slot).then((r) => this.shape.decide(call, r as number[], 'redis'));
  }

  /** A batch of lease units from Redis (every limit takes `size`, or `forCost` if larger); answers a call of `forCost` from it. Null if none. */
  private takeBatch(t: Target, forCost: number): Promise<Decision | null> {
    const pool = this.leases!;
    const size = Math.max(pool.size, forCost);
    const sentAt = this.clock();
    const fetched = this.consumeOnRedis(this.path!, t, this.plans.map(() => size)).catch((err: unknown) => {
      if (isCallerError(err)) throw err;
      return null;
    });
    return pool.track(fetched).then((d) => {
      if (!d || !d.allowed) return null;
      const left = pool.add(t.ident, t.s, size - forCost, sentAt);
      return forCost > 0 ? { ...d, remaining: left, source: 'redis' as const, limits: [] } : this.shape.decode.lease(left);
    });
  }

  /** Per-limit costs in plan order; limits an object does not name cost `unnamed`. */
  private costs(cost: Cost | undefined, unnamed = 1): number[] {
    if (cost === undefined) return this.unitCosts;
    const check = (v: unknown, i: number, label: string) => {
      const c = this.plans[i]!.consume;
      intArg(c.def.name, c.def.args[c.costIndex]!, v as number, label);
      return v as number;
    };
    if (typeof cost === 'number') return this.plans.map((_, i) => check(cost, i, 'cost'));
    if (typeof cost !== 'object' || cost === null) throw new InvalidArgumentError('limiter', 'cost', 'cost must be a number or { [limitName]: number }');
    for (const k of Object.keys(cost)) {
      if (!this.plans.some((p) => p.name === k)) throw new InvalidArgumentError('limiter', 'cost', `cost names limit ${k}, which this limiter does not have`);
    }
    return this.plans.map((p, i) => check(Object.hasOwn(cost, p.name) ? cost[p.name] : unnamed, i, `cost.${p.name}`));
  }

  /** The keys a reset clears: the limits keyed by the subject's own id and its block (default), or exactly those named. */
  private resetKeys(t: Target, o: { limits?: readonly string[]; scopes?: readonly string[] }): string[] {
    const named = (list: unknown, what: 'limits' | 'scopes', known: (n: string) => boolean) => {
      if (list === undefined) return null;
      if (!Array.isArray(list) || list.length === 0) throw new InvalidArgumentError('limiter', what, `reset ${what} must be a non-empty array of names`);
      for (const n of list) if (!known(n)) throw new InvalidArgumentError('limiter', what, `reset names ${what === 'limits' ? 'limit' : 'scope'} ${JSON.stringify(n)}, which no limit of this limiter has`);
      return new Set<string>(list);
    };
    const names = named(o?.limits, 'limits', (n) => this.plans.some((p) => p.name === n));
    const scopes = named(o?.scopes, 'scopes', (n) => this.plans.some((p) => (p.scope ?? 'id') === n));
    const own = names === null && scopes === null;
    const keys = t.keys.filter((_, i) => i < this.plans.length && (own ? this.plans[i]!.scope === null : names?.has(this.plans[i]!.name) || scopes?.has(this.plans[i]!.scope ?? 'id')));
    if (this.blocks && own) keys.push(this.subjects.blockKey(t));
    if (keys.length === 0) throw new InvalidArgumentError('limiter', 'reset', 'every limit of this limiter is keyed by a scope: name the limits or scopes to reset');
    return keys;
  }

  /** Runs this instance's own change of `keys`: their announcements coming back are not news. */
  private announced<T>(keys: readonly string[], run: Promise<T>): Promise<T> {
    if (!this.invalidation?.healthy()) return run;
    const undo = this.changes.expect(keys);
    return run.catch((err: unknown) => {
      undo();
      throw err;
    });
  }

  /** A key changed elsewhere: every local answer older than the change is void. */
  private changed(key: string): void {
    if (!this.changes.heard(key)) return; // our own change, coming back
    this.changes.mark(key, this.clock());
    this.fallback.invalidate(key);
  }

  private forget(t: Target): void {
    this.denyCache?.forget(t.ident);
    this.leases?.drop(t.ident);
    this.fallback.forget(t.ident);
  }

  private dropLocal(): void {
    this.denyCache?.clear();
    this.leases?.dropAll();
    this.fallback.clear();
  }

  /** A Cluster primary's breaker changed state; when it closes, its slots' fallback counts go. */
  private onNodeState(node: string, to: string): void {
    this.metrics.breakerState?.({ limiter: this.name, state: to as 'open' });
    if (to !== 'closed') return;
    const store = this.fallback.twin.store;
    for (const key of [...store.keys()]) if (slotOwner(this.path!.client, hashSlot(key)) === node) store.delete(key);
  }

  private report(d: Decision, started: number): Decision {
    if (this.metrics.decision) {
      const nearLimit = d.allowed && d.limitName !== null && d.remaining * 5 <= d.limit;
      this.metrics.decision({ limiter: this.name, outcome: d.allowed ? 'allowed' : 'denied', source: d.source, latencyMs: this.clock() - started, limit: d.limitName, nearLimit });
    }
    return d;
  }
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  return new RateLimiter(options);
}
