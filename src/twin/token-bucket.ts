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

function tokenBucketWrites(key: string, whole: number, frac: number, ts: number, limit: number, periodMs: number, burst: number, now: number, simulated: boolean): Write[] {
  const reset = msUntil(burst, whole, frac, limit, periodMs);
  if (reset === 0) return del(key);
  const value = { kind: 'token_bucket' as const, tokens: whole, frac, tsMs: ts };
  const at = expiresAt(now, reset + ts - now, simulated);
  return [(s) => s.set(key, value, at)];
}

export function tokenBucketEval(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  const [whole, frac, ts] = tokenBucketRead(store, key, limit, periodMs, burst, now);
  takeTo(whole, frac, burst, cost + keep, limit, periodMs);
  const { allowed, retry } = TAKE;
  const remaining = allowed === 1 ? TAKE.left + keep : TAKE.left;
  const reset = msUntil(burst, remaining, frac, limit, periodMs);
  const writes = allowed === 1 && cost > 0 ? tokenBucketWrites(key, remaining, frac, ts, limit, periodMs, burst, now, simulated) : NO_WRITES;
  return [allowed, remaining, reset, retry, writes];
}

export function tokenBucketRefund(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean): [number, number, Write[]] {
  let [whole, frac, ts] = tokenBucketRead(store, key, limit, periodMs, burst, now);
  [whole, frac] = give(whole, frac, burst, cost);
  return [whole, msUntil(burst, whole, frac, limit, periodMs), tokenBucketWrites(key, whole, frac, ts, limit, periodMs, burst, now, simulated)];
}
