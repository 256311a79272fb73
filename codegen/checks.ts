/**
 * Cross-argument checks a header may declare with `@check`. Each one exists as a Lua function
 * `rl_check_<name>` (scripts-lua/lib) and as a TypeScript function in src/runtime/checks.ts.
 */
export const KNOWN_CHECKS: Record<string, { arity: number; doc: string }> = {
  refill_bounded: {
    arity: 3,
    doc: 'ceil(burst * period_ms / limit) <= 315360000000: a bucket refills from empty within 10 years',
  },
  reserve_bounded: {
    arity: 3,
    doc: 'floor(max_wait_ms * limit / period_ms) <= 1000000000: a reservation puts at most 1e9 units in debt',
  },
  multi_items: {
    arity: 1,
    doc: "each limit has what its algo needs, in that algo's ranges (see the single-limit scripts)",
  },
  batch_spec: {
    arity: 7,
    doc: "the one limit every decision shares has what its algo needs, in that algo's ranges, for the largest cost asked",
  },
  multi_batch_specs: {
    arity: 3,
    doc: 'specs parse as `count` limits (algo,limit,period_ms,burst,offset_ms,unit), each valid for the largest cost asked of it, and the keys are whole decisions',
  },
  tiers_specs: {
    arity: 3,
    doc: "each decision's costs and shares are `count` comma-separated integers in range (or empty), specs parse as `count` limits of algorithms one key can hold (gcra, token_bucket, fixed_window, sliding_window, quota), each valid for the largest cost asked of it",
  },
  tiers_items: {
    arity: 3,
    doc: 'one limit group per spec, specs hold only limits one key can hold (tiers_specs), each valid for its cost',
  },
  offset_within_period: {
    arity: 2,
    doc: 'offset_ms < period_ms',
  },
};
