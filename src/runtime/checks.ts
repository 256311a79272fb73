import { InvalidArgumentError } from '../errors.js';
import { MAX_REFILL_MS, msUntil } from '../twin/bucket.js';
import { muldivmod } from '../twin/exact.js';

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
    if (q > 1_000_000_000) {
      throw new InvalidArgumentError(script, 'max_wait_ms', `max_wait_ms * limit / period_ms must be at most 1000000000 units, got ${q}`);
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

  /** What rl_check_batch_spec does in Lua: the shared limit, checked with the largest cost. */
  batchSpec(script: string, algo: string, limit: number, periodMs: number | undefined, burst: number, offsetMs: number, unit: string | undefined, decisions: readonly { cost?: number }[]): void {
    let cost = 0;
    for (const d of decisions) if ((d.cost ?? 1) > cost) cost = d.cost ?? 1;
    checkItem(script, { algo, limit, periodMs, burst, offsetMs, unit, cost }, undefined);
  },
};

const SPEC = /^([a-z][a-z_]*),(\d*),(\d*),(\d*),(-?\d*),([a-z]*)$/;
const SPEC_ALGOS = ['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota', 'block'];

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
    if (!m || !SPEC_ALGOS.includes(m[1]!)) {
      throw new InvalidArgumentError(script, 'specs', `specs[${i}] must be algo,limit,period_ms,burst,offset_ms,unit with a known algo, got "${spec.slice(0, 80)}"`);
    }
    const [, algo, limit, periodMs, burst, offsetMs, unit] = m as unknown as string[];
    if (limit!.length > 16 || periodMs!.length > 16 || burst!.length > 16 || offsetMs!.length > 16 || (unit !== '' && !['day', 'week', 'month'].includes(unit!))) {
      throw new InvalidArgumentError(script, 'specs', `specs[${i}] has a field out of range: "${spec.slice(0, 80)}"`);
    }
    const l = limit ? Number(limit) : 1;
    out.push({ algo: algo!, limit: l, periodMs: periodMs ? Number(periodMs) : undefined, burst: burst ? Number(burst) : l, offsetMs: offsetMs && offsetMs !== '-' ? Number(offsetMs) : 0, ...(unit ? { unit } : {}), cost: 0 });
  }
  if (out.length !== count) throw new InvalidArgumentError(script, 'specs', `specs has ${out.length} limit(s), count says ${count}`);
  return out;
}

/** rl_multi_check: `i` numbers the item in messages (limit[2]); undefined for a single limit. */
function checkItem(script: string, item: MultiItemInput, i: number | undefined): void {
  const label = (name: string) => (i === undefined ? name : `${name}[${i}]`);
  const need = (name: string, value: number | undefined, min: number, max: number) => {
    if (value === undefined) throw new InvalidArgumentError(script, name, `${label(name)} is required for algo ${item.algo}`);
    if (value < min || value > max) {
      throw new InvalidArgumentError(script, name, `${label(name)} must be between ${min} and ${max} for algo ${item.algo}, got ${value}`);
    }
  };
  if (item.algo === 'block') return;
  if (item.algo === 'quota') {
    if (item.unit === undefined) throw new InvalidArgumentError(script, 'unit', `${label('unit')} is required for algo quota`);
    need('offset_ms', item.offsetMs ?? 0, -50_400_000, 50_400_000);
    return;
  }
  const limit = item.limit ?? 1;
  need('limit', limit, 1, 1_000_000_000);
  need('period_ms', item.periodMs, 1, 31_622_400_000);
  need('cost', item.cost ?? 1, 0, 1_000_000_000);
  if (item.algo === 'gcra' || item.algo === 'token_bucket') {
    need('burst', item.burst ?? limit, 1, 1_000_000_000);
    checks.refillBounded(script, limit, item.periodMs!, item.burst ?? limit);
  } else if (item.algo === 'fixed_window') {
    need('offset_ms', item.offsetMs ?? 0, 0, item.periodMs! - 1);
  }
}
