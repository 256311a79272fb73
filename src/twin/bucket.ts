import { divmod, muldivmod } from './exact.js';

/**
 * The continuous-refill bucket shared by gcra and token_bucket: the twin of
 * scripts-lua/lib/bucket.lua. Content is whole + frac/periodMs units; durations ms + num/limit.
 */
export const MAX_REFILL_MS = 315360000000;

export function timeUntil(target: number, whole: number, frac: number, limit: number, periodMs: number): [number, number] {
  if (whole >= target) return [0, 0];
  const [q, r] = muldivmod(target - whole, periodMs, limit);
  const [carry, num] = divmod(r - frac, limit);
  return [q + carry, num];
}

export function msUntil(target: number, whole: number, frac: number, limit: number, periodMs: number): number {
  const [ms, num] = timeUntil(target, whole, frac, limit, periodMs);
  return num > 0 ? ms + 1 : ms;
}

export function refill(
  whole: number,
  frac: number,
  elapsedMs: number,
  burst: number,
  limit: number,
  periodMs: number,
): [number, number] {
  const [carry0, f0] = divmod(frac, periodMs);
  whole += carry0;
  frac = f0;
  if (whole >= burst) return [burst, 0];
  if (elapsedMs <= 0) return [whole, frac];
  const fullMs = msUntil(burst, whole, frac, limit, periodMs);
  if (elapsedMs >= fullMs) return [burst, 0];
  const [q, r] = muldivmod(elapsedMs, limit, periodMs);
  const [carry, f] = divmod(frac + r, periodMs);
  return [whole + q + carry, f];
}

/** [allowed 1/0, whole units left, retryAfterMs (0 allowed, -1 never)]. */
export function take(
  whole: number,
  frac: number,
  burst: number,
  cost: number,
  limit: number,
  periodMs: number,
): [number, number, number] {
  if (cost > burst) return [0, whole, -1];
  if (whole >= cost) return [1, whole - cost, 0];
  return [0, whole, msUntil(cost, whole, frac, limit, periodMs)];
}
