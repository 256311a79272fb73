import { algoNames, algorithms, itemFields, itemKinds } from '../../generated/algorithms.js';
import { InvalidArgumentError } from '../errors.js';
import { MAX_REFILL_MS, MAX_RESERVE_UNITS, msUntil } from '../math/bucket-time.js';
import { muldivmod } from '../math/exact.js';

/** One limit of a multi call, as the binding receives it. */
export interface MultiItemInput {
  algo: string;
  limit?: number;
  periodMs?: number;
  cost?: number;
  burst?: number;
  offsetMs?: number;
  unit?: string;
}

/** TypeScript twins of the Lua `rl_check_<name>` functions a header names with `@check`. */
export const checks = {
  refillBounded(script: string, limit: number, periodMs: number, burst: number): void {
    const refillMs = msUntil(burst, 0, 0, limit, periodMs);
    if (refillMs > MAX_REFILL_MS) {
      throw new InvalidArgumentError(script, 'burst', `burst * period_ms / limit must be at most ${MAX_REFILL_MS} ms (10 years), got ${refillMs} ms`);
    }
  },

  reserveBounded(script: string, limit: number, periodMs: number, maxWaitMs: number): void {
    const [q] = muldivmod(maxWaitMs, limit, periodMs);
    if (q > MAX_RESERVE_UNITS) {
      throw new InvalidArgumentError(script, 'max_wait_ms', `max_wait_ms * limit / period_ms must be at most ${MAX_RESERVE_UNITS} units, got ${q}`);
    }
  },

  offsetWithinPeriod(script: string, periodMs: number, offsetMs: number): void {
    if (offsetMs >= periodMs) {
      throw new InvalidArgumentError(script, 'offset_ms', `offset_ms must be less than period_ms (${periodMs}), got ${offsetMs}`);
    }
  },

  /** What rl_multi_check does in Lua, per item, with the same messages. */
  multiItems(script: string, items: readonly MultiItemInput[]): void {
    items.forEach((item, index) => checkItem(script, item, index + 1));
  },

  /** What rl_check_multi_batch_specs does in Lua. */
  multiBatchSpecs(script: string, count: number, specs: string, items: readonly { cost?: number }[]): void {
    if (items.length % count !== 0) throw new InvalidArgumentError(script, 'items', `${items.length} key(s) are not whole decisions of ${count} limit(s)`);
    const limits = parseMultiBatchSpecs(script, count, specs);
    limits.forEach((l, j) => {
      let cost = 0;
      for (let i = j; i < items.length; i += count) cost = Math.max(cost, items[i]!.cost ?? 1);
      checkItem(script, { ...l, cost }, j + 1);
    });
  },

  /** What rl_check_tiers_specs does in Lua (lib/tiers), with its messages. */
  tiersSpecs(script: string, count: number, specs: string, decisions: readonly { costs?: string; shares?: string }[]): void {
    const maxima = new Array<number>(count).fill(0);
    decisions.forEach((d, i) => {
      const costs = tiersList(script, 'costs', d.costs, count, 1_000_000_000_000_000, i + 1);
      tiersList(script, 'shares', d.shares, count, 1_000_000, i + 1);
      for (let j = 0; j < count; j++) maxima[j] = Math.max(maxima[j]!, costs ? costs[j]! : 1);
    });
    checkTiersCosts(script, count, specs, maxima);
  },

  /** What rl_check_tiers_items does in Lua (tiers_reserve: one group per limit), with its messages. */
  tiersItems(script: string, count: number, specs: string, items: readonly { cost?: number }[]): void {
    if (items.length !== count) throw new InvalidArgumentError(script, 'limits', `${items.length} limit group(s) for ${count} spec(s)`);
    checkTiersCosts(script, count, specs, items.map((it) => it.cost ?? 1));
  },

  /** What rl_check_batch_spec does in Lua: the shared limit, checked with the largest cost. */
  batchSpec(script: string, algo: string, limit: number, periodMs: number | undefined, burst: number, offsetMs: number, unit: string | undefined, decisions: readonly { cost?: number }[]): void {
    let cost = 0;
    for (const d of decisions) if ((d.cost ?? 1) > cost) cost = d.cost ?? 1;
    checkItem(script, { algo, limit, periodMs, burst, offsetMs, unit, cost }, undefined);
  },
};

