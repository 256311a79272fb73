import { multiScript } from '../../generated/index.js';
import { InvalidArgumentError } from '../errors.js';
import { intArg } from '../runtime/index.js';
import type { AnyLimitSpec, Priorities } from './config.js';
import type { LimitPlan } from './plan.js';
import type { Target } from './keys.js';

/** multi's item cost range: what any cost must be before each limit's own range is asked. */
const MULTI_COST = multiScript.each!.args.find((a) => a.name === 'cost')!;

/** Cost of a call: one number for every limit, or per limit name (missing names cost 1; in a refund, 0). */
export type Cost = number | Record<string, number>;

/**
 * What a decision asks: its cost, and its priority class (a name from the limiter's
 * `priorities`). A concurrency limit takes one slot per call whatever the cost (a cost of 0 only
 * asks); `holder` names the slot's holder (default: a fresh random id) — a live holder asking
 * again renews its slot.
 */
export interface CallOptions {
  cost?: Cost;
  priority?: string;
  holder?: string;
}

/** Which limits of a reset: the subject's own (default), or exactly those named. */
export interface ResetOptions {
  limits?: readonly string[];
  scopes?: readonly string[];
}

/** A call's priority class, resolved: per limit its share as sent (parts per million), and as reported. */
export interface PriorityClass {
  readonly name: string;
  /** Per limit in plan order, share_ppm as sent ('' where the class keeps nothing back). */
  readonly ppm: readonly string[];
  readonly shares: Readonly<Record<string, number>>;
}

/** What a call names, in plan order: its cost per limit, its priority class, the keys a reset clears. Checked before any round trip. */
export class Naming {
  private readonly unit: number[];
  private readonly classes = new Map<string, PriorityClass>();

  constructor(
    private readonly plans: readonly LimitPlan[],
    limits: readonly AnyLimitSpec[] = [],
    priorities: Priorities = {},
  ) {
    this.unit = plans.map(() => 1);
    const names = new Set([...Object.keys(priorities), ...limits.flatMap((l) => Object.keys(l.priorities ?? {}))]);
    for (const name of names) {
      const share = limits.map((l) => l.priorities?.[name] ?? priorities[name] ?? 1);
      const ppm = share.map((v) => Math.round(v * 1_000_000));
      this.classes.set(name, {
        name,
        ppm: ppm.map((v) => (v >= 1_000_000 ? '' : String(v))),
        shares: Object.fromEntries(limits.map((l, i) => [l.name, ppm[i]! / 1_000_000])),
      });
    }
  }

  /** The call's priority class (undefined: none named, every limit's whole capacity). */
  priority(name: string | undefined): PriorityClass | undefined {
    if (name === undefined) return undefined;
    const c = this.classes.get(name);
    if (!c) throw new InvalidArgumentError('limiter', 'priority', `priority ${JSON.stringify(name)} is not a class of this limiter${this.classes.size ? ` (${[...this.classes.keys()].join(', ')})` : ': it has no priorities'}`);
    return c;
  }

  /**
   * Per-limit costs; limits an object does not name cost `unnamed`. Each checked against its own
   * script's range. A concurrency limit's cost is 1 (hold a slot) or 0 (only ask): a number cost
   * of every limit holds one slot when above 0; an object may name it with 0 or 1 only.
   */
  costs(cost: Cost | undefined, unnamed = 1): number[] {
    if (cost === undefined) return this.unit;
    const check = (v: unknown, i: number, label: string) => {
      const p = this.plans[i]!;
      if (p.concurrency) {
        if (v !== 0 && v !== 1) throw new InvalidArgumentError('limiter', 'cost', `${label} must be 1 (hold a slot) or 0 (only ask) for concurrency limit ${p.name}, got ${String(v)}`);
        return v;
      }
      const c = p.consume;
      intArg(c.def.name, c.def.args[c.costIndex]!, v as number, label);
      return v as number;
    };
    if (typeof cost === 'number') {
      if (this.plans.every((p) => p.concurrency)) intArg('limiter', MULTI_COST, cost, 'cost'); // else the rate limits' own ranges check it
      return this.plans.map((p, i) => (p.concurrency ? (cost > 0 ? 1 : 0) : check(cost, i, 'cost')));
    }
    if (typeof cost !== 'object' || cost === null) throw new InvalidArgumentError('limiter', 'cost', 'cost must be a number or { [limitName]: number }');
    for (const k of Object.keys(cost)) {
      if (!this.plans.some((p) => p.name === k)) throw new InvalidArgumentError('limiter', 'cost', `cost names limit ${k}, which this limiter does not have`);
    }
    return this.plans.map((p, i) => check(Object.hasOwn(cost, p.name) ? cost[p.name] : unnamed, i, `cost.${p.name}`));
  }

  /** A commit's actual use per limit: a number for every limit, an object for those it names (the others keep their estimates). */
  actuals(actual: Cost): (number | undefined)[] {
    if (typeof actual === 'number') return this.plans.map(() => actual);
    if (typeof actual !== 'object' || actual === null) throw new InvalidArgumentError('limiter', 'actual', 'actual must be a number or { [limitName]: number }');
    for (const k of Object.keys(actual)) {
      if (!this.plans.some((p) => p.name === k)) throw new InvalidArgumentError('limiter', 'actual', `actual names limit ${k}, which this limiter does not have`);
    }
    return this.plans.map((p) => (Object.hasOwn(actual, p.name) ? actual[p.name] : undefined));
  }

  /**
   * The limits a reset names (by `limits`, or by `scopes`: every limit keyed by one), or null when
   * it names none (the subject's own: every limit keyed by its id). resetKeys checks the names.
   */
  resetNames(o: ResetOptions): ReadonlySet<string> | null {
    if (o?.limits === undefined && o?.scopes === undefined) return null;
    const limits = new Set(o.limits ?? []);
    const scopes = new Set(o.scopes ?? []);
    return new Set(this.plans.filter((p) => limits.has(p.name) || scopes.has(p.scope ?? 'id')).map((p) => p.name));
  }

  /** The keys a reset clears: the limits keyed by the subject's own id and its block (default), or exactly those named. */
  resetKeys(t: Target, blockKey: string | null, o: ResetOptions): string[] {
    const named = (list: unknown, what: 'limits' | 'scopes', known: (n: string) => boolean) => {
      if (list === undefined) return null;
      if (!Array.isArray(list) || list.length === 0) throw new InvalidArgumentError('limiter', what, `reset ${what} must be a non-empty array of names`);
      for (const n of list) if (!known(n)) throw new InvalidArgumentError('limiter', what, `reset names ${what === 'limits' ? 'limit' : 'scope'} ${JSON.stringify(n)}, which no limit of this limiter has`);
      return new Set<string>(list);
    };
    const names = named(o?.limits, 'limits', (n) => this.plans.some((p) => p.name === n));
    const scopes = named(o?.scopes, 'scopes', (n) => this.plans.some((p) => (p.scope ?? 'id') === n));
    const own = names === null && scopes === null;
    // Layout 'subject': one key holds every limit (all keyed by the id); which of them resetNames says.
    if (this.plans.length > 1 && t.keys.length === 1) return [t.keys[0]!];
    const keys = t.keys.filter((_, i) => i < this.plans.length && (own ? this.plans[i]!.scope === null : names?.has(this.plans[i]!.name) || scopes?.has(this.plans[i]!.scope ?? 'id')));
    if (blockKey !== null && own) keys.push(blockKey);
    if (keys.length === 0) throw new InvalidArgumentError('limiter', 'reset', 'every limit of this limiter is keyed by a scope: name the limits or scopes to reset');
    return keys;
  }
}
