import * as b from '../../generated/index.js';
import { InvalidConfigError, RateLimitedError } from '../errors.js';
import { hashSlot, intArg, slotOwner, type RedisClientLike } from '../runtime/index.js';
import { booking, waitFor, type AcquireOptions, type Booking } from './acquire.js';
import type { CircuitBreaker } from './breaker.js';
import { AdoptionSwitch, NO_ADOPTION_MARK } from './adoption.js';
import { usesSubjectLayout, validateConfig, type AnyLimitSpec, type ConcurrencyLimitSpec, type LimitSpec, type RateLimiterOptions } from './config.js';
import { connect } from './connect.js';
import type { Decision } from './decision.js';
import { tagged } from './decode.js';
import type { Fallback } from './fallback.js';
import { Changes } from './changes.js';
import { checkHolder, Holding, runHeld, type Held } from './holding.js';
import { LocalState, type LimiterStats } from './local.js';
import { Naming, type CallOptions, type Cost, type PriorityClass, type ResetOptions } from './costs.js';
import type { MetricsHook } from './metrics.js';
import type { CallClock, LimitPlan } from './plan.js';
import { unavailable, type FailurePolicy } from './policy.js';
import type { RedisPath } from './redis-path.js';
import type { Reserved } from './reserving.js';
import type { SettleOutcome } from './reservations.js';
import { Subjects, type Subject, type Target } from './keys.js';
import { compileLimits, Variants } from './variants.js';

export type { CallOptions, Cost, Held, LimiterStats, ResetOptions };

/**
 * The client most services use: one or several limits per subject, decided atomically in Redis,
 * with what production needs around it. It computes nothing of its own — every decision comes
 * from the Lua scripts or their twin — and composes small steps, each with one job:
 *
 *   subjects (keys) → lease → deny cache → coalescer → Redis path → failure policy → fallback twin
 *
 * How decisions travel (a limit's own script, batch, multi, multi_batch) and how replies decode
 * are compiled once into the Shape; every method differs only in what it asks. Limit values
 * chosen per scope value (byScope) make one variant (plans, Shape and what holds them) per
 * combination of chosen values: a call takes its subject's (Target.variant). A concurrency
 * limit makes every admitted decision hold a slot (Holding: hold / run / release), decided in
 * the same multi call as the rate limits.
 */
export class RateLimiter {
  readonly name: string;
  readonly breaker: CircuitBreaker | null;
  /** The rate limits as configured (in configuration order, without the concurrency limits). */
  readonly limits: readonly LimitSpec[];
  /** The concurrency limits as configured. */
  readonly concurrencyLimits: readonly ConcurrencyLimitSpec[];
  /** The limits' own values (byScope entries: `variants`). */
  private readonly plans: readonly LimitPlan[];
  private readonly variants: Variants;
  private readonly subjects: Subjects;
  /** The base variant's fallback: the twin every variant shares. */
  private readonly fallback: Fallback;
  private readonly path: RedisPath | null;
  private readonly holding: Holding;
  private readonly local: LocalState;
  private readonly naming: Naming;
  private readonly metrics: MetricsHook;
  private readonly clock: () => number;
  private readonly blocks: boolean;
  private readonly sendClock: boolean;
  private readonly warnings: string[];
  private readonly prepared: Promise<void>;
  private readonly onBreakerState: (e: { to: string }) => void;
  /**
   * No Redis, one rate limit keyed by the id, no blocks, no scopes choosing values: a plain id's
   * call without options is decided by decideInMemory (Fallback.consumeOne).
   */
  private readonly inMemoryOne: boolean;
  private closed = false;
  /** Layout 'subject' with several limits: a subject's limits share one key (the tiers scripts). */
  private readonly subjectLayout: boolean;
  /** Layout 'subject': whether decisions look for states kept a key per limit (adopt). */
  private readonly adoption: AdoptionSwitch;

