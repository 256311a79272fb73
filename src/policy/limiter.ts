import { createRateLimiter, limitThen, type Cost, type RateLimiter } from '../client/limiter.js';
import type { LimitSpec, RateLimiterOptions } from '../client/config.js';
import { NO_ADOPTION_MARK } from '../client/adoption.js';
import type { Decision } from '../decision.js';
import { InvalidArgumentError, InvalidConfigError, RedisUnavailableError, ScriptError } from '../errors.js';
import type { Subject } from '../client/keys.js';
import type { RedisClientLike } from '../runtime/index.js';
import { subscribe, type Subscription } from '../runtime/pubsub.js';
import { AdaptiveFeedback, type AdaptiveOptions, type FeedbackResult } from './adaptive.js';
import { checkLimits, checkPolicyName } from './document.js';
import { POLICY_CHANNEL } from './keys.js';
import { expand, resolve, type Layer, type Learned, type Resolution } from './resolve.js';
import { PolicySnapshot } from './snapshot.js';
import { Carrier, type Carry } from './carry.js';
import { reset as resetKeys } from '../../generated/index.js';
import { PolicyStore } from './store.js';

export type { AdaptiveOptions, FeedbackResult } from './adaptive.js';

export interface PolicyLimiterOptions extends Omit<RateLimiterOptions, 'limits' | 'lease' | 'layout'> {
  /**
   * The policies a subject's limits come from, least specific first, e.g. `['default', 'plan:pro', 'org:acme', 'user:42']`.
   * Optional when every call names its chain (`limit(subject, { chain })`, as the HTTP rules do).
   */
  chain?: (subject: Subject) => string[];
  /** Appends the layer `env:<environment>` (e.g. its `scale: 0.8`) as the most specific. */
  environment?: string;
  /** Limits in code, under every policy (the least specific layer). */
  defaults?: LimitSpec[];
  /** How often the global version is polled, the backstop when an announcement is missed. Default 500 ms (a change then applies within 500 ms plus one round trip). */
  pollMs?: number;
  /** How many compiled limiters (one per distinct resolved set) are kept. Default 64. */
  maxLimiters?: number;
  /** A subject whose chain resolves to no limit at all: deny (default) or allow. */
  onNoLimits?: 'deny' | 'allow';
  /** AIMD: feedback() from upstream answers moves a learned limit. */
  adaptive?: AdaptiveOptions;
  /** How many versions each policy's history keeps. Default 100. */
  historyMax?: number;
}

export interface PolicyDecision extends Decision {
  /** The global policy version the limits were resolved at (-1: from what was known during an outage). */
  policyVersion: number;
  /** The policies applied, least specific first. */
  policies: string[];
  /** Learned (adaptive) limits that capped this decision, by target. */
  learned: Record<string, number>;
  /** The limits this decision was made under, as resolved (own names, scaled, capped); empty for no-limits. Shared: do not modify. */
  policyLimits: readonly LimitSpec[];
}

/** Per call: the cost, and the chain when the caller knows it (it replaces `chain(subject)`). */
export interface PolicyCallOptions {
  cost?: Cost;
  /** The policies for this call, least specific first (the environment layer is still appended). */
  chain?: readonly string[];
}

interface Compiled {
  limiter: RateLimiter;
  res: Resolution;
  /** The limits' keyed names (the same for every resolution this limiter was compiled for: they are its specs' names). */
  keyed: ReadonlyMap<string, string>;
  usedAt: number;
  evicted: boolean;
}

type Resolved = Resolution & { compiled?: Compiled; carries?: Carry[] };

/** A chain's cached resolution. */
interface Cached {
  version: number;
  res: Resolved;
}

/** What a chain's fast decisions need (see ChainNode). */
interface Fast {
  version: number;
  compiled: Compiled;
  carries: readonly Carry[] | undefined;
  pausedUntilMs: number;
  /** keyed name -> own name (this chain's resolution's). */
  names: ReadonlyMap<string, string>;
  /** Whether some keyed name differs from its own (a reset epoch). */
  renamed: boolean;
  policies: string[];
  learned: Record<string, number>;
  policyLimits: readonly LimitSpec[];
}

