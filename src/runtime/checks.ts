import { InvalidArgumentError } from '../errors.js';
import { MAX_REFILL_MS, msUntil } from '../twin/bucket.js';
import type { ScriptDef } from './script-def.js';

/** TypeScript twins of the Lua `rl_check_<name>` functions a header names with `@check`. */
export const checks = {
  refillBounded(def: ScriptDef, limit: number, periodMs: number, burst: number): void {
    const refillMs = msUntil(burst, 0, 0, limit, periodMs);
    if (refillMs > MAX_REFILL_MS) {
      throw new InvalidArgumentError(
        def.name,
        'burst',
        `burst * period_ms / limit must be at most ${MAX_REFILL_MS} ms (10 years), got ${refillMs} ms`,
      );
    }
  },
};