  constructor(options: RateLimiterOptions) {
    const limits = validateConfig(options);
    this.limits = Object.freeze(limits.filter((l): l is LimitSpec => l.algo !== 'concurrency'));
    this.concurrencyLimits = Object.freeze(limits.filter((l): l is ConcurrencyLimitSpec => l.algo === 'concurrency'));
    const share = options.fallbackShare ?? 1;
    this.clock = options.clock ?? Date.now;
    this.sendClock = options.sendClock ?? false;
    const sent: CallClock = { now: this.sendClock ? this.clock : null };
    const compiled = compileLimits(limits, share, sent, this.clock);
    this.plans = compiled.plans;
    this.naming = new Naming(this.plans, limits, options.priorities);
    const prefix = options.prefix ?? 'rl';
    this.name = options.name ?? prefix;
    this.blocks = options.blocks ?? false;
    this.metrics = options.metrics ?? {};
    const redis = options.redis as RedisClientLike | undefined;
    const conn = redis ? connect(redis, options, this.plans, { onError: (reason) => this.metrics.redisError?.({ limiter: this.name, reason }), onNodeState: (n, to) => this.onNodeState(n, to) }) : null;
    this.path = conn?.path ?? null;
    this.breaker = conn?.breaker ?? null;
    this.warnings = conn?.warnings ?? ['no redis given: every decision comes from the in-memory twin'];
    this.prepared = conn?.prepared ?? Promise.resolve();
    const changes = new Changes(() => this.local.dropAll());
    const cluster = conn?.cluster ?? false;
    const subjectLayout = usesSubjectLayout(options, limits) && this.plans.length > 1;
    this.subjectLayout = subjectLayout;
    // One key per subject: follows the adoption marker. A key per limit where 'auto' would have
    // taken one key (a pin): keeps the marker at "found", so such limiters keep looking.
    const pinned = !subjectLayout && this.plans.length > 1 && !(options as { [NO_ADOPTION_MARK]?: boolean })[NO_ADOPTION_MARK] && usesSubjectLayout({ ...options, layout: 'auto' }, limits);
    this.adoption = new AdoptionSwitch(subjectLayout || pinned ? (redis ?? null) : null, prefix, this.plans.map((p) => p.name), pinned ? 'mark' : 'follow');
    this.adoption.start(this.prepared, cluster);
    this.variants = new Variants(compiled, {
      blocks: this.blocks,
      subjectLayout,
      adoption: this.adoption,
      sent,
      share,
      clock: this.clock,
      path: this.path,
      breaker: this.breaker,
      cluster,
      onRedisFailure: options.onRedisFailure ?? 'fallback',
      throwWhenFailedClosed: options.throwWhenFailedClosed ?? false,
      coalesce: options.coalesce ?? true,
      changes,
    });
    this.subjects = new Subjects(prefix, this.plans, this.blocks, cluster, (s) => this.variants.choose(s), subjectLayout ? this.plans.map((p) => p.name).join('+') : null);
    this.fallback = this.variants.base.fallback;
    this.holding = new Holding(this.plans, this.path, this.fallback, sent);
    this.local = new LocalState(redis, prefix, options, this.clock, this.fallback, (s, units) => this.refund(s, { cost: units }), changes);
    this.onBreakerState = ({ to }) => {
      this.metrics.breakerState?.({ limiter: this.name, state: to as 'open' });
      if (to === 'closed') this.fallback.twin.store.clear(); // Redis is authoritative again
    };
    this.breaker?.on('state', this.onBreakerState);
    this.inMemoryOne = this.path === null && !this.blocks && !this.holding.active && !this.variants.active && this.plans.length === 1 && this.plans[0]!.scope === null && this.fallback.hasDirect;
  }

  /** Resolves once the client is ready and prepared (server checked, scripts or Functions loaded). Optional. */
  ready(): Promise<void> {
    return this.prepared;
  }

  /**
   * Decide one call for `subject`, consuming `cost` if admitted. Never throws for Redis trouble.
   * `priority` names a class of the limiter's `priorities`: the call is admitted only if enough
   * capacity is left after it for the classes above (the decision says which class applied).
   */
  limit(subject: Subject, options?: CallOptions): Promise<Decision> {
    return this.decide(subject, options, null, undefined);
  }

