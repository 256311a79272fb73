/** The window counters over a MemoryStore: fixed_window and quota (one counter per window) and sliding_window. */
import { type MemoryStore, type TwinValue } from './store.js';
import { QR, divmodTo, muldivmod, muldivmodTo } from './exact.js';
import { calendarPeriod, type Zone } from './calendar.js';
import { NO_WRITES, del, expiresAt, type Eval, type Write } from './eval.js';

// --- counters: fixed_window and quota ---------------------------------------------------------

export function windowStart(now: number, periodMs: number, offsetMs: number): number {
  divmodTo(now - offsetMs, periodMs);
  return now - QR.r;
}

/** The value counterRead last found live (undefined: none); counterTakeTo writes it in place. */
let readCounter: Extract<TwinValue, { kind: 'counter' }> | undefined;

function counterRead(store: MemoryStore, owner: string, key: string, start: number, now: number): number {
  const v = store.get(key, 'counter', now, owner);
  readCounter = v;
  if (!v || v.start !== start) return 0;
  return v.count;
}

function counterWrites(key: string, start: number, windowEnd: number, used: number, now: number, simulated: boolean): Write[] {
  if (used <= 0) return del(key);
  const value = { kind: 'counter' as const, start, count: used };
  const at = expiresAt(now, windowEnd - now, simulated);
  return [(s) => s.set(key, value, at)];
}

/**
 * Stores a window's count (deletes at 0). `current`: the key's live value, read in this call
 * (written over in place), else one recycled or a new one.
 */
function counterStore(s: MemoryStore, key: string, start: number, windowEnd: number, used: number, now: number, simulated: boolean, current: Extract<TwinValue, { kind: 'counter' }> | undefined): void {
  if (used <= 0) {
    s.delete(key);
    return;
  }
  const v = current ?? s.recycle(key, 'counter', now);
  if (v === undefined) {
    s.set(key, { kind: 'counter', start, count: used }, expiresAt(now, windowEnd - now, simulated));
    return;
  }
  v.start = start;
  v.count = used;
  s.set(key, v, expiresAt(now, windowEnd - now, simulated));
}

/** What counterDecide decided (read at once): the reply, and whether `used + cost` is to be written. */
const C = { allowed: 0, remaining: 0, reset: 0, retry: 0, write: false };

function counterDecide(limit: number, windowEnd: number, used: number, cost: number, now: number, keep: number): void {
  const need = cost + keep;
  C.write = false;
  C.remaining = limit - used;
  C.reset = used > 0 ? windowEnd - now : 0;
  if (need > limit) {
    C.allowed = 0;
    C.retry = -1;
  } else if (used + need > limit) {
    C.allowed = 0;
    C.retry = windowEnd - now;
  } else if (cost === 0) {
    C.allowed = 1;
    C.retry = 0;
  } else {
    C.allowed = 1;
    C.remaining = limit - used - cost;
    C.reset = windowEnd - now;
    C.retry = 0;
    C.write = true;
  }
}

function counterTake(key: string, limit: number, start: number, windowEnd: number, used: number, cost: number, now: number, simulated: boolean, keep: number): Eval {
  counterDecide(limit, windowEnd, used, cost, now, keep);
  return [C.allowed, C.remaining, C.reset, C.retry, C.write ? counterWrites(key, start, windowEnd, used + cost, now, simulated) : NO_WRITES];
}

/** A single-key counter script's decision, its write made at once, the reply into `out`. */
function counterTakeTo(out: number[], store: MemoryStore, key: string, limit: number, start: number, windowEnd: number, used: number, cost: number, now: number, simulated: boolean, keep: number): void {
  const current = readCounter; // counterRead's, just before (nothing read the store since)
  readCounter = undefined;
  counterDecide(limit, windowEnd, used, cost, now, keep);
  if (C.write) counterStore(store, key, start, windowEnd, used + cost, now, simulated, current);
  out[0] = C.allowed;
  out[1] = C.remaining;
  out[2] = C.reset;
  out[3] = C.retry;
}