/** The algorithms a subject's key can hold (lib/tiers: one string state each). */
export const TIERS_ALGOS: ReadonlySet<string> = new Set(['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'quota']);

/** rl_check_tiers_costs: the specs valid for the largest cost of each limit, each an algorithm one key can hold. */
function checkTiersCosts(script: string, count: number, specs: string, maxima: readonly number[]): void {
  const limits = parseMultiBatchSpecs(script, count, specs);
  limits.forEach((l, j) => checkItem(script, { ...l, cost: maxima[j]! }, j + 1));
  limits.forEach((l, j) => {
    if (!TIERS_ALGOS.has(l.algo)) throw new InvalidArgumentError(script, 'specs', `specs[${j + 1}] is ${l.algo}: a subject's key holds gcra, token_bucket, fixed_window, sliding_window and quota limits only`);
  });
}

/**
 * rl_tiers_list: `raw` ("1,250,1") as `count` integers in 0..max; undefined when omitted (''),
 * with the Lua's messages (`d` numbers the decision).
 */
export function tiersList(script: string, kind: string, raw: string | undefined, count: number, max: number, d: number): number[] | undefined {
  if (raw === undefined || raw === '') return undefined;
  const out: number[] = [];
  for (const field of raw.split(',')) {
    if (field.length > 16 || !/^\d+$/.test(field)) throw new InvalidArgumentError(script, kind, `${kind}[${d}] must be ${count} comma-separated decimal integers, got "${raw.slice(0, 80)}"`);
    const n = Number(field);
    if (n > max) throw new InvalidArgumentError(script, kind, `${kind}[${d}] entry ${out.length + 1} must be between 0 and ${max}, got ${field}`);
    out.push(n);
  }
  if (out.length !== count) throw new InvalidArgumentError(script, kind, `${kind}[${d}] has ${out.length} entries for ${count} limit(s)`);
  return out;
}

const SPEC = /^([a-z][a-z_]*),(\d*),(\d*),(\d*),(-?\d*),([a-z]*)$/;
const UNITS = itemFields.find((f) => f.name === 'unit')?.values ?? [];

/** rl_multi_batch_specs: the limits of a multi_batch call, parsed with the Lua's rules and messages. */
export interface BatchLimit {
  algo: string;
  limit: number;
  periodMs?: number;
  burst: number;
  offsetMs: number;
  unit?: string;
  cost: number;
}

export function parseMultiBatchSpecs(script: string, count: number, specs: string): BatchLimit[] {
  const out: BatchLimit[] = [];
  for (const spec of specs.split(';').filter((x) => x !== '')) {
    const i = out.length + 1;
    const m = SPEC.exec(spec);
    if (!m || !itemKinds.includes(m[1]!)) {
      throw new InvalidArgumentError(script, 'specs', `specs[${i}] must be algo,limit,period_ms,burst,offset_ms,unit with a known algo, got "${spec.slice(0, 80)}"`);
    }
    const [, algo, limit, periodMs, burst, offsetMs, unit] = m as unknown as string[];
    if (limit!.length > 16 || periodMs!.length > 16 || burst!.length > 16 || offsetMs!.length > 16 || (unit !== '' && !UNITS.includes(unit!))) {
      throw new InvalidArgumentError(script, 'specs', `specs[${i}] has a field out of range: "${spec.slice(0, 80)}"`);
    }
    const l = limit ? Number(limit) : 1;
    out.push({ algo: algo!, limit: l, periodMs: periodMs ? Number(periodMs) : undefined, burst: burst ? Number(burst) : l, offsetMs: offsetMs && offsetMs !== '-' ? Number(offsetMs) : 0, ...(unit ? { unit } : {}), cost: 0 });
  }
  if (out.length !== count) throw new InvalidArgumentError(script, 'specs', `specs has ${out.length} limit(s), count says ${count}`);
  return out;
}

/** Where multi / batch items carry each field, and what the Lua prologue defaults it to. */
const FIELD_ORDER = new Map(itemFields.map((f, i) => [f.name, i]));
const FIELD = new Map(itemFields.map((f) => [f.name, f]));

/**
 * rl_multi_check: an item's parameters by its algorithm's own ranges (from the generated table),
 * with the Lua's order and messages. `i` numbers the item in messages (limit[2]); undefined for a
 * single limit. The enum parameters first (they say which formula applies), then every integer,
 * the per-call ones (cost) among them, in item field order; offset_within_period narrows the offset's range to
 * the period; then the algorithm's other checks. An item kind that is no algorithm (block) has
 * nothing to check.
 */
function checkItem(script: string, item: MultiItemInput, i: number | undefined): void {
  const rules = ITEM_RULES.get(item.algo);
  if (rules === undefined) return;
  const raw = item as unknown as Readonly<Record<string, number | string | undefined>>;
  const value = (field: string): number | string | undefined => {
    const f = FIELD.get(field);
    const v = raw[f?.prop ?? field];
    if (v !== undefined || f?.default === undefined) return v;
    return typeof f.default === 'object' ? value(f.default.arg) : f.default;
  };
  const label = (name: string) => (i === undefined ? name : `${name}[${i}]`);
  const required = (field: string) => new InvalidArgumentError(script, field, `${label(field)} is required for algo ${item.algo}`);
  for (const field of rules.present) if (value(field) === undefined) throw required(field);
  for (const r of rules.ranges) {
    const v = value(r.field) as number | undefined;
    if (v === undefined) {
      if (r.required) throw required(r.field);
      continue;
    }
    const max = r.belowField === undefined ? r.max : Math.min(r.max, (value(r.belowField) as number) - 1);
    if (v < r.min || v > max) {
      throw new InvalidArgumentError(script, r.field, `${label(r.field)} must be between ${r.min} and ${max} for algo ${item.algo}, got ${v}`);
    }
  }
  for (const c of rules.checks) c.fn(script, c.fields.map((f) => value(f) as number));
}

interface ItemRules {
  /** Required enum fields (checked first: they say which formula applies). */
  present: string[];
  /** Integer fields in item order: the algorithm's range, below another field's value when offset_within_period says so. */
  ranges: { field: string; min: number; max: number; required: boolean; belowField?: string }[];
  checks: { fn: (script: string, values: number[]) => void; fields: string[] }[];
}

/** The checks an algorithm's header may name, applied to an item's values (by parameter order). */
const ITEM_CHECKS: Record<string, (script: string, values: number[]) => void> = {
  refill_bounded: (script, [limit, periodMs, burst]) => checks.refillBounded(script, limit!, periodMs!, burst!),
};

/** Each algorithm's item rules, compiled once from the generated table. */
const ITEM_RULES = new Map<string, ItemRules>(
  algoNames.map((name) => {
    const a = algorithms[name];
    const fieldOf = (param: string) => a.params.find((p) => p.name === param)!.item;
    const within = a.checks.find((c) => c.name === 'offset_within_period');
    const ranges = [...a.params, ...a.perCall.map((p) => ({ ...p, required: false }))]
      .filter((p) => p.type === 'int')
      .sort((x, y) => FIELD_ORDER.get(x.item)! - FIELD_ORDER.get(y.item)!)
      .map((p) => ({
        field: p.item,
        min: p.min!,
        max: p.max!,
        required: p.required,
        ...(within?.args[1] === p.name ? { belowField: fieldOf(within.args[0]!) } : {}),
      }));
    const rest = a.checks.filter((c) => c !== within).map((c) => {
      const fn = ITEM_CHECKS[c.name];
      if (!fn) throw new Error(`redlimit: no TypeScript twin of the check ${c.name} of algo ${name}`);
      return { fn, fields: c.args.map(fieldOf) };
    });
    const present = a.params.filter((p) => p.type !== 'int' && p.required).map((p) => p.item);
    return [name, { present, ranges, checks: rest }];
  }),
);