  /**
   * limit(), with `after(decision, arg)` applied to the decision in limit()'s own step: no
   * promise hop of its own (the policy limiter tags its decisions so, through limitThen).
   */
  private decide<A>(subject: Subject, options: CallOptions | undefined, after: ((d: Decision, arg: A) => Decision) | null, arg: A): Promise<Decision> {
    if (this.inMemoryOne && options === undefined && typeof subject === 'string') return this.decideInMemory(subject, after, arg);
    const started = this.clock();
    let t: Target;
    let costs: number[];
    let pc: PriorityClass | undefined;
    let holder: string | undefined;
    try {
      t = this.subjects.resolve(subject);
      costs = this.naming.costs(options?.cost);
      pc = this.naming.priority(options?.priority);
      holder = this.holding.holderFor(options?.holder);
    } catch (err) {
      return Promise.reject(err); // bad input: a rejected promise, as from every other path
    }
    const shares = pc?.ppm;
    if (holder !== undefined) {
      const held = this.limitHolding(t, costs, pc, holder, started);
      return after === null ? held : held.then((d) => after(d, arg));
    }
    const v = t.variant;
    if (!this.path) return Promise.resolve(this.answer(tagged(v.fallback.decide(t, costs, true, started, shares), pc), started, after, arg)); // no Redis: decided now
    // Leases hold the same number of units of every limit (a per-limit cost object or a priority
    // class skips them), and are spent only while a reset or block made elsewhere reaches us.
    const leases = this.local.leasesUsable() ? this.local.leases! : null;
    const leased = leases !== null && typeof options?.cost !== 'object' && pc === undefined;
    if (leased) {
      const left = leases!.take(t, costs[0]!, started);
      if (left !== null) {
        if (leases!.wantsRefill(t.ident)) leases!.refill(t.ident, v.decider!.topUp(leases!, t, 0, started));
        return Promise.resolve(this.answer(v.shape.decode.lease(left), started, after, arg));
      }
    }
    // The deny cache answers the same ask only: the same costs at the same class.
    const ask = pc ? [...costs, ...pc.ppm.map((x) => (x === '' ? 1_000_000 : Number(x)))] : costs;
    const cached = this.local.denyCache?.check(t, ask, started);
    if (cached) return Promise.resolve(this.answer(tagged(cached, pc), started, after, arg));
    const decider = v.decider!;
    const decided = leased ? decider.topUp(leases!, t, costs[0]!, started).then((d) => d ?? decider.decide(t, costs)) : decider.decide(t, costs, shares);
    return decided.then((d) => {
      if (d.source === 'redis') {
        v.fallback.learn(t, d, started);
        if (!d.allowed) this.local.denyCache?.remember(t, ask, d, started);
      }
      return this.answer(tagged(d, pc), started, after, arg);
    });
  }

  /**
   * decide() of a plain id without options on a limiter that decides in memory with one limit
   * (inMemoryOne): the same steps with nothing that cannot apply — cost 1, no class, no holder,
   * the base variant — and no target built for an id seen once (its key alone; see
   * Subjects.plainTarget). The same decision, the same errors: a bad id rejects, a twin error throws.
   */
  private decideInMemory<A>(id: string, after: ((d: Decision, arg: A) => Decision) | null, arg: A): Promise<Decision> {
    const started = this.clock();
    let t: Target | undefined;
    let key: string;
    try {
      t = this.subjects.plainTarget(id);
      key = t !== undefined ? t.keysIdent : this.subjects.plainKey(id);
    } catch (err) {
      return Promise.reject(err); // bad input: a rejected promise, as from every other path
    }
    return Promise.resolve(this.answer(this.fallback.consumeOne(key, t ?? null, started), started, after, arg));
  }

  /**
   * limit(), with what it takes to give the concurrency slot back: `release()`, or `await using`
   * (released when the block ends, however it ends). A denied decision, or one of a limiter
   * without a concurrency limit, holds nothing to release.
   */
  async hold(subject: Subject, options?: CallOptions): Promise<Held> {
    const t = this.subjects.resolve(subject);
    return this.holding.held(t, await this.limit(subject, options));
  }