/**
 * One level of the fast path's index of `resolvedByChain` (one policy name: no key string built
 * per call). A chain's own node holds its cached resolution and, from its first fast decision on,
 * what its fast decisions need (`fast`): each decision is tagged with that very object, its own
 * chain's at the version it was decided at (chains resolving to the same set share one compiled
 * limiter, whose last resolution may be another chain's). A `fast` is never changed once made: a
 * new version makes a new one, so a decision still in flight keeps the values it was sent with.
 */
class ChainNode {
  next: Map<string, ChainNode> | undefined = undefined;
  hit: Cached | undefined = undefined;
  /** The fast entry; undefined: none (made on the next call). */
  fast: Fast | undefined = undefined;
}

/**
 * A limiter whose limits live in Redis as policies: resolved per subject through its chain from
 * one consistent snapshot (cached per global version: no Redis call while nothing changed), then
 * decided by a RateLimiter compiled for exactly that resolved set (kept in a bounded LRU; all of
 * them share the Redis client, its breaker and its invalidation subscription).
 */
export class PolicyLimiter {
  readonly policies: PolicyStore;
  private readonly snapshot: PolicySnapshot | null;
  private readonly compiled = new Map<string, Compiled>();
  private readonly resolvedByChain = new Map<string, Cached>();
  /** The same entries by name, level by level (every chain here is in resolvedByChain; cleared when that evicts). */
  private chainIndex = new ChainNode();
  private tick = 0;
  private readonly base: RateLimiterOptions;
  private readonly sub: Subscription | null;
  private readonly poll: NodeJS.Timeout | null;
  private readonly adaptive: AdaptiveFeedback;
  private readonly carrier: Carrier;
  private readonly clock: () => number;
  private closed = false;
  private readFailedAt = -Infinity;
  private resolutions = 0;
  /** The options of each fast call to the compiled limiter (read by limitThen before it returns: one object, not one per call). */
  private readonly fastCall: { cost: Cost | undefined } = { cost: undefined };

  constructor(private readonly o: PolicyLimiterOptions) {
    if (!o || typeof o !== 'object') throw new InvalidConfigError('createPolicyLimiter needs options: { redis, chain }');
    if (o.chain !== undefined && typeof o.chain !== 'function') throw new InvalidConfigError('chain must be a function: (subject) => policy names');
    const { chain: _c, environment, defaults, pollMs, maxLimiters, onNoLimits, adaptive, historyMax, ...rest } = o;
    if (environment !== undefined) checkPolicyName(`env:${environment}`, 'environment');
    checkLimits(defaults ?? [], 'defaults');
    if (onNoLimits !== undefined && onNoLimits !== 'deny' && onNoLimits !== 'allow') throw new InvalidConfigError('onNoLimits must be deny or allow');
    // Policy changes rename limits (reset epochs) and carry state key by key: a key per limit only.
    if ((o as { layout?: unknown }).layout !== undefined && (o as { layout?: unknown }).layout !== 'per-limit') {
      throw new InvalidConfigError("createPolicyLimiter keeps a key per limit (policy changes carry state limit by limit): layout must be 'per-limit'");
    }
    this.base = { ...rest, limits: [] };
    this.clock = o.clock ?? Date.now;
    this.adaptive = new AdaptiveFeedback(adaptive, this.clock);
    const redis = o.redis as RedisClientLike | undefined;
    if (!redis) throw new InvalidConfigError('createPolicyLimiter needs redis: the policies live there');
    this.policies = new PolicyStore(redis, o.prefix ?? 'rl', historyMax);
    this.snapshot = new PolicySnapshot(this.policies.keys, this.policies);
    this.carrier = new Carrier(this.policies, redis, o.prefix ?? 'rl', (m) => this.snapshot!.warn(m));
    this.policies.onChange = (announcement) => this.snapshot!.announced(announcement);
    this.sub = subscribe(redis, [POLICY_CHANNEL], (_ch, message) => this.snapshot!.announced(message), {
      onHealthChange: (healthy) => {
        // Messages may have been missed meanwhile: every change (a policy or an adaptive step)
        // bumps the global version, so one read of it says whether anything was. Dropping the
        // cache outright on every recovery re-read every policy whenever a slow Redis answered
        // the heartbeat late.
        if (healthy) void this.pollVersion();
      },
    });
    const every = pollMs ?? 500;
    this.poll = setInterval(() => void this.pollVersion(), every);
    this.poll.unref();
  }

