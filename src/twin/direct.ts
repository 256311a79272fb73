/**
 * Single-key consume scripts on the twin without a script call: the in-memory path (a limiter
 * without Redis, or the fallback) decides one key per call, always with the same arguments but
 * the cost and priority share, so it binds them once and passes no call object, argument record
 * or reply array per decision. Each runs the very code its script runs (twinScripts) and throws
 * what it throws; a script not listed here (quota, sliding_log) goes through TwinClient.runParsed.
 */
import type { ArgValues } from './args.js';
import { keep } from './eval.js';
import { gcraConsumeTo } from './gcra.js';
import { tokenBucketConsumeTo } from './token-bucket.js';
import { fixedWindowConsumeTo, slidingWindowConsumeTo } from './windows.js';
import type { MemoryStore } from './store.js';

/**
 * One consume decision on `key` into `out` ([allowed, remaining, reset_after_ms, retry_after_ms],
 * the script's reply): `sharePpm` as the script's share_ppm (undefined: its default). Throws
 * TwinStateError when the key holds another algorithm's state (TwinClient turns it into the
 * script's error, as runParsed does).
 */
export type DirectConsume = (out: number[], store: MemoryStore, key: string, cost: number, sharePpm: number | undefined, now: number) => void;

const n = (v: unknown) => v as number;

/** `script`'s consume bound to its parsed arguments (`args`: as runParsed would be given them), or null. */
export function directConsume(script: string, args: Readonly<ArgValues>): DirectConsume | null {
  switch (script) {
    case 'gcra': {
      const limit = n(args.limit);
      const periodMs = n(args.period_ms);
      const burst = n(args.burst);
      return (out, store, key, cost, sharePpm, now) => gcraConsumeTo(out, store, key, limit, periodMs, burst, cost, now, false, keep(burst, sharePpm));
    }
    case 'token_bucket': {
      const limit = n(args.limit);
      const periodMs = n(args.period_ms);
      const burst = n(args.burst);
      return (out, store, key, cost, sharePpm, now) => tokenBucketConsumeTo(out, store, key, limit, periodMs, burst, cost, now, false, keep(burst, sharePpm));
    }
    case 'fixed_window': {
      const limit = n(args.limit);
      const periodMs = n(args.period_ms);
      const offsetMs = n(args.offset_ms);
      return (out, store, key, cost, sharePpm, now) => fixedWindowConsumeTo(out, store, key, limit, periodMs, offsetMs, cost, now, false, keep(limit, sharePpm));
    }
    case 'sliding_window': {
      const limit = n(args.limit);
      const periodMs = n(args.period_ms);
      return (out, store, key, cost, sharePpm, now) => slidingWindowConsumeTo(out, store, key, limit, periodMs, cost, now, false, keep(limit, sharePpm));
    }
    default:
      return null;
  }
}