  /**
   * Limits, runs `fn` once admitted, and releases the concurrency slot when it settles (also when
   * it throws); resolves to what `fn` returns. Denied: rejects with RateLimitedError, `fn` unrun.
   * A release that cannot reach Redis is not an error here: the slot frees itself after ttlMs.
   */
  async run<T>(subject: Subject, fn: (decision: Decision) => T | Promise<T>, options?: CallOptions): Promise<T> {
    return runHeld(await this.hold(subject, options), fn, (d) => new RateLimitedError(d));
  }

  /**
   * Frees the concurrency slot `holder` holds for `subject` (any process may: the holder id is a
   * string). Resolves true if it freed a live slot; false if there was none (released twice,
   * expired after ttlMs, or unknown) — harmless either way. The rate units the call took stay
   * taken. Rejects with RedisUnavailableError if Redis holds the slot and cannot be reached.
   */
  async release(subject: Subject, holder: string): Promise<boolean> {
    if (!this.holding.active) throw new InvalidConfigError('release needs a limiter with a concurrency limit');
    const t = this.subjects.resolve(subject);
    return this.holding.release(t, checkHolder(holder));
  }

  /** Like limit(), but throws RateLimitedError (with the decision) when denied. */
  async limitOrThrow(subject: Subject, options: CallOptions = {}): Promise<Decision> {
    const d = await this.limit(subject, options);
    if (!d.allowed) throw new RateLimitedError(d);
    return d;
  }

  /**
   * Every limit (rate and concurrency, in configuration order) as it applies to `subject`: with
   * the values its scopes choose (byScope), else the limit's own; byScope itself left out. What
   * its decisions report as `limit`, e.g. for a RateLimit-Policy header.
   */
  limitsFor(subject: Subject): readonly AnyLimitSpec[] {
    return this.subjects.resolve(subject).variant.limits;
  }

  /** What limit() would answer now, consuming nothing (read-only scripts: may run on a replica). */
  async peek(subject: Subject, options: CallOptions = {}): Promise<Decision> {
    const t = this.subjects.resolve(subject);
    const costs = this.naming.costs(options.cost ?? 0);
    const pc = this.naming.priority(options.priority);
    const v = t.variant;
    const call = v.shape.peek(costs, pc?.ppm);
    return this.viaRedis(
      v.policy,
      (path) => path.run(call.def, t.keys, call.argv, t.slot).then((r) => tagged(v.shape.decide(call, r as number[], 'redis', t.keys[0]), pc)),
      () => tagged(v.fallback.decide(t, costs, false, this.clock(), pc?.ppm), pc),
    );
  }

  /**
   * Back to full for what belongs to `subject`: by default the limits keyed by its own id (not
   * those it shares with others through a scope, e.g. a team's or an org's budget) and its
   * block. Name limits (`limits`) or scopes (`scopes`: every limit keyed by that scope) to reset
   * exactly those. Applied to the fallback too; every other instance drops what it holds for
   * these keys (the script publishes them). Throws RedisUnavailableError if Redis cannot take it.
   */
  async reset(subject: Subject, options: ResetOptions = {}): Promise<void> {
    const t = this.subjects.resolve(subject);
    const keys = this.naming.resetKeys(t, this.blocks ? this.subjects.blockKey(t) : null, options);
    this.local.forget(t, true);
    // Layout 'subject': a tiers_reset of the named limits' positions (all: the key's DEL), which
    // deletes those limits' own keys too (adopt: a subject kept with a key per limit before).
    const shape = t.variant.shape;
    const positions = this.subjectLayout ? shape.resetPositions(this.naming.resetNames(options)) : null;
    const [def, argv] = positions === null ? [b.resetScript, []] : [b.tiersResetScript, [String(this.plans.length), positions, shape.tiers!.adopt]];
    this.fallback.twin.runParsed(def, keys, positions === null ? {} : { count: this.plans.length, limits: positions });
    if (this.path) await this.local.announced(keys, this.path.run(def, keys, argv, t.slot)).catch(unavailable('reset'));
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
    const costs = this.naming.costs(options.cost, 0);
    this.local.forget(t, false);
    const v = t.variant;
    return v.decider ? v.decider.refund(t, v.plans, costs, this.local) : v.fallback.refund(t, v.plans, costs);
  }