  /**
   * Decide one call for `subject` under the limits its policies give it now. `options.chain`
   * names the policies for this call (else `chain(subject)` from the options).
   */
  limit(subject: Subject, options?: PolicyCallOptions): Promise<PolicyDecision> {
    // The common case, with nothing to wait for: the chain's resolution at the current version
    // and its compiled limiter are at hand.
    let chain: readonly string[];
    try {
      chain = this.rawChain(subject, options);
    } catch (err) {
      return Promise.reject(err);
    }
    let node: ChainNode | undefined = this.chainIndex;
    if (Array.isArray(chain)) for (let i = 0; i < chain.length && node !== undefined; i++) node = node.next?.get(chain[i]!);
    else node = undefined;
    if (node !== undefined) {
      let f = node.fast;
      if (f === undefined || f.version !== this.snapshot!.version || f.compiled.evicted) f = this.fastFor(node);
      if (f !== undefined && (f.carries === undefined || !this.carryPending(subject, f.carries)) && (f.pausedUntilMs === 0 || f.pausedUntilMs <= this.clock() + this.snapshot!.serverOffsetMs)) {
        const c = f.compiled;
        c.usedAt = ++this.tick;
        const call = this.fastCall;
        call.cost = options === undefined ? undefined : fastCost(options.cost, f);
        // Tagged with this chain's own values in the limiter's own promise step (no hop of its
        // own); the call options are read before limitThen returns.
        const decided = limitThen(c.limiter, subject, call, tagFast, f);
        call.cost = undefined;
        return decided;
      }
    }
    return this.limitSlow(subject, chain, options);
  }

  private async limitSlow(subject: Subject, chain: readonly string[], options?: PolicyCallOptions): Promise<PolicyDecision> {
    const { c, version, unknown, res } = await this.compiledFor(subject, chain);
    if (c === null) return this.noLimits(version, unknown);
    const paused = this.paused(c.res);
    if (paused) return paused;
    await this.carry(subject, res);
    const d = await c.limiter.limit(subject, { cost: mapCost(options?.cost, res) });
    return this.tag(d, res, version);
  }

  /** What limit() would answer now, consuming nothing (a proportional carry still pending for the subject is made first). */
  async peek(subject: Subject, options: PolicyCallOptions = {}): Promise<PolicyDecision> {
    const { c, version, unknown, res } = await this.compiledFor(subject, this.rawChain(subject, options));
    if (c === null) return this.noLimits(version, unknown);
    await this.carry(subject, res);
    return this.tag(await c.limiter.peek(subject, { cost: mapCost(options.cost ?? 0, res) }), res, version);
  }

  /** Gives back units of the subject's current limits (see RateLimiter.refund). */
  async refund(subject: Subject, options: PolicyCallOptions = {}): Promise<void> {
    const { c, res } = await this.compiledFor(subject, this.rawChain(subject, options));
    if (!c) return;
    await this.carry(subject, res);
    await c.limiter.refund(subject, { cost: mapCost(options.cost, c.res) });
  }

  /** Back to full on the subject's current limits (see RateLimiter.reset), and the keys a proportional carry would read. */
  async reset(subject: Subject, options: { limits?: string[]; scopes?: string[]; chain?: readonly string[] } = {}): Promise<void> {
    const { c, res } = await this.compiledFor(subject, this.rawChain(subject, options));
    if (!c) return;
    const carries = (res as Resolved).carries?.filter((x) => !options.limits || options.limits.includes(res.names.get(x.keyed)!)) ?? [];
    if (carries.length > 0) await resetKeys(this.o.redis as RedisClientLike, { keys: this.carrier.sourceKeys(subject, carries) });
    const limits = options.limits?.map((n) => [...c.res.names].find(([, own]) => own === n)?.[0] ?? n);
    await c.limiter.reset(subject, { ...(limits ? { limits } : {}), ...(options.scopes ? { scopes: options.scopes } : {}) });
  }

  /** Whether chain(subject) was given (else every call names its chain). */
  get hasChain(): boolean {
    return typeof this.o.chain === 'function';
  }

