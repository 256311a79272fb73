/** The window counters over a MemoryStore: fixed_window and quota (one counter per window) and sliding_window. */
import { type MemoryStore } from './store.js';
import { divmod, muldivmod } from './exact.js';
import { calendarPeriod, type Zone } from './calendar.js';
import { NO_WRITES, del, expiresAt, type Eval, type Write } from './eval.js';

// --- counters: fixed_window and quota ---------------------------------------------------------

export function windowStart(now: number, periodMs: number, offsetMs: number): number {
  const [, into] = divmod(now - offsetMs, periodMs);
  return now - into;
}

function counterRead(store: MemoryStore, owner: string, key: string, start: number, now: number): number {
  const v = store.get(key, 'counter', now, owner);
  if (!v || v.start !== start) return 0;
  return v.count;
}

function counterWrites(key: string, start: number, windowEnd: number, used: number, now: number, simulated: boolean): Write[] {
  if (used <= 0) return del(key);
  const value = { kind: 'counter' as const, start, count: used };
  const at = expiresAt(now, windowEnd - now, simulated);
  return [(s) => s.set(key, value, at)];
}

function counterTake(key: string, limit: number, start: number, windowEnd: number, used: number, cost: number, now: number, simulated: boolean, keep: number): Eval {
  const reset = used > 0 ? windowEnd - now : 0;
  const need = cost + keep;
  if (need > limit) return [0, limit - used, reset, -1, NO_WRITES];
  if (used + need > limit) return [0, limit - used, reset, windowEnd - now, NO_WRITES];
  if (cost === 0) return [1, limit - used, reset, 0, NO_WRITES];
  return [1, limit - used - cost, windowEnd - now, 0, counterWrites(key, start, windowEnd, used + cost, now, simulated)];
}

export function fixedWindowEval(store: MemoryStore, key: string, limit: number, periodMs: number, offsetMs: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  const start = windowStart(now, periodMs, offsetMs);
  const used = counterRead(store, 'fixed_window', key, start, now);
  return counterTake(key, limit, start, start + periodMs, used, cost, now, simulated, keep);
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

export function slidingWindowEval(store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  const start = windowStart(now, periodMs, 0);
  const elapsed = now - start;
  let [cur, prev] = slidingWindowRead(store, key, start, periodMs, now);
  const [wq, wr] = muldivmod(prev, periodMs - elapsed, periodMs);
  const used = wr > 0 ? wq + 1 : wq;
  const room = limit - cur - used;
  const reset = slidingWindowReset(start, periodMs, cur, prev, now);
  const need = cost + keep;
  if (need > limit) return [0, Math.max(room, 0), reset, -1, NO_WRITES];
  if (need <= room) {
    if (cost === 0) return [1, room, reset, 0, NO_WRITES];
    cur += cost;
    return [1, room - cost, slidingWindowReset(start, periodMs, cur, prev, now), 0, slidingWindowWrites(key, start, periodMs, cur, prev, now, simulated)];
  }
  const retry =
    cur + need <= limit
      ? slidingWindowWhen(prev, limit - cur - need, periodMs) - elapsed
      : periodMs - elapsed + slidingWindowWhen(cur, limit - need, periodMs);
  return [0, Math.max(room, 0), reset, retry, NO_WRITES];
}

export function slidingWindowRefund(store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, simulated: boolean): [number, number, Write[]] {
  const start = windowStart(now, periodMs, 0);
  let [cur, prev] = slidingWindowRead(store, key, start, periodMs, now);
  cur = Math.max(cur - cost, 0);
  const [wq, wr] = muldivmod(prev, periodMs - (now - start), periodMs);
  const w = wr > 0 ? wq + 1 : wq;
  return [Math.max(limit - cur - w, 0), slidingWindowReset(start, periodMs, cur, prev, now), slidingWindowWrites(key, start, periodMs, cur, prev, now, simulated)];
}
