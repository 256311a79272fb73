/**
 * Every algorithm of scripts-lua/lib/algo_*.lua in TypeScript, step for step, over a MemoryStore:
 * the exact in-memory twin the client falls back to. Same integer math (src/twin/exact.ts,
 * src/twin/bucket.ts), same replies; differential tests hold the two together.
 */
import { type MemoryStore, type TwinValue } from './store.js';
import { QR, divmod, divmodTo, muldivmod, muldivmodTo } from './exact.js';
import { TAKE, give, msUntil, refill, takeTo, timeUntil, timeUntilTo } from './bucket.js';
import { calendarPeriod, type Zone } from './calendar.js';

/** allowed (1/0), remaining, resetAfterMs, retryAfterMs, and the writes to apply if admitted. */
export type Eval = [number, number, number, number, Write[]];
export type Write = (store: MemoryStore) => void;

const SIMULATED_GRACE_MS = 60_000;

/** Absolute expiry of a key written at `now` with `ttl` (the twin's clock is always the caller's). */
function expiresAt(now: number, ttl: number, simulated: boolean): number {
  return now + ttl + (simulated ? SIMULATED_GRACE_MS : 0);
}

const NO_WRITES: Write[] = [];
const del = (key: string): Write[] => [(s) => void s.delete(key)];

export function apply(store: MemoryStore, writes: Write[]): void {
  for (const w of writes) w(store);
}

// --- priority classes -------------------------------------------------------------------------

/**
 * Units a call of share `sharePpm` (parts per million of `capacity`) must leave after it
 * (lib/priority.lua rl_keep): capacity - floor(capacity * sharePpm / 1e6), 0 for undefined or 1e6.
 * Every algorithm decides at cost + keep and takes cost.
 */
export function keep(capacity: number, sharePpm: number | undefined): number {
  if (sharePpm === undefined || sharePpm >= 1_000_000) return 0;
  const r = capacity % 1_000_000; // capacity >= 1: the same as Lua's math.fmod
  const rs = r * sharePpm;
  return capacity - ((capacity - r) / 1_000_000) * sharePpm - (rs - (rs % 1_000_000)) / 1_000_000;
}

// --- gcra -------------------------------------------------------------------------------------

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

/** Stores content whose exact time to full is resetMs + resetNum / limit (deletes when full). */
export function gcraWrites(key: string, resetMs: number, resetNum: number, now: number, simulated: boolean, current?: GcraState): Write[] {
  if (resetMs === 0 && resetNum === 0) return del(key);
  const at = expiresAt(now, resetNum > 0 ? resetMs + 1 : resetMs, simulated);
  const tatMs = now + resetMs;
  return [
    (s) => {
      const v = current ?? s.get(key, 'gcra', now);
      if (v) {
        v.tatMs = tatMs;
        v.tatNum = resetNum;
        s.expire(key, at);
      } else s.set(key, { kind: 'gcra', tatMs, tatNum: resetNum }, at);
    },
  ];
}