  /**
   * Deny `subject` for `durationMs` whatever its limits say (0 lifts the block). Needs
   * `blocks: true`, which makes every decision check the block atomically with the limits.
   * Applied to the fallback too; throws RedisUnavailableError if Redis cannot take it.
   */
  async block(subject: Subject, durationMs: number): Promise<void> {
    if (!this.blocks) throw new InvalidConfigError('block() needs a limiter created with blocks: true (every decision then checks the block atomically)');
    const t = this.subjects.resolve(subject);
    this.local.forget(t, true);
    const key = [this.subjects.blockKey(t)];
    const argv = [intArg(b.blockScript.name, b.blockScript.args[0]!, durationMs, 'durationMs')];
    if (this.sendClock) argv.push(String(Math.floor(this.clock()))); // now_ms
    this.fallback.twin.runParsed(b.blockScript, key, { duration_ms: durationMs });
    if (this.path) await this.local.announced(key, this.path.run(b.blockScript, key, argv, t.slot)).catch(unavailable('block'));
  }

  /**
   * Wait for capacity instead of being denied: books the next slot fleet-wide (gcra_reserve) and
   * resolves when it is due — no polling. Needs a limiter with one gcra limit. If the wait would
   * pass maxWaitMs, or the subject is blocked, resolves denied at once. Aborting after a booking
   * gives the units back.
   */
  async acquire(subject: Subject, options: AcquireOptions = {}): Promise<Decision> {
    if (this.plans.length !== 1 || this.plans[0]!.algo !== 'gcra') throw new InvalidConfigError('acquire needs a limiter with exactly one gcra limit');
    const t = this.subjects.resolve(subject);
    const v = t.variant;
    options.signal?.throwIfAborted();
    const book = booking(v.plans[0]!, t, this.blocks ? this.subjects.blockKey(t) : null, options, v.shape.decode);
    const result = await this.viaRedis<Booking>(v.policy, book.onRedis, () => book.onTwin(v.fallback), (d) => ({ d, waitMs: 0 }));
    return waitFor(result, options.signal, () => this.refund(subject, { cost: book.cost }));
  }

  /**
   * Take an estimate now, settle the actual later: all-or-nothing over every limit, like limit()
   * (`cost` is the estimate, `priority` a class as for limit()). Admitted: a handle (a string any
   * process may settle) — commit it with the actual use, or cancel it; unsettled, it expires after
   * `ttlMs` (default 60 s) and counts at its estimate. Denied: nothing taken, no handle
   * (retryAfterMs -1: can never fit). A quota in a time zone is reserved in its zone, and settled
   * in the calendar period it was reserved in (after that period, it is left alone).
   */
  async reserve(subject: Subject, options: { cost?: Cost; ttlMs?: number; priority?: string } = {}): Promise<Reserved> {
    const pc = this.naming.priority(options.priority);
    const t = this.subjects.resolve(subject);
    const r = await t.variant.reserver.reserve(t, this.naming.costs(options.cost), options.ttlMs ?? 60_000, pc?.ppm);
    return pc ? { ...tagged(r, pc), handle: r.handle } : r;
  }

  /**
   * Settle a reservation at its actual use: below the estimate gives the difference back, above it
   * charges the overage (`overage: 'debt'`, default: later calls wait until it is repaid; `'cap'`:
   * at most what is left). A number is every limit's actual; an object names limits (the others
   * keep their estimates). Once: a second commit or cancel changes nothing and answers
   * 'already-settled'; an unknown, expired or tampered handle is a ReservationError.
   */
  async commit(handle: string, actual: Cost, options: { overage?: 'debt' | 'cap' } = {}): Promise<SettleOutcome> {
    return this.variants.base.reserver.settle(handle, 'commit', this.naming.actuals(actual), options);
  }

  /** Give a reservation back whole (once, as commit). */
  async cancel(handle: string): Promise<SettleOutcome> {
    return this.variants.base.reserver.settle(handle, 'cancel', null, {});
  }

  /** The breakers of the Cluster primaries this limiter has called. */
  nodeBreakers(): CircuitBreaker[] {
    return [...(this.path?.nodeBreakers.values() ?? [])];
  }