  /** The limits `subject` gets now, as resolved (own names, scaled, capped), and the version. */
  async resolved(subject: Subject, options: { chain?: readonly string[] } = {}): Promise<{ version: number; limits: LimitSpec[]; policies: string[]; learned: Record<string, number> }> {
    const { res, version } = await this.resolve(this.rawChain(subject, options));
    return { version, limits: [...res.ownSpecs], policies: res.layers, learned: res.learned };
  }

  /** An upstream's answer for `subject` moves its learned limit (AIMD; see AdaptiveFeedback.feedback). */
  feedback(subject: Subject, answer: { status: number; retryAfterMs?: number }): Promise<FeedbackResult> {
    return this.adaptive.feedback(subject, answer, {
      redis: this.o.redis as RedisClientLike,
      keys: this.policies.keys,
      resolve: (s) => this.resolve(this.rawChain(s, undefined)),
      announced: (message) => this.snapshot!.announced(message),
    });
  }

  stats() {
    return {
      policyVersion: this.snapshot?.version ?? -1,
      compiledLimiters: this.compiled.size,
      resolutions: this.resolutions,
      policyReads: this.snapshot?.reads ?? 0,
      corruptEntries: this.snapshot?.corrupt ?? 0,
      subscribed: this.sub?.healthy() ?? false,
      warnings: [...(this.snapshot?.warnings ?? [])],
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    await this.sub?.close();
    await Promise.all([...this.compiled.values()].map((c) => c.limiter.close()));
    this.compiled.clear();
  }

  // --- steps ---------------------------------------------------------------------------------

  private chainKey(names: readonly string[]): string {
    return names.length === 1 ? names[0]! : names.join('\n');
  }

  /** Files a cached resolution under its chain in the fast path's index. */
  private index(raw: readonly string[], hit: Cached): void {
    let node = this.chainIndex;
    for (const name of raw) {
      node.next ??= new Map();
      let child = node.next.get(name);
      if (child === undefined) node.next.set(name, (child = new ChainNode()));
      node = child;
    }
    if (node.hit !== hit) {
      node.hit = hit;
      node.fast = undefined;
    }
  }

  /** Makes the chain's fast entry when its cached resolution is at the current version and compiled (else none: the slow path). */
  private fastFor(node: ChainNode): Fast | undefined {
    node.fast = undefined;
    const hit = node.hit;
    if (hit === undefined || hit.version < 0 || hit.version !== this.snapshot!.version) return undefined;
    const res = hit.res;
    const c = res.compiled;
    if (c === undefined || c.evicted) return undefined;
    return (node.fast = {
      version: hit.version,
      compiled: c,
      carries: res.carries !== undefined && res.carries.length > 0 ? res.carries : undefined,
      pausedUntilMs: res.pausedUntilMs,
      names: res.names,
      renamed: res.renamed,
      policies: res.layers,
      learned: res.learned,
      policyLimits: res.ownSpecs,
    });
  }

  /** Whether a proportional carry is still to be made for the subject (a subject no key can hold: yes, the slow path says why). */
  private carryPending(subject: Subject, carries: readonly Carry[]): boolean {
    if (carries.length === 0) return false;
    try {
      return this.carrier.pending(subject, carries);
    } catch {
      return true;
    }
  }

  /** The chain a call names, or the one `chain(subject)` gives. */
  private rawChain(subject: Subject, options: { chain?: readonly string[] } | undefined): readonly string[] {
    if (options?.chain !== undefined) return options.chain;
    if (!this.o.chain) throw new InvalidArgumentError('policy_read', 'chain', 'this policy limiter has no chain option: name the policies per call (limit(subject, { chain }))');
    return this.o.chain(subject);
  }

  private chainOf(names: readonly string[]): string[] {
    if (!Array.isArray(names)) throw new InvalidConfigError('chain(subject) must return an array of policy names');
    for (const n of names) checkPolicyName(n);
    return this.o.environment !== undefined ? [...names, `env:${this.o.environment}`] : [...names];
  }

  /** A proportional carry the subject still needs under `res` (policy_carry, once per subject and limit in this instance). */
  private async carry(subject: Subject, res: Resolution): Promise<void> {
    const carries = (res as Resolved).carries;
    if (carries && carries.length > 0) await this.carrier.carry(subject, carries, (p) => this.timedRead(p));
  }

  /** A Redis call bounded by the limiter's deadline (timeoutMs): an unanswered call is an outage. */
  private async timedRead<T>(read: Promise<T>): Promise<T> {
    const ms = Math.max(this.o.timeoutMs ?? 100, 50);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`policy read: no answer within ${ms} ms`)), ms);
    });
    read.catch(() => {}); // answered after the deadline: dropped
    try {
      return await Promise.race([read, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The chain's resolution at the current version (cached per chain), or from what is known during an outage. */
  private async resolve(raw: readonly string[]): Promise<{ res: Resolution; version: number }> {
    const chain = this.chainOf(raw);
    const key = this.chainKey(raw);
    const snap = this.snapshot!;
    const hit = this.resolvedByChain.get(key);
    if (hit && hit.version === snap.version && snap.version >= 0) {
      this.index(raw, hit);
      return { res: hit.res, version: hit.version };
    }
    const now = this.clock();
    if (now - this.readFailedAt < 500) return { res: this.resolveKnown(chain), version: -1 };
    try {
      const out = await this.timedRead(this.resolveAt(chain, now));
      if (out.version === snap.version) {
        const cached: Cached = out;
        this.resolvedByChain.set(key, cached);
        if (this.resolvedByChain.size > 10_000) {
          this.resolvedByChain.delete(this.resolvedByChain.keys().next().value!);
          this.chainIndex = new ChainNode(); // refilled as chains are resolved (or found cached) again
        }
        this.index(raw, cached);
      }
      return out;
    } catch (err) {
      if (err instanceof InvalidConfigError || err instanceof InvalidArgumentError) throw err;
      this.readFailedAt = now;
      // A key of another Redis type where a policy should be answers WRONGTYPE: reported, and
      // decided as during an outage (the last known policies).
      if (err instanceof ScriptError || /WRONGTYPE/.test(String((err as Error)?.message))) snap.warn(`policies ${chain.join(' > ')}: unreadable (${(err as Error).message.slice(0, 200)}); the last known versions are used`);
      return { res: this.resolveKnown(chain), version: -1 };
    }
  }

  /** Reads the chain's policies (and their parents) at one version. */
  private async resolveAt(chain: string[], now: number): Promise<{ res: Resolution; version: number }> {
    const snap = this.snapshot!;
    const k = snap.keys;
    let names = chain;
    // Parents are found as documents arrive: read until the expanded chain is covered at one version.
    for (let attempt = 0; ; attempt++) {
      {
        const keys = [...names.map((n) => k.doc(n)), ...(this.o.adaptive ? chain.map((n) => k.adaptive(n)) : [])];
        const got = await snap.values(keys, now);
        const warnings: string[] = [];
        const layerOf = (n: string) => (got.values.get(k.doc(n)) as { layer: Layer } | undefined)?.layer;
        const expanded = expand(chain, (n) => layerOf(n)?.body?.parent, warnings);
        const unread = expanded.filter((n) => !got.values.has(k.doc(n)));
        if (unread.length === 0 || attempt > 10) {
          for (const w of warnings) snap.warn(w);
          const layers = expanded.map((n) => layerOf(n) ?? { name: n, body: null, resets: {} });
          const res: Resolved = this.build(layers, got.values, warnings);
          if (layers.some((l) => Object.keys(l.resets).length > 0)) {
            const carries = await this.carrier.carriesFor(layers, res, (ls) => resolve(this.o.defaults ?? [], ls, this.adaptiveArg(got.values)));
            if (carries.length > 0) res.carries = carries;
          }
          return { res, version: got.version };
        }
        names = [...new Set([...names, ...expanded])];
      }
    }
  }

  /**
   * During an outage: the last known value of each policy (the fallback decides with these). A
   * chain none of whose policies was ever read (the limiter started during the outage) is marked
   * `unknown`: with no `defaults` either, the failure policy decides (see noLimits).
   */
  private resolveKnown(chain: string[]): Resolution {
    const k = this.snapshot!.keys;
    const known = this.snapshot!.known([...chain.map((n) => k.doc(n)), ...chain.map((n) => k.adaptive(n))]);
    let anyKnown = false;
    const layerOf = (n: string) => {
      const v = known.get(k.doc(n)) ?? this.snapshot!.known([k.doc(n)]).get(k.doc(n));
      if (v !== undefined) anyKnown = true;
      return v?.kind === 'doc' ? v.layer : undefined;
    };
    const warnings: string[] = [];
    const expanded = expand(chain, (n) => layerOf(n)?.body?.parent, warnings);
    const res = this.build(expanded.map((n) => layerOf(n) ?? { name: n, body: null, resets: {} }), known, warnings);
    return anyKnown ? res : { ...res, unknown: true };
  }

  /** The adaptive part of a resolution: the learned values read for the chain. */
  private adaptiveArg(values: ReadonlyMap<string, { kind: string; learned?: Learned | null } | undefined>): Parameters<typeof resolve>[2] {
    if (!this.o.adaptive) return null;
    const k = this.snapshot!.keys;
    const learned = new Map<string, Learned>();
    for (const [key, v] of values) {
      if (v?.kind === 'adaptive' && v.learned && key.startsWith(k.adaptive(''))) learned.set(key.slice(k.adaptive('').length), v.learned);
    }
    return { limits: this.o.adaptive.limits ?? null, learned };
  }

  private build(layers: Layer[], values: ReadonlyMap<string, { kind: string; learned?: Learned | null } | undefined>, warnings: string[]): Resolution {
    this.resolutions++;
    const r = resolve(this.o.defaults ?? [], layers, this.adaptiveArg(values));
    return { ...r, ownSpecs: r.specs.map((s) => ({ ...s, name: r.names.get(s.name)! })), layers: layers.filter((l) => l.body !== null).map((l) => l.name), warnings };
  }

  private async compiledFor(_subject: Subject, chain: readonly string[]): Promise<{ c: Compiled | null; version: number; unknown?: boolean; res: Resolution }> {
    const { res, version } = await this.resolve(chain);
    const resolved = res as Resolved;
    if (res.specs.length === 0) return { c: null, version, unknown: res.unknown === true, res };
    if (resolved.compiled && !resolved.compiled.evicted) {
      resolved.compiled.usedAt = ++this.tick;
      return { c: resolved.compiled, version, res };
    }
    const key = JSON.stringify(res.specs);
    let c = this.compiled.get(key);
    if (c) {
      c.usedAt = ++this.tick;
      c.res = res;
      resolved.compiled = c;
      return { c, version, res };
    }
    let limiter: RateLimiter;
    try {
      limiter = createRateLimiter({ ...this.base, layout: 'per-limit', limits: res.specs, [NO_ADOPTION_MARK]: true } as RateLimiterOptions);
    } catch (err) {
      // A set no limiter can hold (e.g. a scale that broke a rule): reported, and the last good
      // set for this chain decides.
      this.snapshot!.warn(`policies ${res.layers.join(' > ')}: the resolved limits are refused (${(err as Error).message})`);
      const last = [...this.compiled.values()].sort((a, b) => b.usedAt - a.usedAt).find((x) => x.res.layers.join() === res.layers.join());
      if (last) return { c: last, version, res };
      throw err;
    }
    c = { limiter, res, keyed: res.names, usedAt: ++this.tick, evicted: false };
    resolved.compiled = c;
    this.compiled.set(key, c);
    const most = this.o.maxLimiters ?? 64;
    if (this.compiled.size > most) {
      let oldest: [string, Compiled] | null = null;
      for (const e of this.compiled) if (!oldest || e[1].usedAt < oldest[1].usedAt) oldest = e;
      this.compiled.delete(oldest![0]);
      oldest![1].evicted = true;
      void oldest![1].limiter.close().catch(() => {});
    }
    return { c, version, res };
  }

  private paused(res: Resolution): PolicyDecision | null {
    if (res.pausedUntilMs <= 0) return null;
    const left = res.pausedUntilMs - (this.clock() + this.snapshot!.serverOffsetMs);
    if (left <= 0) return null;
    return { allowed: false, limitName: null, remaining: 0, limit: 0, resetAfterMs: left, retryAfterMs: left, deniedBy: 'paused', source: 'deny-cache', limits: [], policyVersion: this.snapshot!.version, policies: res.layers, learned: res.learned, policyLimits: res.ownSpecs };
  }

  /**
   * No limit applies. Known to be so (the policies say nothing for this chain): onNoLimits. Not
   * known (Redis unreachable and no policy of the chain ever read, no defaults): the failure
   * policy — open allows, closed and fallback (nothing to count against) fail closed until the
   * next read is tried (500 ms).
   */
  private noLimits(version: number, unknown = false): PolicyDecision {
    const tagged = { limitName: null, remaining: 0, limit: 0, limits: [], policyVersion: version, policies: [], learned: {}, policyLimits: [] };
    if (unknown) {
      if (this.o.onRedisFailure === 'open') return { ...tagged, allowed: true, resetAfterMs: 0, retryAfterMs: 0, deniedBy: null, source: 'fail-open' };
      if (this.o.throwWhenFailedClosed) throw new RedisUnavailableError('redlimit: Redis unavailable, no policy of this chain is known, and the limiter fails closed');
      return { ...tagged, allowed: false, resetAfterMs: 500, retryAfterMs: 500, deniedBy: null, source: 'fail-closed' };
    }
    const allow = this.o.onNoLimits === 'allow';
    return { ...tagged, allowed: allow, resetAfterMs: 0, retryAfterMs: allow ? 0 : -1, deniedBy: allow ? null : 'no-limits', source: version < 0 ? 'fallback' : 'redis' };
  }

  private tag(d: Decision, res: Resolution, version: number): PolicyDecision {
    const out = d as PolicyDecision;
    if (res.renamed) {
      const own = (n: string | null) => (n === null ? null : (res.names.get(n) ?? n));
      out.limitName = own(d.limitName);
      out.deniedBy = own(d.deniedBy);
      out.limits = d.limits.map((l) => ({ ...l, name: own(l.name)! }));
    }
    out.policyVersion = version;
    out.policies = res.layers;
    out.learned = res.learned;
    out.policyLimits = res.ownSpecs;
    return out;
  }

  private async pollVersion(): Promise<void> {
    if (this.closed) return;
    try {
      const v = await this.policies.version();
      if (v !== this.snapshot!.version && this.snapshot!.version >= 0) this.snapshot!.drop();
    } catch {
      // an outage: the last known policies stay
    }
  }
}

/** A cost object names limits by their own names; the compiled limiter knows them with epochs, and a limit the policies took away is skipped. */
function mapCost(cost: Cost | undefined, res: { names: ReadonlyMap<string, string>; renamed: boolean }): Cost | undefined {
  if (cost === undefined || typeof cost === 'number') return cost;
  if (typeof cost !== 'object' || cost === null) return cost; // the compiled limiter says what is wrong with it
  // Every name the cost gives is a limit of the set, under its own name: the cost as it is (the
  // compiled limiter reads only its own limits' names from it).
  if (!res.renamed && typeof cost === 'object' && cost !== null) {
    let all = true;
    for (const k in cost) {
      if (!res.names.has(k)) {
        all = false;
        break;
      }
    }
    if (all) return cost;
  }
  const out: Record<string, number> = {};
  for (const [keyed, own] of res.names) if (Object.hasOwn(cost, own)) out[keyed] = (cost as Record<string, number>)[own]!;
  return out;
}

/** The cost a fast decision sends: as given when it names only limits of the set (under their own names), else mapped (mapCost). */
function fastCost(cost: Cost | undefined, f: Fast): Cost | undefined {
  if (cost === undefined || typeof cost === 'number') return cost;
  if (!f.renamed && typeof cost === 'object' && cost !== null) {
    // The compiled limiter's names are this set's own names here (no epoch): one shared map, not the chain's.
    const keyed = f.compiled.keyed;
    let all = true;
    for (const k in cost) {
      if (!keyed.has(k)) {
        all = false;
        break;
      }
    }
    if (all) return cost;
  }
  return mapCost(cost, f);
}

/** A fast decision tagged with its chain's own resolution (as tag()). */
function tagFast(d: Decision, f: Fast): PolicyDecision {
  const out = d as PolicyDecision;
  if (f.renamed) {
    const names = f.names;
    const own = (n: string | null) => (n === null ? null : (names.get(n) ?? n));
    out.limitName = own(d.limitName);
    out.deniedBy = own(d.deniedBy);
    out.limits = d.limits.map((l) => ({ ...l, name: own(l.name)! }));
  }
  out.policyVersion = f.version;
  out.policies = f.policies;
  out.learned = f.learned;
  out.policyLimits = f.policyLimits;
  return out;
}

export function createPolicyLimiter(options: PolicyLimiterOptions): PolicyLimiter {
  return new PolicyLimiter(options);
}
