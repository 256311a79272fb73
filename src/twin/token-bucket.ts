/**
 * token_bucket (lib/algo_token_bucket.lua) over a MemoryStore: read, eval and refund. The store
 * keeps the content and the time it was counted at exactly; tokenBucketStateValue is the value
 * the Lua stores for it, byte for byte (the twin decides as the Lua does on every form it reads).
 */
import { type MemoryStore } from './store.js';
import { TAKE, give, msUntil, refill, takeTo } from './bucket.js';
import { NO_WRITES, del, expiresAt, type Eval, type Write } from './eval.js';

/** v3's integer -(ts_ms * 1000 + tokens): tokens < 1000, no fraction, ts_ms up to this (RL_TB_RADIX, RL_TB_MAX_PACKED_MS). */
export const TOKEN_BUCKET_RADIX = 1000;
export const TOKEN_BUCKET_MAX_PACKED_MS = 9_007_199_254_739;
/**
 * The compact form (v4, server clock): "-" and 19 digits, wd wd-digit tokens, fd fd-digit frac,
 * then ts_ms mod 10^e in e = 17 - wd - fd digits. It is read at an age now - ts_ms within
 * [-slack, reset + slack] and written only when 10^e > reset + 2 * slack (RL_TB_CLOCK_SLACK_MS).
 */
export const TOKEN_BUCKET_CLOCK_SLACK_MS = 60_000;
/** The compact form holds tokens below 10^8 (wd <= 8: the integer stays below 9 * 10^18 < 2^63) and frac below 10^9. */
export const TOKEN_BUCKET_COMPACT_MAX_TOKENS = 99_999_999;
export const TOKEN_BUCKET_COMPACT_MAX_FRAC = 999_999_999;

/**
 * The value token_bucket's Lua stores for content (whole, frac) counted at `ts`, written at `now`
 * and full again `reset` ms after ts (rl_token_bucket_writes: the key is deleted when reset is 0,
 * and this is null): v3's integer, the compact form (server clock), else "tokens,frac,ts_ms".
 */
export function tokenBucketStateValue(whole: number, frac: number, ts: number, reset: number, now: number, simulated: boolean): string | null {
  if (reset === 0) return null;
  if (frac === 0 && whole >= 0 && whole < TOKEN_BUCKET_RADIX && ts <= TOKEN_BUCKET_MAX_PACKED_MS && ts + whole > 0) return `-${ts * TOKEN_BUCKET_RADIX + whole}`;
  if (!simulated && ts <= now && whole >= 0 && whole <= TOKEN_BUCKET_COMPACT_MAX_TOKENS && frac <= TOKEN_BUCKET_COMPACT_MAX_FRAC) {
    const w = String(whole);
    const f = String(frac);
    const e = 17 - w.length - f.length;
    const span = Number(`1e${e}`); // 10^e, exact (e <= 15)
    if (reset + 2 * TOKEN_BUCKET_CLOCK_SLACK_MS < span) return `-${w.length}${f.length}${w}${f}${String(ts % span).padStart(e, '0')}`;
  }
  return `${whole},${frac},${ts}`;
}

export function tokenBucketRead(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, now: number): [number, number, number] {
  const v = store.get(key, 'token_bucket', now);
  if (!v) return [burst, 0, now];
  const [whole, frac] = refill(v.tokens, v.frac, now - v.tsMs, burst, limit, periodMs);
  return [whole, frac, v.tsMs > now ? v.tsMs : now];
}

/** Stores content (whole, frac) read at `ts`; deletes when full (absent = full). */
function tokenBucketStore(s: MemoryStore, key: string, whole: number, frac: number, ts: number, limit: number, periodMs: number, burst: number, now: number, simulated: boolean): void {
  const reset = msUntil(burst, whole, frac, limit, periodMs);
  if (reset === 0) s.delete(key);
  else s.set(key, { kind: 'token_bucket', tokens: whole, frac, tsMs: ts }, expiresAt(now, reset + ts - now, simulated));
}

/** The write tokenBucketStore makes, to apply later (multi: only if every item admits). */
function tokenBucketWrites(key: string, whole: number, frac: number, ts: number, limit: number, periodMs: number, burst: number, now: number, simulated: boolean): Write[] {
  const reset = msUntil(burst, whole, frac, limit, periodMs);
  if (reset === 0) return del(key);
  const value = { kind: 'token_bucket' as const, tokens: whole, frac, tsMs: ts };
  const at = expiresAt(now, reset + ts - now, simulated);
  return [(s) => s.set(key, value, at)];
}

/** What tokenBucketDecide decided (read at once). */
const D = { allowed: 0, remaining: 0, reset: 0, retry: 0, frac: 0, ts: 0 };

function tokenBucketDecide(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, keep: number): void {
  const [whole, frac, ts] = tokenBucketRead(store, key, limit, periodMs, burst, now);
  takeTo(whole, frac, burst, cost + keep, limit, periodMs);
  const { allowed, retry } = TAKE;
  const remaining = allowed === 1 ? TAKE.left + keep : TAKE.left;
  D.allowed = allowed;
  D.remaining = remaining;
  D.reset = msUntil(burst, remaining, frac, limit, periodMs);
  D.retry = retry;
  D.frac = frac;
  D.ts = ts;
}

export function tokenBucketEval(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  tokenBucketDecide(store, key, limit, periodMs, burst, cost, now, keep);
  const { allowed, remaining, reset, retry, frac, ts } = D;
  const writes = allowed === 1 && cost > 0 ? tokenBucketWrites(key, remaining, frac, ts, limit, periodMs, burst, now, simulated) : NO_WRITES;
  return [allowed, remaining, reset, retry, writes];
}

/** token_bucket (the single-key script): tokenBucketEval's decision, its write made at once, the reply into `out`. */
export function tokenBucketConsumeTo(out: number[], store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean, keep: number): void {
  tokenBucketDecide(store, key, limit, periodMs, burst, cost, now, keep);
  const { allowed, remaining, reset, retry, frac, ts } = D;
  if (allowed === 1 && cost > 0) tokenBucketStore(store, key, remaining, frac, ts, limit, periodMs, burst, now, simulated);
  out[0] = allowed;
  out[1] = remaining;
  out[2] = reset;
  out[3] = retry;
}

export function tokenBucketRefund(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean): [number, number, Write[]] {
  let [whole, frac, ts] = tokenBucketRead(store, key, limit, periodMs, burst, now);
  [whole, frac] = give(whole, frac, burst, cost);
  return [whole, msUntil(burst, whole, frac, limit, periodMs), tokenBucketWrites(key, whole, frac, ts, limit, periodMs, burst, now, simulated)];
}
