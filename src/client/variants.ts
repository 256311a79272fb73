import type { CircuitBreaker } from './breaker.js';
import type { Changes } from './changes.js';
import type { AnyLimitSpec, OnRedisFailure } from './config.js';
import { Decider } from './decider.js';
import { Fallback } from './fallback.js';
import type { Resolved } from './keys.js';
import { compileLimit, type CallClock, type LimitPlan } from './plan.js';
import { FailurePolicy } from './policy.js';
import type { RedisPath } from './redis-path.js';
import { Reserver } from './reserving.js';
import { Shape } from './shape.js';

/**
 * Limit values chosen per scope value (`byScope`), in one limiter.
 *
 * A limit may give other values for its parameters per value of a scope (`byScope: { model: {
 * 'gpt-large': { limit: 30_000 } } }`). The keys do not change (the limit's own `scope` keys it,
 * e.g. `model`, or `route` per (agent, provider, model)); what changes is what a call sends, what
 * the fallback twin decides with, and what a decision reports.
 *
 * A *variant* is one combination of chosen values over every limit: its plans, its Shape (how
 * its decisions travel and decode; the batch shape with its values), and the parts that hold a
 * Shape — the fallback (learned remainders per subject, seeding with these values; the twin's
 * store is the limiter's one store: keys of limits that are not chosen by value are shared across
 * variants), the failure policy (fail-open reports these values), the decider (its coalescer
 * groups decisions of this variant: one batch carries one set of values) and the reserver. So a
 * turn's coalesced decisions go one batch per variant, in the order each variant first appeared
 * in the turn: each exact in that order (decisions of one turn are concurrent, with no order
 * among them to keep; a key two variants share — an agent's RPM beside a TPM per model — sees
 * one variant's decisions of the turn, then the next's).
 *
 * Every override is compiled at construction (its script's ranges: bad values refused before any
 * round trip); a variant is assembled the first time a call needs it, and kept. Only listed
 * values make variants, so there are at most ∏ (listed values of a scope + 1) of them; a value
 * not listed is the base variant. A limiter without byScope has only the base variant, and a call
 * finds it on its Target (one property read: the fast path is unchanged).
 *
 * What is cached per subject identity (Target.ident) — deny cache, leases, learned remainders —
 * never mixes values: a variant other than the base one is part of the identity (the scope that
 * chooses the values need not be in the keys).
 */

export interface Variant {
  /** '' for the limits' own values; else what tells this variant apart (part of Target.ident). */
  readonly id: string;
  /** The limits with this variant's values (no byScope), in configuration order. */
  readonly limits: readonly AnyLimitSpec[];
  readonly plans: readonly LimitPlan[];
  readonly shape: Shape;
  readonly fallback: Fallback;
  readonly policy: FailurePolicy;
  /** null without Redis. */
  readonly decider: Decider | null;
  readonly reserver: Reserver;
}

/** A limiter's limits compiled: the base plans and every byScope entry's plan, checked. */
export interface CompiledLimits {
  /** Each limit with its own values (byScope removed). */
  readonly limits: readonly AnyLimitSpec[];
  readonly plans: readonly LimitPlan[];
  /** Per limit: the scope that chooses its values and its entries (scope value → values and plan), or null. */
  readonly byValue: readonly ({ readonly scope: string; readonly entries: ReadonlyMap<string, { spec: AnyLimitSpec; plan: LimitPlan }> } | null)[];
}

/** A limit's spec without its byScope (as a plan, a report or a header takes it). */
function own(l: AnyLimitSpec): AnyLimitSpec {
  if (l.byScope === undefined) return l;
  const { byScope: _, ...rest } = l;
  return rest as AnyLimitSpec;
}

/**
 * Compiles every limit, and every byScope entry as the limit with that entry's values, through
 * the same plan compiler (so the same script ranges and cross-argument checks apply to both).
 * `validateConfig` has checked the entries' shape and the ranges it knows.
 */
export function compileLimits(limits: readonly AnyLimitSpec[], share: number, sent: CallClock, clock: () => number): CompiledLimits {
  const plans = limits.map((l) => compileLimit(own(l), share, sent, clock));
  const byValue = limits.map((l, i) => {
    if (l.byScope === undefined) return null;
    const [scope, values] = Object.entries(l.byScope)[0]!;
    const entries = new Map<string, { spec: AnyLimitSpec; plan: LimitPlan }>();
    for (const [value, o] of Object.entries(values)) {
      const spec = { ...own(l), ...(o as object) } as AnyLimitSpec;
      entries.set(value, { spec, plan: compileLimit(spec, share, sent, clock, `limit ${l.name}: byScope.${scope}[${JSON.stringify(value)}]`, plans[i]!.zone) });
    }
    return { scope, entries };
  });
  return { limits: limits.map(own), plans, byValue };
}