  stats(): LimiterStats {
    return {
      breaker: this.breaker?.stats() ?? null,
      nodes: Object.fromEntries([...(this.path?.nodeBreakers ?? [])].map(([node, nb]) => [node, nb.stats()])),
      ...this.local.stats(),
      fallbackKeys: this.fallback.twin.store.size,
      adopting: this.subjectLayout ? this.adoption.on : null,
      warnings: [...this.warnings],
    };
  }

  /** Returns unused leased units and stops timers. Does not close the Redis client you passed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.adoption.close();
    this.breaker?.off('state', this.onBreakerState);
    await this.local.close();
    this.path?.close();
  }

  // --- steps ---------------------------------------------------------------------------------

  /**
   * A decision that takes a concurrency slot for `holder`: always one multi call, never a lease,
   * and a denial by a concurrency limit is never held in the deny cache (a release frees a slot
   * at once, and announces nothing).
   */
  private limitHolding(t: Target, costs: number[], pc: PriorityClass | undefined, holder: string, started: number): Promise<Decision> {
    const shares = pc?.ppm;
    const v = t.variant;
    const answer = (d: Decision) => this.report(tagged(this.holding.mark(d, holder, costs), pc), started);
    if (!this.path) return Promise.resolve(answer(v.shape.withHolder(holder, () => v.fallback.decide(t, costs, true, started, shares))));
    const ask = pc ? [...costs, ...pc.ppm.map((x) => (x === '' ? 1_000_000 : Number(x)))] : costs;
    const cached = this.local.denyCache?.check(t, ask, started);
    if (cached) return Promise.resolve(this.report(tagged(cached, pc), started));
    return v.decider!.decide(t, costs, shares, holder).then((d) => {
      if (d.source === 'redis') {
        v.fallback.learn(t, d, started);
        if (!d.allowed && this.holding.cacheable(d)) this.local.denyCache?.remember(t, ask, d, started);
      }
      return answer(d);
    });
  }

  /** Every Redis call's failure path: Redis when it can, else the policy (fallback, open, closed). */
  private viaRedis<T>(policy: FailurePolicy, onRedis: (path: RedisPath) => Promise<T>, onFallback: () => T, wrap: (d: Decision) => T = (d) => d as T): Promise<T> {
    if (!this.path) return Promise.resolve().then(onFallback);
    return onRedis(this.path).catch((err: unknown) => policy.answer(err, onFallback, wrap));
  }

  /** A Cluster primary's breaker changed state; when it closes, its slots' fallback counts go. */
  private onNodeState(node: string, to: string): void {
    this.metrics.breakerState?.({ limiter: this.name, state: to as 'open' });
    if (to === 'closed') this.fallback.dropNode((key) => slotOwner(this.path!.client, hashSlot(key)) === node);
  }

  /** A decision of limit(): reported, then handed to `after` (see decide). */
  private answer<A>(d: Decision, started: number, after: ((d: Decision, arg: A) => Decision) | null, arg: A): Decision {
    this.report(d, started);
    return after === null ? d : after(d, arg);
  }

  private report(d: Decision, started: number): Decision {
    if (this.metrics.decision) {
      const nearLimit = d.allowed && d.limitName !== null && d.remaining * 5 <= d.limit;
      this.metrics.decision({ limiter: this.name, outcome: d.allowed ? 'allowed' : 'denied', source: d.source, latencyMs: this.clock() - started, limit: d.limitName, nearLimit });
    }
    return d;
  }
}

/**
 * Internal (the policy limiter's hook, not exported from the package): `limiter.limit(subject,
 * options)` with `after(decision, arg)` applied to the decision in limit()'s own step, so the
 * caller's work on it costs no promise hop of its own. A rejection passes through untouched.
 * `options` is read before limitThen returns (the caller may reuse the object for its next call).
 */
export function limitThen<A, D extends Decision>(limiter: RateLimiter, subject: Subject, options: CallOptions | undefined, after: (d: Decision, arg: A) => D, arg: A): Promise<D> {
  return limiter['decide'](subject, options, after, arg) as Promise<D>;
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  return new RateLimiter(options);
}
