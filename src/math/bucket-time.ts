import { QR, divmodTo, muldivmodTo } from './exact.js';

/**
 * Time in a continuous-refill bucket (gcra, token_bucket): the part of scripts-lua/lib/bucket.lua
 * both the argument checks (rl_check_refill_bounded) and the twin need. A bucket holds
 * whole + frac/periodMs units and refills `limit` units per `periodMs`; a duration is
 * ms + num/limit. Pairs come back in `QR` (q = ms, r = num) to keep the hot path allocation-free.
 */

/** Longest a bucket may take to refill from empty: 10 years. It bounds every TTL and keeps every intermediate value exact. */
export const MAX_REFILL_MS = 315360000000;

/** Most units one reservation may put a bucket in debt: max_wait_ms * limit / period_ms (rl_check_reserve_bounded). */
export const MAX_RESERVE_UNITS = 1000000000;

/** Exact time until the bucket holds `target`, into QR (q ms + r / limit). */
export function timeUntilTo(target: number, whole: number, frac: number, limit: number, periodMs: number): void {
  if (whole >= target) {
    QR.q = 0;
    QR.r = 0;
    return;
  }
  muldivmodTo(target - whole, periodMs, limit);
  const q = QR.q;
  divmodTo(QR.r - frac, limit);
  QR.q += q;
}

export function timeUntil(target: number, whole: number, frac: number, limit: number, periodMs: number): [number, number] {
  timeUntilTo(target, whole, frac, limit, periodMs);
  return [QR.q, QR.r];
}

/** The same, rounded up to whole ms (rl_ms_until). */
export function msUntil(target: number, whole: number, frac: number, limit: number, periodMs: number): number {
  timeUntilTo(target, whole, frac, limit, periodMs);
  return QR.r > 0 ? QR.q + 1 : QR.q;
}