/** What every variant shares: the limiter's options and its one Redis path, breaker and twin. */
export interface VariantContext {
  readonly blocks: boolean;
  /** Layout 'subject': every limit of a subject in one key (the tiers scripts). */
  readonly subjectLayout: boolean;
  /** Layout 'subject': whether its decisions send adopt now. */
  readonly adoption: { readonly on: boolean };
  readonly sent: CallClock;
  readonly share: number;
  readonly clock: () => number;
  readonly path: RedisPath | null;
  readonly breaker: CircuitBreaker | null;
  readonly cluster: boolean;
  readonly onRedisFailure: OnRedisFailure;
  readonly throwWhenFailedClosed: boolean;
  readonly coalesce: boolean;
  readonly changes: Changes;
}

/** One limiter's variants: the base one, built now, and those of listed scope values, built when first needed. */
export class Variants {
  readonly base: Variant;
  /** The scopes values are chosen by, each with every value some limit lists. */
  private readonly scopes: { readonly name: string; readonly listed: ReadonlySet<string> }[] = [];
  /** Per limit: the index in `scopes` of its scope (-1: its values never change). */
  private readonly scopeOf: number[];
  private readonly built = new Map<string, Variant>();

  constructor(
    private readonly compiled: CompiledLimits,
    private readonly ctx: VariantContext,
  ) {
    this.scopeOf = compiled.byValue.map((by) => {
      if (by === null) return -1;
      let at = this.scopes.findIndex((s) => s.name === by.scope);
      if (at < 0) at = this.scopes.push({ name: by.scope, listed: new Set() }) - 1;
      for (const v of by.entries.keys()) (this.scopes[at]!.listed as Set<string>).add(v);
      return at;
    });
    this.base = this.assemble('', compiled.limits, compiled.plans, null);
  }

  /** Whether any limit chooses values by scope. */
  get active(): boolean {
    return this.scopes.length > 0;
  }

  /** The variant of a subject: by the values of its scopes that some limit lists (the base variant when none is). */
  choose(s: Resolved): Variant {
    const scopes = this.scopes;
    if (scopes.length === 0) return this.base;
    if (scopes.length === 1) {
      const v = s.scopes[scopes[0]!.name];
      return v === undefined || !scopes[0]!.listed.has(v) ? this.base : this.variant(JSON.stringify([v]), [v]);
    }
    const values = scopes.map((sc) => {
      const v = s.scopes[sc.name];
      return v !== undefined && sc.listed.has(v) ? v : null;
    });
    return values.every((v) => v === null) ? this.base : this.variant(JSON.stringify(values), values);
  }

  /** The variant with these chosen values (per scope; null: the limit's own), built once. */
  private variant(id: string, values: readonly (string | null)[]): Variant {
    let v = this.built.get(id);
    if (!v) {
      const { limits, plans, byValue } = this.compiled;
      const chosen = limits.map((_, i) => {
        const at = this.scopeOf[i]!;
        const value = at < 0 ? null : values[at]!;
        return value === null ? undefined : byValue[i]!.entries.get(value);
      });
      v = this.assemble(
        id,
        limits.map((l, i) => chosen[i]?.spec ?? l),
        plans.map((p, i) => chosen[i]?.plan ?? p),
        this.base.fallback,
      );
      this.built.set(id, v);
    }
    return v;
  }

  private assemble(id: string, limits: readonly AnyLimitSpec[], plans: readonly LimitPlan[], sibling: Fallback | null): Variant {
    const c = this.ctx;
    const shape = new Shape(plans, c.blocks, c.sent, c.subjectLayout, c.adoption);
    // One twin and one memory of what Redis said for every variant: their keys overlap.
    const fallback = new Fallback(plans, shape, c.share, c.clock, c.path !== null, c.changes, sibling ?? undefined);
    const policy = new FailurePolicy(c.onRedisFailure, c.throwWhenFailedClosed, c.breaker, shape.decode);
    const decider = c.path ? new Decider(c.path, c.coalesce, shape, policy, fallback) : null;
    const reserver = new Reserver(plans, c.blocks, shape, c.path, fallback, policy, c.cluster);
    return { id, limits, plans, shape, fallback, policy, decider, reserver };
  }
}
