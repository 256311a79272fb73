/** token_bucket (lib/algo_token_bucket.lua) over a MemoryStore: read, eval and refund. */
import { type MemoryStore } from './store.js';
import { TAKE, give, msUntil, refill, takeTo } from './bucket.js';
import { NO_WRITES, del, expiresAt, type Eval, type Write } from './eval.js';

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
