/** gcra (lib/algo_gcra.lua) over a MemoryStore: read, eval, refund and reserve. */
import { type MemoryStore, type TwinValue } from './store.js';
import { QR, divmodTo, muldivmodTo } from './exact.js';
import { TAKE, give, msUntil, takeTo, timeUntil, timeUntilTo } from './bucket.js';
import { NO_WRITES, apply, del, expiresAt, type Eval, type Write } from './eval.js';

/** Content of a gcra key at `now` (whole, frac), full when absent or past; whole < 0 is debt. */
export function gcraRead(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, now: number): [number, number] {
  gcraContent(store.get(key, 'gcra', now), limit, periodMs, burst, now);
  return [QR.q, QR.r];
}

type GcraState = Extract<TwinValue, { kind: 'gcra' }>;

function gcraContent(v: GcraState | undefined, limit: number, periodMs: number, burst: number, now: number): void {
  if (!v || v.tatMs < now) {
    QR.q = burst;
    QR.r = 0;
    return;
  }
  muldivmodTo(burst, periodMs, limit);
  const spanMs = QR.q;
  divmodTo(QR.r - v.tatNum, limit);
  const slackNum = QR.r;
  const slackMs = spanMs - (v.tatMs - now) + QR.q;
  if (slackMs < 0) {
    muldivmodTo(-slackMs, limit, periodMs);
    const q = QR.q;
    divmodTo(slackNum - QR.r, periodMs);
    QR.q -= q;
    return;
  }
  muldivmodTo(slackMs, limit, periodMs);
  const q = QR.q;
  divmodTo(QR.r + slackNum, periodMs);
  QR.q += q;
}

/** Stores content whose exact time to full is resetMs + resetNum / limit (deletes when full); `current` is the key's value if it is live. */
function gcraStore(s: MemoryStore, key: string, resetMs: number, resetNum: number, now: number, simulated: boolean, current: GcraState | undefined): void {
  if (resetMs === 0 && resetNum === 0) {
    s.delete(key);
    return;
  }
  const at = expiresAt(now, resetNum > 0 ? resetMs + 1 : resetMs, simulated);
  const tatMs = now + resetMs;
  if (current) {
    current.tatMs = tatMs;
    current.tatNum = resetNum;
    s.expire(key, at);
  } else {
    const v = s.recycle(key, 'gcra', now);
    if (v !== undefined) {
      v.tatMs = tatMs;
      v.tatNum = resetNum;
      s.set(key, v, at);
    } else s.set(key, { kind: 'gcra', tatMs, tatNum: resetNum }, at);
  }
}

/** The write gcraStore makes, to apply later (multi: only if every item admits). */
export function gcraWrites(key: string, resetMs: number, resetNum: number, now: number, simulated: boolean, current?: GcraState): Write[] {
  if (resetMs === 0 && resetNum === 0) return del(key);
  return [(s) => gcraStore(s, key, resetMs, resetNum, now, simulated, current ?? s.get(key, 'gcra', now))];
}

/** What gcraDecide decided (read at once; no allocation per decision). */
const D = { allowed: 0, left: 0, retry: 0, resetMs: 0, resetNum: 0 };

/** The decision at cost + keep on content `current` (its value, undefined if absent or expired), into D. */
function gcraDecide(current: GcraState | undefined, limit: number, periodMs: number, burst: number, cost: number, now: number, keep: number): void {
  gcraContent(current, limit, periodMs, burst, now);
  const frac = QR.r;
  takeTo(QR.q, frac, burst, cost + keep, limit, periodMs);
  D.allowed = TAKE.allowed;
  D.retry = TAKE.retry;
  D.left = TAKE.allowed === 1 ? TAKE.left + keep : TAKE.left;
  timeUntilTo(burst, D.left, frac, limit, periodMs);
  D.resetMs = QR.q;
  D.resetNum = QR.r;
}

export function gcraEval(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  const current = store.get(key, 'gcra', now);
  gcraDecide(current, limit, periodMs, burst, cost, now, keep);
  const { allowed, left, retry, resetMs, resetNum } = D;
  const writes = allowed === 1 && cost > 0 ? gcraWrites(key, resetMs, resetNum, now, simulated, current) : NO_WRITES;
  return [allowed, Math.max(left, 0), resetNum > 0 ? resetMs + 1 : resetMs, retry, writes];
}

/**
 * gcra (the single-key script): gcraEval's decision with its write made at once (one script has
 * nothing to roll back), so no closure or Eval per call. The reply [allowed, remaining, reset,
 * retry] is a fresh array (it goes back to the caller).
 */
export function gcraConsume(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean, keep = 0): number[] {
  const out = [0, 0, 0, 0];
  gcraConsumeTo(out, store, key, limit, periodMs, burst, cost, now, simulated, keep);
  return out;
}

/** gcraConsume with its reply written into `out` (the in-memory path's scratch: nothing allocated). */
export function gcraConsumeTo(out: number[], store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean, keep: number): void {
  const current = store.get(key, 'gcra', now);
  gcraDecide(current, limit, periodMs, burst, cost, now, keep);
  const { allowed, left, retry, resetMs, resetNum } = D;
  if (allowed === 1 && cost > 0) gcraStore(store, key, resetMs, resetNum, now, simulated, current);
  out[0] = allowed;
  out[1] = Math.max(left, 0);
  out[2] = resetNum > 0 ? resetMs + 1 : resetMs;
  out[3] = retry;
}

export function gcraRefund(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean): [number, number, Write[]] {
  let [whole, frac] = gcraRead(store, key, limit, periodMs, burst, now);
  [whole, frac] = give(whole, frac, burst, cost);
  const [resetMs, resetNum] = timeUntil(burst, whole, frac, limit, periodMs);
  return [Math.max(whole, 0), resetNum > 0 ? resetMs + 1 : resetMs, gcraWrites(key, resetMs, resetNum, now, simulated)];
}

/** gcra_reserve: [allowed, remaining, reset, retry, waitMs]. */
export function gcraReserve(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, maxWaitMs: number, now: number, simulated: boolean): number[] {
  let [whole, frac] = gcraRead(store, key, limit, periodMs, burst, now);
  const reset = msUntil(burst, whole, frac, limit, periodMs);
  if (cost > burst) return [0, Math.max(whole, 0), reset, -1, 0];
  const wait = msUntil(cost, whole, frac, limit, periodMs);
  if (wait > maxWaitMs) return [0, Math.max(whole, 0), reset, wait - maxWaitMs, 0];
  whole -= cost;
  const [resetMs, resetNum] = timeUntil(burst, whole, frac, limit, periodMs);
  apply(store, gcraWrites(key, resetMs, resetNum, now, simulated));
  return [1, Math.max(whole, 0), resetNum > 0 ? resetMs + 1 : resetMs, 0, wait];
}
