/**
 * Cross-argument checks a header may declare with `@check`. Each one exists as a Lua function
 * `rl_check_<name>` (scripts-lua/lib) and as a TypeScript function in src/runtime/checks.ts.
 */
export const KNOWN_CHECKS: Record<string, { arity: number; doc: string }> = {
  refill_bounded: {
    arity: 3,
    doc: 'ceil(burst * period_ms / limit) <= 315360000000: a bucket refills from empty within 10 years',
  },
};
