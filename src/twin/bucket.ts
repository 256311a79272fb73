import { MAX_REFILL_MS, msUntil } from '../math/bucket-time.js';
import { QR, divmodTo, muldivmodTo } from '../math/exact.js';

export { MAX_REFILL_MS, msUntil, timeUntil, timeUntilTo } from '../math/bucket-time.js';

/**
 * The continuous-refill bucket shared by gcra and token_bucket: the twin of
 * scripts-lua/lib/bucket.lua. Content is whole + frac/periodMs units; durations ms + num/limit.
 * Pairs come back in `QR` (q = whole or ms, r = frac or num) to keep the hot path allocation-free.
 * Time in the bucket (msUntil, MAX_REFILL_MS) lives below the twin, in src/math/bucket-time.ts.
 */

/** Content (whole, frac) after `elapsedMs` of refill, never above burst (rl_refill). */
export function refill(whole: number, frac: number, elapsedMs: number, burst: number, limit: number, periodMs: number): [number, number] {
  divmodTo(frac, periodMs);
  whole += QR.q;
  frac = QR.r;
  if (whole >= burst || elapsedMs > MAX_REFILL_MS) return [burst, 0];
  if (elapsedMs <= 0) return [whole, frac];
  muldivmodTo(elapsedMs, limit, periodMs);
  const q = QR.q;
  divmodTo(frac + QR.r, periodMs);
  whole += q + QR.q;
  if (whole >= burst) return [burst, 0];
  return [whole, QR.r];
}

/** What takeTo decided: allowed (1/0), whole units left, retryAfterMs (0 allowed, -1 never). */
export const TAKE = { allowed: 0, left: 0, retry: 0 };

/** Take `cost` units (rl_take), into TAKE: the twin's hot path allocates nothing per decision. */
export function takeTo(whole: number, frac: number, burst: number, cost: number, limit: number, periodMs: number): void {
  TAKE.left = whole;
  if (cost > burst) {
    TAKE.allowed = 0;
    TAKE.retry = -1;
  } else if (whole >= cost) {
    TAKE.allowed = 1;
    TAKE.left = whole - cost;
    TAKE.retry = 0;
  } else {
    TAKE.allowed = 0;
    TAKE.retry = msUntil(cost, whole, frac, limit, periodMs);
  }
}

/** Give `cost` units back, never above burst (rl_give). */
export function give(whole: number, frac: number, burst: number, cost: number): [number, number] {
  if (whole + cost >= burst) return [burst, 0];
  return [whole + cost, frac];
}
