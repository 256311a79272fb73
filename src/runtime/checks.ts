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

  /** What rl_check_batch_spec does in Lua: the shared limit, checked with the largest cost. */
  batchSpec(script: string, algo: string, limit: number, periodMs: number | undefined, burst: number, offsetMs: number, unit: string | undefined, decisions: readonly { cost?: number }[]): void {
    let cost = 0;
    for (const d of decisions) if ((d.cost ?? 1) > cost) cost = d.cost ?? 1;
    checkItem(script, { algo, limit, periodMs, burst, offsetMs, unit, cost }, undefined);
  },
};

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