export function fixedWindowEval(store: MemoryStore, key: string, limit: number, periodMs: number, offsetMs: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  const start = windowStart(now, periodMs, offsetMs);
  const used = counterRead(store, 'fixed_window', key, start, now);
  return counterTake(key, limit, start, start + periodMs, used, cost, now, simulated, keep);
}

/** fixed_window (the single-key script): fixedWindowEval's decision, its write made at once, the reply into `out`. */
export function fixedWindowConsumeTo(out: number[], store: MemoryStore, key: string, limit: number, periodMs: number, offsetMs: number, cost: number, now: number, simulated: boolean, keep: number): void {
  const start = windowStart(now, periodMs, offsetMs);
  const used = counterRead(store, 'fixed_window', key, start, now);
  counterTakeTo(out, store, key, limit, start, start + periodMs, used, cost, now, simulated, keep);
}

export function fixedWindowRefund(store: MemoryStore, key: string, limit: number, periodMs: number, offsetMs: number, cost: number, now: number, simulated: boolean): [number, number, Write[]] {
  const start = windowStart(now, periodMs, offsetMs);
  const used = Math.max(counterRead(store, 'fixed_window', key, start, now) - cost, 0);
  const reset = used > 0 ? start + periodMs - now : 0;
  return [limit - used, reset, counterWrites(key, start, start + periodMs, used, now, simulated)];
}

export function quotaEval(store: MemoryStore, key: string, limit: number, unit: string, zone: Zone, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  const [start, end] = calendarPeriod(now, unit, zone);
  const used = counterRead(store, 'quota', key, start, now);
  return counterTake(key, limit, start, end, used, cost, now, simulated, keep);
}

export function quotaRefund(store: MemoryStore, key: string, limit: number, unit: string, zone: Zone, cost: number, now: number, simulated: boolean): [number, number, Write[]] {
  const [start, end] = calendarPeriod(now, unit, zone);
  const used = Math.max(counterRead(store, 'quota', key, start, now) - cost, 0);
  const reset = used > 0 ? end - now : 0;
  return [limit - used, reset, counterWrites(key, start, end, used, now, simulated)];
}

// --- sliding_window ---------------------------------------------------------------------------

function slidingWindowRead(store: MemoryStore, key: string, start: number, periodMs: number, now: number): [number, number] {
  const v = store.get(key, 'sliding_window', now);
  if (!v) return [0, 0];
  if (v.start === start) return [v.cur, v.prev];
  if (v.start === start - periodMs) return [0, v.cur];
  return [0, 0];
}

function slidingWindowReset(start: number, periodMs: number, cur: number, prev: number, now: number): number {
  if (cur > 0) return start + 2 * periodMs - now;
  if (prev > 0) return start + periodMs - now;
  return 0;
}

function slidingWindowWrites(key: string, start: number, periodMs: number, cur: number, prev: number, now: number, simulated: boolean): Write[] {
  const reset = slidingWindowReset(start, periodMs, cur, prev, now);
  if (reset === 0) return del(key);
  const value = { kind: 'sliding_window' as const, start, cur, prev };
  const at = expiresAt(now, reset, simulated);
  return [(s) => s.set(key, value, at)];
}

function slidingWindowWhen(prev: number, room: number, periodMs: number): number {
  const [q] = muldivmod(room, periodMs, prev);
  return Math.max(periodMs - q, 0);
}

/**
 * Stores the two windows' counts (deletes once neither counts any more). `current`: the key's
 * live value, read in this call (written over in place), else one recycled or a new one.
 */
