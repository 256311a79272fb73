import * as b from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError, RateLimitedError, RedisUnavailableError } from '../errors.js';
import { hashSlot, intArg, preload, slotOwner, transportFor, type RedisClientLike, type ScriptDef } from '../runtime/index.js';
import { parseScriptArgs, type ArgValues } from '../twin/args.js';
import { TwinClient } from '../twin/client.js';
import { CircuitBreaker, breakerFor, type BreakerOptions, type BreakerStats } from './breaker.js';
import { Coalescer, type BatchShape, type Waiter } from './coalescer.js';
import { validateConfig, type LimitSpec, type OnRedisFailure, type RateLimiterOptions } from './config.js';
import type { Decision, DecisionSource, LimitResult } from './decision.js';
import { DenyCache } from './deny-cache.js';
import { blockKey, limitKey, resolveSubject, slotOf, type Resolved, type Subject } from './keys.js';
import { LeasePool } from './leases.js';
import type { MetricsHook } from './metrics.js';
import { argvWith, batchArgv, compileLimit, pushBlockItem, pushItem, valuesWith, type LimitPlan } from './plan.js';
import { clientWarnings } from './redis-call.js';
import { autoFunctions } from '../runtime/functions.js';
import { detectServer } from '../runtime/server.js';
import { whenReadyEvent } from './redis-call.js';
import { RedisPath } from './redis-path.js';

/** Cost of a call: one number for every limit, or per limit name (missing names cost 1). */
export type Cost = number | Record<string, number>;

export interface LimiterStats {
  breaker: BreakerStats | null;
  /** On a Cluster: the breaker of each primary ("host:port") this limiter has called. */
  nodes: Record<string, BreakerStats>;
  denyCacheEntries: number;
  leases: { subjects: number; units: number };
  fallbackKeys: number;
  warnings: string[];
}

/** A call's subject, resolved, with its keys (in plan order, then the block key) and local identity. */
interface Call {
  s: Resolved;
  keys: string[];
  /** Identity for local caches: two subjects share it exactly when they share every Redis key. */
  ident: string;
  /** Cluster hash slot of every key of the call; -1 on a standalone client. */
  slot: number;
}

/**
 * The client most services use: one or several limits per subject, decided atomically in Redis,
 * with what production needs around it — a breaker, deadlines, a fallback to the exact in-memory
 * twin, a local deny cache, leases, coalescing and metrics. It computes nothing of its own: every
 * decision comes from the Lua scripts or their twin. The configuration is compiled once into a
 * plan (src/client/plan.ts); a call fills in only its keys and costs.
 *
 * How a decision reaches Redis: one limit and no blocks → the limit's own script, or with
 * coalescing (default) the `batch` script for every decision of the same event-loop turn; several
 * limits, or `blocks: true` → the `multi` script, all-or-nothing.
 */
export class RateLimiter {
  readonly name: string;
  readonly breaker: CircuitBreaker | null;
  /** The limits as configured. */
  readonly limits: readonly LimitSpec[];
  private readonly plans: LimitPlan[];
  private readonly prefix: string;
  private readonly redis: RedisClientLike | undefined;
  private readonly path: RedisPath | null;
  private readonly coalescer: Coalescer | null;
  private readonly cluster: boolean;
  private readonly twin: TwinClient;
  private readonly onFailure: OnRedisFailure;
  private readonly denyCache: DenyCache | null;
  private readonly leases: LeasePool | null;
  private readonly metrics: MetricsHook;
  private readonly clock: () => number;
  private readonly throwWhenFailedClosed: boolean;
  private readonly blocks: boolean;
  private readonly warnings: string[];
  private readonly onBreakerState: (e: { to: string }) => void;
  private readonly unitCosts: number[];
  private readonly costSpec: { def: ScriptDef; spec: ScriptDef['args'][number] }[];
  private closed = false;
  private prepared: Promise<void> = Promise.resolve();
  private readonly calls = new Map<string, Call>();
  private readonly learned = new Map<string, { at: number; remaining: number[] }>();
  private readonly share: number;

