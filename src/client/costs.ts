import { InvalidArgumentError } from '../errors.js';
import { intArg } from '../runtime/index.js';
import type { LimitPlan } from './plan.js';
import type { Target } from './keys.js';

/** Cost of a call: one number for every limit, or per limit name (missing names cost 1; in a refund, 0). */
export type Cost = number | Record<string, number>;

/** Which limits of a reset: the subject's own (default), or exactly those named. */
export interface ResetOptions {
  limits?: readonly string[];
  scopes?: readonly string[];
}

/** What a call names, in plan order: its cost per limit, the keys a reset clears. Checked before any round trip. */
export class Naming {
  private readonly unit: number[];

  constructor(private readonly plans: readonly LimitPlan[]) {
    this.unit = plans.map(() => 1);
  }

  /** Per-limit costs; limits an object does not name cost `unnamed`. Each checked against its own script's range. */
  costs(cost: Cost | undefined, unnamed = 1): number[] {
    if (cost === undefined) return this.unit;
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
    const keys = t.keys.filter((_, i) => i < this.plans.length && (own ? this.plans[i]!.scope === null : names?.has(this.plans[i]!.name) || scopes?.has(this.plans[i]!.scope ?? 'id')));
    if (blockKey !== null && own) keys.push(blockKey);
    if (keys.length === 0) throw new InvalidArgumentError('limiter', 'reset', 'every limit of this limiter is keyed by a scope: name the limits or scopes to reset');
    return keys;
  }
}