function slidingWindowStore(s: MemoryStore, key: string, start: number, periodMs: number, cur: number, prev: number, now: number, simulated: boolean, current: Extract<TwinValue, { kind: 'sliding_window' }> | undefined): void {
  const reset = slidingWindowReset(start, periodMs, cur, prev, now);
  if (reset === 0) {
    s.delete(key);
    return;
  }
  const v = current ?? s.recycle(key, 'sliding_window', now);
  if (v === undefined) {
    s.set(key, { kind: 'sliding_window', start, cur, prev }, expiresAt(now, reset, simulated));
    return;
  }
  v.start = start;
  v.cur = cur;
  v.prev = prev;
  s.set(key, v, expiresAt(now, reset, simulated));
}

/** The value slidingWindowDecide last found live (undefined: none); slidingWindowConsumeTo writes it in place. */
let readSliding: Extract<TwinValue, { kind: 'sliding_window' }> | undefined;

/** What slidingWindowDecide decided (read at once): the reply, and the counts to write when `write`. */
const W = { allowed: 0, remaining: 0, reset: 0, retry: 0, write: false, start: 0, cur: 0, prev: 0 };

function slidingWindowDecide(store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, keep: number): void {
  const start = windowStart(now, periodMs, 0);
  const elapsed = now - start;
  // slidingWindowRead without its array.
  const v = store.get(key, 'sliding_window', now);
  readSliding = v;
  let cur = 0;
  let prev = 0;
  if (v) {
    if (v.start === start) {
      cur = v.cur;
      prev = v.prev;
    } else if (v.start === start - periodMs) prev = v.cur;
  }
  muldivmodTo(prev, periodMs - elapsed, periodMs);
  const used = QR.r > 0 ? QR.q + 1 : QR.q;
  const room = limit - cur - used;
  const reset = slidingWindowReset(start, periodMs, cur, prev, now);
  const need = cost + keep;
  W.write = false;
  W.reset = reset;
  W.remaining = Math.max(room, 0);
  if (need > limit) {
    W.allowed = 0;
    W.retry = -1;
    return;
  }
  if (need <= room) {
    W.allowed = 1;
    W.retry = 0;
    W.remaining = room;
    if (cost === 0) return;
    cur += cost;
    W.remaining = room - cost;
    W.reset = slidingWindowReset(start, periodMs, cur, prev, now);
    W.write = true;
    W.start = start;
    W.cur = cur;
    W.prev = prev;
    return;
  }
  W.allowed = 0;
  W.retry =
    cur + need <= limit
      ? slidingWindowWhen(prev, limit - cur - need, periodMs) - elapsed
      : periodMs - elapsed + slidingWindowWhen(cur, limit - need, periodMs);
}

export function slidingWindowEval(store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  slidingWindowDecide(store, key, limit, periodMs, cost, now, keep);
  return [W.allowed, W.remaining, W.reset, W.retry, W.write ? slidingWindowWrites(key, W.start, periodMs, W.cur, W.prev, now, simulated) : NO_WRITES];
}

/** sliding_window (the single-key script): slidingWindowEval's decision, its write made at once, the reply into `out`. */
export function slidingWindowConsumeTo(out: number[], store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, simulated: boolean, keep: number): void {
  slidingWindowDecide(store, key, limit, periodMs, cost, now, keep);
  const current = readSliding;
  readSliding = undefined;
  if (W.write) slidingWindowStore(store, key, W.start, periodMs, W.cur, W.prev, now, simulated, current);
  out[0] = W.allowed;
  out[1] = W.remaining;
  out[2] = W.reset;
  out[3] = W.retry;
}

export function slidingWindowRefund(store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, simulated: boolean): [number, number, Write[]] {
  const start = windowStart(now, periodMs, 0);
  let [cur, prev] = slidingWindowRead(store, key, start, periodMs, now);
  cur = Math.max(cur - cost, 0);
  const [wq, wr] = muldivmod(prev, periodMs - (now - start), periodMs);
  const w = wr > 0 ? wq + 1 : wq;
  return [Math.max(limit - cur - w, 0), slidingWindowReset(start, periodMs, cur, prev, now), slidingWindowWrites(key, start, periodMs, cur, prev, now, simulated)];
}