  constructor(options: RateLimiterOptions) {
    const limits = validateConfig(options);
    this.limits = Object.freeze([...limits]);
    const share = options.fallbackShare ?? 1;
    this.share = share;
    this.plans = limits.map((l) => compileLimit(l, share));
    this.unitCosts = this.plans.map(() => 1);
    // Each limit's cost is checked against its own script's range (the header is the source).
    this.costSpec = this.plans.map((p) => ({ def: p.consume.def, spec: p.consume.def.args.find((a) => a.name === 'cost')! }));
    this.prefix = options.prefix ?? 'rl';
    this.name = options.name ?? this.prefix;
    this.redis = options.redis;
    this.clock = options.clock ?? Date.now;
    this.twin = new TwinClient({ clock: this.clock });
    this.onFailure = options.onRedisFailure ?? 'fallback';
    this.throwWhenFailedClosed = options.throwWhenFailedClosed ?? false;
    this.blocks = options.blocks ?? false;
    this.metrics = options.metrics ?? {};
    const dc = options.denyCache ?? true;
    this.denyCache = dc ? new DenyCache(typeof dc === 'object' ? dc.maxEntries : undefined) : null;
    this.warnings = this.redis ? clientWarnings(this.redis) : ['no redis given: every decision comes from the in-memory twin'];
    const tryAgain = (this.redis as { isCluster?: boolean; options?: { retryDelayOnTryAgain?: number } } | undefined)?.options?.retryDelayOnTryAgain;
    if ((this.redis as { isCluster?: boolean } | undefined)?.isCluster && (tryAgain ?? 100) >= (options.timeoutMs ?? 100) / 2) {
      this.warnings.push(`ioredis Cluster retryDelayOnTryAgain is ${tryAgain ?? 100} ms: during a slot migration a call can wait that long, past the limiter's deadline; set it to about 5 ms`);
    }

    if (this.redis) {
      transportFor(this.redis); // refuses anything that is not a supported client, now rather than per call
      this.prepared = this.prepare(options.functions ?? true);
      if (options.breaker instanceof CircuitBreaker) this.breaker = options.breaker;
      else {
        const { breaker, conflict } = breakerFor(this.redis, options.breaker as BreakerOptions | undefined);
        this.breaker = breaker;
        if (conflict) this.warnings.push('this connection already has a breaker with other options; it is shared, so those options apply');
      }
      this.cluster = (this.redis as { isCluster?: boolean }).isCluster === true || Array.isArray((this.redis as { masters?: unknown }).masters);
      this.path = new RedisPath(
        this.redis,
        this.breaker,
        options.timeoutMs ?? 100,
        (reason) => this.metrics.redisError?.({ limiter: this.name, reason }),
        options.breaker instanceof CircuitBreaker ? undefined : options.breaker,
        (node, breaker) => {
          breaker.on('state', ({ to }) => this.onNodeState(node, to));
          // A primary that stops answering may have failed over: ask the client for the current
          // slot owners, so its slots go to the promoted replica (with a breaker of its own).
          breaker.on('open', () => refreshTopology(this.redis!));
        },
      );
    } else {
      this.breaker = null;
      this.path = null;
      this.cluster = false;
    }
    this.coalescer = this.path && (options.coalesce ?? true) ? new Coalescer((def, keys, argv, slot) => this.path!.run(def, keys, argv, slot), this.batchShape()) : null;

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

  /**
   * Resolves once the client is ready and the limiter has prepared it: the server's version
   * checked, Functions loaded or every script loaded on every primary (which also opens each
   * Cluster node's connection). Optional: a decision before then just costs a little more.
   */
  ready(): Promise<void> {
    return this.prepared;
  }

  /** Decide one call for `subject`, consuming `cost` if admitted. Never throws for Redis trouble. */
  limit(subject: Subject, options?: { cost?: Cost }): Promise<Decision> {
    const started = this.clock();
    let call: Call;
    let costs: number[];
    try {
      call = this.resolve(subject);
      costs = this.costs(options?.cost);
    } catch (err) {
      return Promise.reject(err); // bad input: a rejected promise, as from every other path
    }
    // Leases hold the same number of units of every limit: a per-limit cost object skips them.
    const leased = this.leases !== null && typeof options?.cost !== 'object';
    if (leased) {
      const local = this.leases!.take(call.ident, costs[0]!, started);
      if (local !== null) {
        if (this.leases!.wantsRefill(call.ident)) this.leases!.refill(call.ident, this.takeBatch(call, 0));
        return Promise.resolve(this.report(this.leaseDecision(local), started));
      }
    }
    if (!this.path) return Promise.resolve(this.report(this.onTwin(call, costs, true, started), started)); // no Redis: decided now
    if (this.denyCache) {
      const cached = this.denyCache.check(call.ident, costs, started);
      if (cached) return Promise.resolve(this.report(cached, started));
    }
    const decided = leased ? this.takeBatch(call, costs[0]!).then((d) => d ?? this.decide(call, costs)) : this.decide(call, costs);
    return decided.then((d) => {
      if (d.source === 'redis') {
        this.learn(call, d, started);
        if (!d.allowed) this.denyCache?.remember(call.ident, costs, d, started);
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
    const call = this.resolve(subject);
    const costs = this.costs(options.cost ?? 0);
    const onTwin = () => this.onTwin(call, costs, false);
    if (this.plans.length === 1 && !this.blocks) {
      const p = this.plans[0]!;
      return this.viaRedis((path) => path.run(p.peek.def, call.keys, argvWith(p.peek, costs[0]!), call.slot).then((r) => this.fromSingle(r as number[], 0, 'redis', p.limit)), onTwin);
    }
    return this.viaRedis((path) => path.run(b.multiPeekScript, call.keys, this.multiArgv(costs), call.slot).then((r) => this.fromMulti(r as number[], 'redis')), onTwin);
  }

  /**
   * Back to full for what belongs to `subject`: by default the limits keyed by its own id (not
   * those it shares with others through a scope, e.g. a team's or an org's budget), and its
   * block. Name limits (`limits`) or scopes (`scopes`: every limit keyed by that scope) to reset
   * exactly those instead. Applied to the fallback too, and every other instance drops what it
   * holds locally for these keys (the reset script publishes them); if Redis cannot take it,
   * throws RedisUnavailableError (the caller should know it did not land).
   */
  async reset(subject: Subject, options: { limits?: readonly string[]; scopes?: readonly string[] } = {}): Promise<void> {
    const call = this.resolve(subject);
    const keys = this.resetKeys(call, options);
    this.forget(call);
    this.twin.runParsed(b.resetScript, keys, {});
    if (this.path) await this.path.run(b.resetScript, keys, [], call.slot).catch(unavailable('reset'));
  }

  /**
   * Give back units an admitted call did not use (never above full); sliding_log cannot refund.
   * A number refunds that many units of every limit; an object refunds only the limits it names
   * (an RPM + TPM limiter refunding unused tokens names `tpm` and gives back no request).
   * The refund goes to whichever side decides now: Redis, or the fallback while Redis cannot
   * (where a call admitted during the outage took its units). It never throws for Redis trouble.
   */
  async refund(subject: Subject, options: { cost?: Cost } = {}): Promise<void> {
    const call = this.resolve(subject);
    const costs = this.costs(options.cost, 0);
    this.denyCache?.forget(call.ident);
    const refunds = this.plans.flatMap((p, i) => (p.refund && costs[i]! > 0 ? [{ p, i }] : []));
    const onTwin = () => {
      for (const { p, i } of refunds) this.twin.runParsed(p.fallback.refund!.def, [call.keys[i]!], valuesWith(p.fallback.refund!, costs[i]!));
    };
    if (!this.path) return onTwin();
    const landed = await Promise.all(refunds.map(({ p, i }) => this.path!.run(p.refund!.def, [call.keys[i]!], argvWith(p.refund!, costs[i]!), call.slot))).then(
      () => true,
      () => false,
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
    const call = this.resolve(subject);
    this.forget(call);
    const key = [blockKey(this.prefix, call.s)];
    const argv = [intArg(b.blockScript.name, b.blockScript.args[0]!, durationMs, 'durationMs')];
    this.twin.runParsed(b.blockScript, key, { duration_ms: durationMs });
    if (this.path) await this.path.run(b.blockScript, key, argv, call.slot).catch(unavailable('block'));
  }

  /**
   * Wait for capacity instead of being denied: books the next slot fleet-wide (gcra_reserve) and
   * resolves when it is due — no polling. Needs a limiter with one gcra limit. If the wait would
   * pass maxWaitMs, or the subject is blocked, resolves denied at once. Aborting after a booking
   * gives the units back.
   */
  async acquire(subject: Subject, options: { cost?: number; maxWaitMs?: number; signal?: AbortSignal } = {}): Promise<Decision> {
    const p = this.plans[0]!;
    if (this.plans.length !== 1 || p.algo !== 'gcra') throw new InvalidConfigError('acquire needs a limiter with exactly one gcra limit');
    const call = this.resolve(subject);
    options.signal?.throwIfAborted();
    const def = b.gcraReserveScript;
    const cost = options.cost ?? 1;
    const maxWaitMs = options.maxWaitMs ?? 0;
    const argv = [...p.consume.argv.slice(0, 3), intArg(def.name, def.args[3]!, cost, 'cost'), intArg(def.name, def.args[4]!, maxWaitMs, 'maxWaitMs')];
    refusedBefore(def, () => parseScriptArgs(def, [call.keys[0]!], argv)); // every check the script makes (its @checks too), before the round trip
    const values: ArgValues = { ...p.fallback.consume.values, cost, max_wait_ms: maxWaitMs };
    const blocked = (source: DecisionSource, r: number[]) => (r[0] === 1 ? null : this.blockDenied(r[5]!, source));
    const penalty = this.blocks ? [blockKey(this.prefix, call.s)] : null;
    const key = [call.keys[0]!];
    const reserve = (r: number[], source: DecisionSource, limit: number) => ({ d: this.fromSingle(r, 0, source, limit), waitMs: r[4]! });
    const result = await this.viaRedis(
      async (path) => {
        // A blocked subject books nothing (the block check is read-only, then the booking).
        if (penalty) {
          const d = blocked('redis', (await path.run(b.multiPeekScript, penalty, ['', 'block', '', '', '', '', '', ''], call.slot)) as number[]);
          if (d) return { d, waitMs: 0 };
        }
        return reserve((await path.run(def, key, argv, call.slot)) as number[], 'redis', p.limit);
      },
      () => {
        if (penalty) {
          const d = blocked('fallback', this.twin.runParsed(b.multiPeekScript, penalty, {}, [{ algo: 'block', limit: 1, cost: 1, offset_ms: 0 }]));
          if (d) return { d, waitMs: 0 };
        }
        return reserve(this.twin.runParsed(def, key, values), 'fallback', p.fallbackLimit);
      },
      (d) => ({ d, waitMs: 0 }),
    );
    if (!result.d.allowed || result.waitMs === 0) return result.d;
    try {
      await sleep(result.waitMs, options.signal);
    } catch (err) {
      await this.refund(subject, { cost }).catch(() => {});
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
      nodes: Object.fromEntries([...(this.path?.nodeBreakers ?? [])].map(([node, b]) => [node, b.stats()])),
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
    this.path?.close();
  }

  // --- internals -----------------------------------------------------------------------------

  /**
   * Once the client is ready: learn the server's version (Redis before 7.0 is refused with a
   * clear error on every call, which then takes the failure path) and, where it can, switch the
   * client to FCALL (helpers created once at load instead of on every EVALSHA).
   */
  /** A Cluster primary's breaker changed state; when it closes, its slots' fallback counts go. */
  private onNodeState(node: string, to: string): void {
    this.metrics.breakerState?.({ limiter: this.name, state: to as 'open' });
    if (to !== 'closed') return;
    for (const key of [...this.twin.store.keys()]) if (slotOwner(this.redis!, hashSlot(key)) === node) this.twin.store.delete(key);
  }

  private prepare(functions: boolean): Promise<void> {
    const client = this.redis!;
    return new Promise<void>((resolve) => {
      whenReadyEvent(client, () => {
        void detectServer(client)
          .then(async (info) => {
            if (info.unsupported) {
              this.path!.refuse(info.unsupported);
              this.warnings.push(info.unsupported.message);
              process.emitWarning(info.unsupported.message, { code: info.unsupported.code });
              return;
            }
            if (functions && (await autoFunctions(client)) === 'fcall') return;
            // EVALSHA: load this limiter's scripts on every primary now, which also opens the
            // connection to each Cluster node before the first decision needs it.
            await preload(client, this.scripts()).catch(() => {});
          })
          .then(resolve, resolve);
      });
    });
  }

  /** Every script this limiter may run. */
  private scripts(): ScriptDef[] {
    const defs = new Set<ScriptDef>([b.batchScript, b.multiScript, b.multiPeekScript, b.resetScript]);
    for (const p of this.plans) for (const c of [p.consume, p.peek, p.refund]) if (c) defs.add(c.def);
    if (this.blocks) defs.add(b.blockScript);
    return [...defs];
  }


  private resolve(subject: Subject): Call {
    // Plain ids repeat: their keys are built once (a bounded cache of immutable values).
    if (typeof subject === 'string') {
      let call = this.calls.get(subject);
      if (!call) {
        call = this.resolveNew(subject);
        if (this.calls.size >= 10_000) this.calls.clear();
        this.calls.set(subject, call);
      }
      return call;
    }
    return this.resolveNew(subject);
  }

  private resolveNew(subject: Subject): Call {
    const s = resolveSubject(subject);
    const keys: string[] = [];
    for (const p of this.plans) keys.push(limitKey(this.prefix, s, p.name, p.scope));
    if (this.blocks) keys.push(blockKey(this.prefix, s));
    return { s, keys, ident: keys.length === 1 ? keys[0]! : JSON.stringify(keys), slot: this.cluster ? slotOf(s) : -1 };
  }

  /**
   * The keys a reset clears: the limits keyed by the subject's own id and its block (default),
   * or exactly the limits named, by name or by the scope that keys them.
   */
  private resetKeys(call: Call, o: { limits?: readonly string[]; scopes?: readonly string[] }): string[] {
    if (o === null || typeof o !== 'object') throw new InvalidArgumentError('limiter', 'reset', 'reset options must be { limits?, scopes? }');
    const names = o.limits === undefined ? null : new Set(o.limits);
    const scopes = o.scopes === undefined ? null : new Set(o.scopes);
    for (const [list, what] of [[names, 'limits'], [scopes, 'scopes']] as const) {
      if (list !== null && (!Array.isArray(what === 'limits' ? o.limits : o.scopes) || list.size === 0)) {
        throw new InvalidArgumentError('limiter', what, `reset ${what} must be a non-empty array of names`);
      }
    }
    for (const n of names ?? []) {
      if (!this.plans.some((p) => p.name === n)) throw new InvalidArgumentError('limiter', 'limits', `reset names limit ${JSON.stringify(n)}, which this limiter does not have`);
    }
    for (const sc of scopes ?? []) {
      if (!this.plans.some((p) => (p.scope ?? 'id') === sc)) throw new InvalidArgumentError('limiter', 'scopes', `reset names scope ${JSON.stringify(sc)}, which no limit of this limiter is keyed by`);
    }
    const keys: string[] = [];
    this.plans.forEach((p, i) => {
      const chosen = names === null && scopes === null ? p.scope === null : names?.has(p.name) === true || scopes?.has(p.scope ?? 'id') === true;
      if (chosen) keys.push(call.keys[i]!);
    });
    if (this.blocks && names === null && scopes === null) keys.push(call.keys[this.plans.length]!);
    if (keys.length === 0) throw new InvalidArgumentError('limiter', 'reset', 'every limit of this limiter is keyed by a scope: name the limits or scopes to reset');
    return keys;
  }

  /** Per-limit costs in plan order; limits an object does not name cost `unnamed`. */
  private costs(cost: Cost | undefined, unnamed = 1): number[] {
    if (cost === undefined) return this.unitCosts;
    const check = (v: unknown, i: number, label: string) => {
      const { def, spec } = this.costSpec[i]!;
      intArg(def.name, spec, v as number, label);
      return v as number;
    };
    if (typeof cost === 'number') return this.plans.map((_, i) => check(cost, i, 'cost'));
    if (typeof cost !== 'object' || cost === null) throw new InvalidArgumentError('limiter', 'cost', 'cost must be a number or { [limitName]: number }');
    for (const k of Object.keys(cost)) {
      if (!this.plans.some((p) => p.name === k)) throw new InvalidArgumentError('limiter', 'cost', `cost names limit ${k}, which this limiter does not have`);
    }
    return this.plans.map((p, i) => check(Object.hasOwn(cost, p.name) ? cost[p.name] : unnamed, i, `cost.${p.name}`));
  }

  /**
   * The one failure policy of every Redis call: run `onRedis` through the Redis path; when it
   * fails, answer from `onFallback` (the twin), or fail open / closed as configured. Bad input is
   * never a Redis failure: it is thrown to the caller.
   */
  private viaRedis<T>(onRedis: (path: RedisPath) => Promise<T>, onFallback: () => T, wrap: (d: Decision) => T = (d) => d as T): Promise<T> {
    if (!this.path) return Promise.resolve().then(onFallback);
    return onRedis(this.path).catch((err: unknown) => this.failed(err, onFallback, wrap));
  }

  private failed<T>(err: unknown, onFallback: () => T, wrap: (d: Decision) => T): T {
    if (err instanceof InvalidArgumentError) throw err;
    if (this.onFailure === 'open') return wrap(this.failOpen());
    if (this.onFailure === 'closed') {
      if (this.throwWhenFailedClosed) throw new RedisUnavailableError('redlimit: Redis unavailable and the limiter fails closed', { cause: err });
      return wrap(this.failClosed());
    }
    return onFallback();
  }

  /**
   * What Redis last said of a subject: each limit's remaining units and when it was sent. The
   * fallback starts from it, so an outage does not hand a subject Redis had exhausted a fresh
   * allowance. Bounded: the subjects first seen longest ago go first.
   */
  private learn(call: Call, d: Decision, at: number): void {
    if (d.limits.length !== this.plans.length) return; // a block decision says nothing of the limits
    let l = this.learned.get(call.ident);
    if (!l) {
      // Oldest first out (insertion order); an entry is updated in place, so no re-insertion per call.
      if (this.learned.size >= 10_000) this.learned.delete(this.learned.keys().next().value!);
      l = { at, remaining: new Array<number>(this.plans.length) };
      this.learned.set(call.ident, l);
    }
    l.at = at;
    for (let i = 0; i < d.limits.length; i++) l.remaining[i] = d.limits[i]!.remaining;
  }

  /**
   * Seeds the fallback's state for a subject it has not seen during this outage from what Redis
   * last said: this instance's share of the remaining units (floor(remaining / share)), taken at
   * the time Redis said it, so refill since then is counted exactly as the twin counts it.
   */
  private seed(call: Call): void {
    const l = this.learned.get(call.ident);
    if (!l) return;
    this.learned.delete(call.ident);
    const share = this.share;
    this.plans.forEach((p, i) => {
      if (this.twin.store.has(call.keys[i]!, l.at)) return;
      const take = p.fallbackCapacity - Math.floor(l.remaining[i]! / share);
      if (take > 0) this.twin.runParsed(p.fallback.consume.def, [call.keys[i]!], valuesWith(p.fallback.consume, take), undefined, l.at);
    });
  }

  /** One decision (or peek) over all limits on the twin: no Redis, or Redis could not decide. */
  private onTwin(call: Call, costs: number[], consume: boolean, now = this.clock()): Decision {
    if (this.path) this.seed(call);
    if (this.plans.length === 1 && !this.blocks) {
      const p = this.plans[0]!;
      const c = consume ? p.fallback.consume : p.fallback.peek;
      return this.fromSingle(this.twin.runParsed(c.def, call.keys, valuesWith(c, costs[0]!), undefined, now), 0, 'fallback', p.fallbackLimit);
    }
    return this.fromMulti(this.twin.runParsed(consume ? b.multiScript : b.multiPeekScript, call.keys, {}, this.twinItems(costs), now), 'fallback');
  }

  /** One decision over all limits: Redis when it can, else the configured failure path. */
  private decide(call: Call, costs: number[]): Promise<Decision> {
    const fallback = () => this.onTwin(call, costs, true);
    const single = this.plans.length === 1 && !this.blocks;
    if (this.coalescer) {
      return new Promise<Decision>((resolve, reject) => {
        const w: Waiter = {
          keys: call.keys,
          costs: this.costStrings(costs),
          done: (r, o) => resolve(single ? this.fromSingle(r, o, 'redis', this.plans[0]!.limit) : this.fromItems(r, o, 'redis')),
          fail: (err) => {
            try {
              resolve(this.failed(err, fallback, (d) => d));
            } catch (e) {
              reject(e);
            }
          },
        };
        this.coalescer!.add(call.slot, w);
      });
    }
    return this.viaRedis((path) => this.consumeOnRedis(path, call, costs), fallback);
  }

  /** One consume on Redis, uncoalesced: the limit's own script, or multi for several limits / blocks. */
  private consumeOnRedis(path: RedisPath, call: Call, costs: number[]): Promise<Decision> {
    if (this.plans.length === 1 && !this.blocks) {
      const p = this.plans[0]!;
      return path.run(p.consume.def, call.keys, argvWith(p.consume, costs[0]!), call.slot).then((r) => this.fromSingle(r as number[], 0, 'redis', p.limit));
    }
    return path.run(b.multiScript, call.keys, this.multiArgv(costs), call.slot).then((r) => this.fromMulti(r as number[], 'redis'));
  }

  /** Each key's cost as sent: one per limit, then 1 for the block item. */
  private costStrings(costs: readonly (number | string)[]): string[] {
    const out = this.plans.map((_, i) => String(costs[i]));
    if (this.blocks) out.push('1');
    return out;
  }

  /** How decisions go to Redis: alone, or coalesced into `batch` (one limit) / `multi_batch` (several, or blocks). */
  private batchShape(): BatchShape {
    if (this.plans.length === 1 && !this.blocks) {
      const p = this.plans[0]!;
      return {
        lone: (w) => ({ def: p.consume.def, argv: argvWith(p.consume, Number(w.costs[0])), offset: 0 }),
        def: b.batchScript,
        argv: batchArgv(p.item),
      };
    }
    const specs = this.plans.map((p) => [p.item.algo, p.item.limit, p.item.period_ms, p.item.burst, p.item.offset_ms, p.item.unit].join(','));
    if (this.blocks) specs.push('block,,,,,');
    return {
      lone: (w) => ({ def: b.multiScript, argv: this.multiArgv(w.costs), offset: 3 }),
      def: b.multiBatchScript,
      argv: [String(specs.length), specs.join(';'), ''],
    };
  }

  /** multi ARGV: now_ms omitted, one group per limit (in plan order), then the block item. */
  private multiArgv(costs: readonly (number | string)[]): string[] {
    const argv = [''];
    for (let i = 0; i < this.plans.length; i++) pushItem(argv, this.plans[i]!.item, costs[i]!);
    if (this.blocks) pushBlockItem(argv);
    return argv;
  }

  private twinItems(costs: number[]): ArgValues[] {
    const items: ArgValues[] = this.plans.map((p, i) => ({ ...p.fallbackItem, cost: costs[i]! }));
    if (this.blocks) items.push({ algo: 'block', limit: 1, cost: 1, offset_ms: 0 });
    return items;
  }

  /** A single-limit reply (allowed, remaining, reset, retry at `o`). */
  private fromSingle(r: readonly number[], o: number, source: DecisionSource, limit: number): Decision {
    const allowed = r[o] === 1;
    const x: LimitResult = { name: this.plans[0]!.name, allowed, remaining: r[o + 1]!, limit, resetAfterMs: r[o + 2]!, retryAfterMs: r[o + 3]! };
    return { allowed, limitName: x.name, remaining: x.remaining, limit, resetAfterMs: x.resetAfterMs, retryAfterMs: x.retryAfterMs, deniedBy: allowed ? null : x.name, source, limits: [x] };
  }

  /** A multi reply: its per-limit results start after allowed, denied index and retry. */
  private fromMulti(r: readonly number[], source: DecisionSource): Decision {
    return this.fromItems(r, 3, source);
  }

  /**
   * One decision from its per-item results at `o` (limits in plan order, then the block item),
   * summarised as the multi script does: allowed when every item admits; denied by the first
   * that does not; retry the longest wait of the denying ones (-1 if one never can). The
   * top-level numbers all describe one limit: the first that denied, else the one closest to
   * denying (least remaining relative to its size), so a 429's remaining, limit and reset belong
   * together. A block is reported as its own denial (deniedBy 'block').
   */
  private fromItems(r: readonly number[], o: number, source: DecisionSource): Decision {
    const fallback = source === 'fallback';
    const limits: LimitResult[] = this.plans.map((p, i) => {
      const at = o + 4 * i;
      return { name: p.name, allowed: r[at] === 1, remaining: r[at + 1]!, limit: fallback ? p.fallbackLimit : p.limit, resetAfterMs: r[at + 2]!, retryAfterMs: r[at + 3]! };
    });
    const items = this.plans.length + (this.blocks ? 1 : 0);
    let deniedIndex = -1;
    let retry = 0;
    for (let i = 0; i < items; i++) {
      const at = o + 4 * i;
      if (r[at] === 1) continue;
      if (deniedIndex < 0) deniedIndex = i;
      const own = r[at + 3]!;
      retry = own < 0 || retry < 0 ? -1 : Math.max(retry, own);
    }
    const allowed = deniedIndex < 0;
    if (deniedIndex === this.plans.length) return { ...this.blockDenied(r[o + 4 * deniedIndex + 3]!, source), limits };
    let pick = limits[0]!;
    if (!allowed) pick = limits[deniedIndex]!;
    else for (const x of limits) if (x.remaining * pick.limit < pick.remaining * x.limit) pick = x;
    return { allowed, limitName: pick.name, remaining: pick.remaining, limit: pick.limit, resetAfterMs: pick.resetAfterMs, retryAfterMs: allowed ? 0 : retry, deniedBy: allowed ? null : pick.name, source, limits };
  }

  private blockDenied(retryAfterMs: number, source: DecisionSource): Decision {
    return { allowed: false, limitName: null, remaining: 0, limit: this.plans[0]!.limit, resetAfterMs: retryAfterMs, retryAfterMs, deniedBy: 'block', source, limits: [] };
  }

  /** Redis could not decide and the limiter fails open: allowed, and nothing is known of the limits. */
  private failOpen(): Decision {
    return { allowed: true, limitName: null, remaining: 0, limit: this.plans[0]!.limit, resetAfterMs: 0, retryAfterMs: 0, deniedBy: null, source: 'fail-open', limits: [] };
  }

  /** Redis could not decide and the limiter fails closed: retry when the breaker next tries Redis. */
  private failClosed(): Decision {
    const retry = this.breaker!.retryAfterMs();
    return { allowed: false, limitName: null, remaining: 0, limit: this.plans[0]!.limit, resetAfterMs: retry, retryAfterMs: retry, deniedBy: null, source: 'fail-closed', limits: [] };
  }

  private leaseDecision(left: number): Decision {
    return { allowed: true, limitName: this.plans[0]!.name, remaining: left, limit: this.plans[0]!.limit, resetAfterMs: 0, retryAfterMs: 0, deniedBy: null, source: 'lease', limits: [] };
  }

  /**
   * A batch of lease units from Redis (every limit takes `size`, or `forCost` if larger); answers
   * a call of `forCost` from it. Null if none could be taken.
   */
  private takeBatch(call: Call, forCost: number): Promise<Decision | null> {
    const pool = this.leases!;
    const size = Math.max(pool.size, forCost);
    return pool.track(this.decideOnRedisOnly(call, this.plans.map(() => size))).then(
      (d) => {
        if (!d || !d.allowed) return null;
        const left = pool.add(call.ident, call.s, size - forCost);
        return forCost > 0 ? { ...d, remaining: left, source: 'redis' as const, limits: [] } : this.leaseDecision(left);
      },
      (err: unknown) => {
        if (err instanceof InvalidArgumentError) throw err;
        return null;
      },
    );
  }

  /** A consume on Redis with no failure policy: null when Redis cannot decide. */
  private decideOnRedisOnly(call: Call, costs: number[]): Promise<Decision | null> {
    if (!this.path) return Promise.resolve(null);
    return this.consumeOnRedis(this.path, call, costs).catch((err: unknown) => {
      if (err instanceof InvalidArgumentError) throw err;
      return null;
    });
  }

  private forget(call: Call): void {
    this.denyCache?.forget(call.ident);
    this.leases?.drop(call.ident);
  }

  private report(d: Decision, started: number): Decision {
    if (this.metrics.decision) {
      const nearLimit = d.allowed && d.limitName !== null && d.remaining * 5 <= d.limit;
      this.metrics.decision({ limiter: this.name, outcome: d.allowed ? 'allowed' : 'denied', source: d.source, latencyMs: this.clock() - started, limit: d.limitName, nearLimit });
    }
    return d;
  }
}

/** Asks a Cluster client to reload its slot table (ioredis; node-redis rediscovers on MOVED by itself). */
function refreshTopology(client: object): void {
  const c = client as { refreshSlotsCache?: (cb?: (err?: Error) => void) => void };
  if (typeof c.refreshSlotsCache === 'function') c.refreshSlotsCache(() => {});
}

/** Runs the twin's parse of a call's arguments: what it refuses is the caller's error, typed as such. */
function refusedBefore(def: ScriptDef, parse: () => unknown): void {
  try {
    parse();
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(def.name, 'arguments', ((err as Error).message ?? String(err)).replace(/^.*?redlimit \w+: (Redis replied: )?(ERR |BADARG )?(redlimit \w+: )?/, ''));
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