export function gcraEval(store: MemoryStore, key: string, limit: number, periodMs: number, burst: number, cost: number, now: number, simulated: boolean, keep = 0): Eval {
  const current = store.get(key, 'gcra', now);
  gcraContent(current, limit, periodMs, burst, now);
  const frac = QR.r;
  takeTo(QR.q, frac, burst, cost + keep, limit, periodMs);
  const { allowed, retry } = TAKE;
  const left = allowed === 1 ? TAKE.left + keep : TAKE.left;
  timeUntilTo(burst, left, frac, limit, periodMs);
  const resetMs = QR.q;
  const resetNum = QR.r;
  const writes = allowed === 1 && cost > 0 ? gcraWrites(key, resetMs, resetNum, now, simulated, current) : NO_WRITES;
  return [allowed, Math.max(left, 0), resetNum > 0 ? resetMs + 1 : resetMs, retry, writes];
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

// --- token_bucket -----------------------------------------------------------------------------

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

// --- sliding_log ------------------------------------------------------------------------------

/** Live entries (ts > now - period), trimming the rest when `trim`. */
function slidingLogLive(store: MemoryStore, key: string, periodMs: number, now: number, trim: boolean) {
  const v = store.get(key, 'sliding_log', now);
  if (!v) return [];
  const firstLive = v.entries.findIndex((e) => e.ts > now - periodMs);
  const live = firstLive === -1 ? [] : v.entries.slice(firstLive);
  if (trim && live.length !== v.entries.length) {
    if (live.length === 0) store.delete(key);
    else v.entries = live;
  }
  return live;
}

export function slidingLogEval(store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, simulated: boolean, trim: boolean, keep = 0): Eval {
  const live = slidingLogLive(store, key, periodMs, now, trim);
  const oldest = live[0];
  const newest = live[live.length - 1];
  const used = oldest && newest ? newest.cum - oldest.cum + oldest.cost : 0;
  const cumulative = newest ? newest.cum : 0;
  const reset = used > 0 ? Math.max(newest!.ts + periodMs - now, 0) : 0;
  const need = cost + keep;
  if (need > limit) return [0, limit - used, reset, -1, NO_WRITES];
  if (used + need > limit) {
    const needed = used + need - limit;
    let freed = 0;
    let retry = 0;
    for (const e of live) {
      freed += e.cost;
      if (freed >= needed) {
        retry = e.ts + periodMs - now;
        break;
      }
    }
    return [0, limit - used, reset, retry, NO_WRITES];
  }
  if (cost === 0) return [1, limit - used, reset, 0, NO_WRITES];
  const at = expiresAt(now, periodMs, simulated);
  return [
    1,
    limit - used - cost,
    periodMs,
    0,
    [
      (s) => {
        const v = s.get(key, 'sliding_log', now);
        const entry = { ts: now, cum: cumulative + cost, cost };
        if (v) {
          // A sorted set ordered by score: insert after every entry with ts <= now.
          let i = v.entries.length;
          while (i > 0 && v.entries[i - 1]!.ts > now) i--;
          v.entries.splice(i, 0, entry);
          s.expire(key, at);
        } else {
          s.set(key, { kind: 'sliding_log', entries: [entry] }, at);
        }
      },
    ],
  ];
}

// --- block ------------------------------------------------------------------------------------

export function blockRead(store: MemoryStore, key: string, now: number): number | undefined {
  const v = store.get(key, 'block', now);
  if (!v || v.untilMs <= now) return undefined;
  return v.untilMs;
}

export function block(store: MemoryStore, key: string, durationMs: number, now: number, simulated: boolean): number {
  if (durationMs === 0) {
    store.delete(key);
    return 0;
  }
  const untilMs = now + durationMs;
  const current = blockRead(store, key, now);
  if (current !== undefined && current > untilMs) return current;
  store.set(key, { kind: 'block', untilMs }, expiresAt(now, durationMs, simulated));
  return untilMs;
}

// --- concurrency ------------------------------------------------------------------------------

function leases(store: MemoryStore, key: string, now: number): Map<string, number> | undefined {
  return store.get(key, 'leases', now, 'concurrency')?.leases;
}

function leasesTrim(store: MemoryStore, key: string, now: number): number {
  const l = leases(store, key, now);
  if (!l) return 0;
  for (const [id, until] of l) if (until <= now) l.delete(id);
  if (l.size === 0) store.delete(key);
  return l.size;
}

function leasesReset(store: MemoryStore, key: string, now: number): number {
  const l = leases(store, key, now);
  if (!l || l.size === 0) return 0;
  let last = -Infinity;
  for (const until of l.values()) last = Math.max(last, until);
  return Math.max(last - now, 0);
}

function leasesExpire(store: MemoryStore, key: string, now: number, simulated: boolean): number {
  const reset = leasesReset(store, key, now);
  if (reset > 0) store.expire(key, expiresAt(now, reset, simulated));
  return reset;
}

/** Live leases (until > now), dropping the rest first when `trim` (rl_concurrency_live). */
function leasesLive(store: MemoryStore, key: string, now: number, trim: boolean): number {
  if (trim) return leasesTrim(store, key, now);
  const l = leases(store, key, now);
  let live = 0;
  if (l) for (const until of l.values()) if (until > now) live++;
  return live;
}

/**
 * One slot for `holder` (rl_concurrency_eval): cost 1 takes a slot (a holder still live renews
 * its own, always admitted), cost 0 takes nothing; decided at cost + keep free slots.
 */
export function concurrencyEval(store: MemoryStore, key: string, limit: number, periodMs: number, holder: string, cost: number, now: number, simulated: boolean, trim: boolean, keep = 0): Eval {
  let live = leasesLive(store, key, now, trim);
  const l = leases(store, key, now);
  const renew = cost > 0 && (l?.get(holder) ?? -Infinity) > now;
  if (!renew) {
    const need = cost + keep;
    if (need > limit) return [0, Math.max(limit - live, 0), leasesReset(store, key, now), -1, NO_WRITES];
    if (live + need > limit) {
      const soonest = [...l!.values()].filter((u) => u > now).sort((x, y) => x - y);
      return [0, Math.max(limit - live, 0), leasesReset(store, key, now), soonest[live + need - limit - 1]! - now, NO_WRITES];
    }
    if (cost === 0) return [1, limit - live, leasesReset(store, key, now), 0, NO_WRITES];
    live++;
  }
  let reset = periodMs;
  if (l) for (const [id, until] of l) if (id !== holder && until - now > reset) reset = until - now;
  const at = expiresAt(now, reset, simulated);
  const until = now + periodMs;
  return [
    1,
    Math.max(limit - live, 0),
    reset,
    0,
    [
      (s) => {
        const m = leases(s, key, now);
        if (m) {
          m.set(holder, until);
          s.expire(key, at);
        } else s.set(key, { kind: 'leases', leases: new Map([[holder, until]]) }, at);
      },
    ],
  ];
}

export function concurrencyAcquire(store: MemoryStore, key: string, limit: number, periodMs: number, leaseId: string, now: number, simulated: boolean, keep = 0): number[] {
  const e = concurrencyEval(store, key, limit, periodMs, leaseId, 1, now, simulated, true, keep);
  if (e[0] === 1) apply(store, e[4]);
  return [e[0], e[1], e[2], e[3]];
}

export function concurrencyRelease(store: MemoryStore, key: string, leaseId: string, now: number, simulated: boolean): number[] {
  const l = leases(store, key, now);
  const until = l?.get(leaseId);
  let released = 0;
  if (until !== undefined) {
    l!.delete(leaseId);
    if (l!.size === 0) store.delete(key);
    if (until > now) released = 1;
  }
  const live = leasesTrim(store, key, now);
  leasesExpire(store, key, now, simulated);
  return [released, live];
}

export function concurrencyPeek(store: MemoryStore, key: string, limit: number, now: number, keep = 0): number[] {
  const live = leasesLive(store, key, now, false);
  return [live + 1 + keep <= limit ? 1 : 0, Math.max(limit - live, 0), leasesReset(store, key, now), live];
}
