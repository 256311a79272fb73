/**
 * The twin of scripts-lua/reserve.lua and scripts-lua/settle.lua (with lib/reservation.lua and
 * lib/charge.lua): the same record strings under the same keys, the same decisions, the same
 * replies. A reservation made on the fallback during an outage settles on the fallback.
 */
import { ScriptError } from '../errors.js';
import * as a from './algorithms.js';
import type { ArgValues } from './args.js';
import { msUntil, timeUntil } from './bucket.js';
import { calendarPeriod, parseTzRules, type Zone } from './calendar.js';
import { muldivmod } from '../math/exact.js';
import type { TwinCall } from './scripts.js';
import { TwinStateError, type MemoryStore, type TwinValue } from './store.js';

/** settle's status codes (its header states them). */
export const SETTLE_STATUS = { unknown: 0, committed: 1, cancelled: 2, settled: 3, mismatch: 4 } as const;
const TOMBSTONE_MS = 600_000;
const SIMULATED_GRACE_MS = 60_000;

/** What scripts.ts lends: its multi (rl_multi) and its state-key error (WRONGTYPE / WRONGSTATE as Redis answers). */
export type TwinMulti = (c: TwinCall, commit: boolean, name: string) => number[];
export type StateKeyError = (script: string, store: MemoryStore, key: string, algo: string, now: number) => ScriptError;

/**
 * A reservation record or tombstone is a string in Redis; in the twin's store an entry of its own
 * kind holding the very same string. (The store's TwinValue has no such kind yet: cast here.)
 */
interface RecordValue {
  kind: 'reservation';
  text: string;
}
const RECORD_KIND = 'reservation' as unknown as TwinValue['kind'];

function expiresAt(now: number, ttl: number, simulated: boolean): number {
  return now + ttl + (simulated ? SIMULATED_GRACE_MS : 0);
}

function bad(script: string, message: string): ScriptError {
  return new ScriptError(script, `BADARG redlimit ${script}: ${message}`);
}

function wrongState(script: string, key: string): ScriptError {
  return new ScriptError(script, `WRONGSTATE redlimit ${script}: key ${key} does not hold ${script} state`);
}

/** rl_rsv_keys: the state keys (keys[1..]) as "<byte length>:<key>", concatenated. */
function canonKeys(keys: readonly string[]): string {
  let out = '';
  for (let i = 1; i < keys.length; i++) out += `${Buffer.byteLength(keys[i]!)}:${keys[i]}`;
  return out;
}

/** rl_rsv_specs. */
function specs(items: readonly ArgValues[]): string {
  return items.map((it) => `${it.algo},${it.limit},${it.period_ms ?? ''},${it.burst},${it.offset_ms},${it.unit ?? ''},${it.cost}`).join(';');
}

const SPEC = /([a-z_]+),(\d+),(\d*),(\d+),(-?\d+),([a-z]*),(\d+)/g;

/** What an item carries besides its arguments: its zone (rl_multi_zones; the twin's multi reads it), its recorded period (settle). */
interface Extra {
  zone?: Zone;
  start?: number;
  period_end?: number;
}
const extra = (it: ArgValues) => it as unknown as Extra;

/**
 * rl_multi_zones of reserve: tz_rules, one `|`-separated entry per item, each empty (the item
 * keeps its offset_ms) or a rule string for a quota item; the same refusals, before any key is read.
 */
function zones(script: string, raw: string | undefined, items: ArgValues[]): ArgValues[] {
  if (raw === undefined || raw === '') return items;
  const entries = raw.split('|');
  if (entries.length !== items.length) throw bad(script, `tz_rules has ${entries.length} entries for ${items.length} limit(s) (one per limit, empty for none)`);
  return items.map((it, index) => {
    const entry = entries[index]!;
    if (entry === '') return it;
    const i = index + 1;
    if (it.algo !== 'quota') throw bad(script, `tz_rules[${i}] is for algo quota only, limit ${i} is ${it.algo}`);
    const bytes = Buffer.byteLength(entry);
    if (bytes > 1024) throw bad(script, `tz_rules[${i}] must be at most 1024 bytes, got ${bytes}`);
    const zone: Zone = parseTzRules(entry, (m) => {
      throw bad(script, m);
    });
    return { ...it, zone } as unknown as ArgValues;
  });
}

/** rl_rsv_periods: '' when no item is a quota, else "<start>,<end>" per quota item ('' for others), `|`-joined, then '#'. */
function periods(items: readonly ArgValues[], now: number): string {
  if (!items.some((it) => it.algo === 'quota')) return '';
  return `${items.map((it) => (it.algo === 'quota' ? calendarPeriod(now, it.unit as string, extra(it).zone ?? num(it.offset_ms)).join(',') : '')).join('|')}#`;
}

/** rl_rsv_parse_periods: start and period_end onto each quota item; anything else is foreign state. */
function parsePeriods(script: string, key: string, text: string, items: ArgValues[]): void {
  const entries = text.split('|');
  if (entries.length !== items.length) throw wrongState(script, key);
  entries.forEach((entry, i) => {
    if (entry === '') return;
    const m = /^(-?\d+),(-?\d+)$/.exec(entry);
    if (!m || items[i]!.algo !== 'quota') throw wrongState(script, key);
    extra(items[i]!).start = Number(m[1]);
    extra(items[i]!).period_end = Number(m[2]);
  });
}

/** rl_rsv_parse_specs. */
function parseSpecs(script: string, key: string, text: string): ArgValues[] {
  const items: ArgValues[] = [];
  for (const m of text.matchAll(SPEC)) {
    items.push({ algo: m[1], limit: Number(m[2]), period_ms: m[3] === '' ? undefined : Number(m[3]), burst: Number(m[4]), offset_ms: Number(m[5]), unit: m[6] === '' ? undefined : m[6], cost: Number(m[7]) });
  }
  if (items.length === 0) throw wrongState(script, key);
  return items;
}

interface Held {
  kind: 'record' | 'tombstone';
  deadline: number;
  /** A record's body (specs "\n" keys), a tombstone's mode. */
  rest: string;
  /** A record's periods section, without its '#' (undefined: a record without one). */
  periods?: string;
}

/** rl_rsv_read: what the reservation key holds at `now` (undefined: absent or past its deadline). */
function readHeld(c: TwinCall, key: string, keyError: StateKeyError): Held | undefined {
  let v: RecordValue | undefined;
  try {
    v = c.store.get(key, RECORD_KIND, c.now) as unknown as RecordValue | undefined;
  } catch (err) {
    if (!(err instanceof TwinStateError)) throw err;
    // Another kind of state: Redis' GET refuses a hash or a sorted set (WRONGTYPE); a string
    // that is not a record is the script's WRONGSTATE.
    const e = keyError(c.script, c.store, key, 'block', c.now);
    throw e.redisCode === 'WRONGTYPE' ? e : wrongState(c.script, key);
  }
  if (!v) return undefined;
  const m = /^([rs]):(\d+):([\s\S]*)$/.exec(v.text);
  if (!m) throw wrongState(c.script, key);
  const deadline = Number(m[2]);
  if (c.now > deadline) return undefined;
  if (m[1] === 's') return { kind: 'tombstone', deadline, rest: m[3]! };
  const p = /^([\d,|-]*)#([\s\S]*)$/.exec(m[3]!);
  return p ? { kind: 'record', deadline, rest: p[2]!, periods: p[1]! } : { kind: 'record', deadline, rest: m[3]! };
}

function store(c: TwinCall, key: string, text: string, ttl: number): void {
  const value: RecordValue = { kind: 'reservation', text };
  c.store.set(key, value as unknown as TwinValue, expiresAt(c.now, ttl, c.simulated));
}

/**
 * reserve.lua (v3). Each item may carry share_ppm, its priority class: multi decides it exactly as
 * rl_multi does (at estimate + what the class must leave). The class is not part of the record
 * (rl_rsv_specs stores parameters and estimates only): a replay is the same reservation whatever
 * class it names, and settle gives back what was taken. tz_rules (v3) puts quota items in their
 * time zones; the record keeps each quota item's period (rl_rsv_periods), not the zone.
 */
export function twinReserve(c: TwinCall, multi: TwinMulti, keyError: StateKeyError): number[] {
  const recordKey = c.keys[0]!;
  const stateKeys = c.keys.slice(1);
  stateKeys.forEach((k, i) => {
    if (k === recordKey) throw bad('reserve', `the record key is also the state key of limit ${i + 1}`);
  });
  const items = zones('reserve', c.args.tz_rules as string | undefined, c.items);
  const body = `${specs(items)}\n${canonKeys(c.keys)}`;
  const held = readHeld(c, recordKey, keyError);
  if (held?.kind === 'record' && held.rest === body) {
    // The same reservation again: admitted, nothing more taken; what each limit holds now.
    const now = multi({ ...c, keys: stateKeys, items: items.map((it) => ({ ...it, cost: 0 })) }, false, 'reserve');
    const reply = [1, 0, 0];
    for (let i = 0; i < c.items.length; i++) reply.push(1, now[4 + 4 * i]!, now[5 + 4 * i]!, 0);
    return reply;
  }
  if (held) throw bad('reserve', `reservation key ${recordKey} already holds another reservation or a settled one (ids are never reused)`);
  const reply = multi({ ...c, keys: stateKeys, items }, true, 'reserve');
  if (reply[0] === 1) store(c, recordKey, `r:${c.now + (c.args.ttl_ms as number)}:${periods(items, c.now)}${body}`, c.args.ttl_ms as number);
  return reply;
}

// --- lib/charge.lua -------------------------------------------------------------------------------

type Settled = [remaining: number, resetAfterMs: number, writes: a.Write[]];

/** rl_charge_take */
function chargeTake(left: number, capacity: number, cost: number, debt: boolean): number {
  const room = debt ? left + capacity : left;
  if (room <= 0) return 0;
  return cost < room ? cost : room;
}

function gcraCharge(c: TwinCall, key: string, limit: number, periodMs: number, burst: number, cost: number, debt: boolean): Settled {
  let [whole, frac] = a.gcraRead(c.store, key, limit, periodMs, burst, c.now);
  whole -= chargeTake(whole, burst, cost, debt);
  const [resetMs, resetNum] = timeUntil(burst, whole, frac, limit, periodMs);
  return [Math.max(whole, 0), resetNum > 0 ? resetMs + 1 : resetMs, a.gcraWrites(key, resetMs, resetNum, c.now, c.simulated)];
}

function tokenBucketCharge(c: TwinCall, key: string, limit: number, periodMs: number, burst: number, cost: number, debt: boolean): Settled {
  let [whole, frac, ts] = a.tokenBucketRead(c.store, key, limit, periodMs, burst, c.now);
  whole -= chargeTake(whole, burst, cost, debt);
  const reset = msUntil(burst, whole, frac, limit, periodMs);
  const value = { kind: 'token_bucket' as const, tokens: whole, frac, tsMs: ts };
  const at = expiresAt(c.now, reset + ts - c.now, c.simulated);
  const writes: a.Write[] = reset === 0 ? [(s) => void s.delete(key)] : [(s) => s.set(key, value, at)];
  return [Math.max(whole, 0), reset, writes];
}

function counterCharge(c: TwinCall, owner: string, key: string, limit: number, start: number, windowEnd: number, cost: number, debt: boolean): Settled {
  const v = c.store.get(key, 'counter', c.now, owner);
  let used = v && v.start === start ? v.count : 0;
  used += chargeTake(limit - used, limit, cost, debt);
  const value = { kind: 'counter' as const, start, count: used };
  const at = expiresAt(c.now, windowEnd - c.now, c.simulated);
  const writes: a.Write[] = used <= 0 ? [(s) => void s.delete(key)] : [(s) => s.set(key, value, at)];
  return [Math.max(limit - used, 0), used > 0 ? windowEnd - c.now : 0, writes];
}

function slidingWindowCharge(c: TwinCall, key: string, limit: number, periodMs: number, cost: number, debt: boolean): Settled {
  const start = a.windowStart(c.now, periodMs, 0);
  const v = c.store.get(key, 'sliding_window', c.now);
  let cur = 0;
  let prev = 0;
  if (v?.start === start) [cur, prev] = [v.cur, v.prev];
  else if (v?.start === start - periodMs) prev = v.cur;
  const [wq, wr] = muldivmod(prev, periodMs - (c.now - start), periodMs);
  const w = wr > 0 ? wq + 1 : wq;
  cur += chargeTake(limit - cur - w, limit, cost, debt);
  const reset = cur > 0 ? start + 2 * periodMs - c.now : prev > 0 ? start + periodMs - c.now : 0;
  const value = { kind: 'sliding_window' as const, start, cur, prev };
  const at = expiresAt(c.now, reset, c.simulated);
  const writes: a.Write[] = reset === 0 ? [(s) => void s.delete(key)] : [(s) => s.set(key, value, at)];
  return [Math.max(limit - cur - w, 0), reset, writes];
}

const num = (v: unknown) => v as number;

/** rl_charge */
function charge(c: TwinCall, key: string, it: ArgValues, cost: number, debt: boolean): Settled {
  switch (it.algo) {
    case 'gcra':
      return gcraCharge(c, key, num(it.limit), num(it.period_ms), num(it.burst), cost, debt);
    case 'token_bucket':
      return tokenBucketCharge(c, key, num(it.limit), num(it.period_ms), num(it.burst), cost, debt);
    case 'fixed_window': {
      const start = a.windowStart(c.now, num(it.period_ms), num(it.offset_ms));
      return counterCharge(c, 'fixed_window', key, num(it.limit), start, start + num(it.period_ms), cost, debt);
    }
    case 'sliding_window':
      return slidingWindowCharge(c, key, num(it.limit), num(it.period_ms), cost, debt);
    default: {
      const [start, end] = calendarPeriod(c.now, it.unit as string, num(it.offset_ms));
      return counterCharge(c, 'quota', key, num(it.limit), start, end, cost, debt);
    }
  }
}

/** rl_charge_refund */
function refund(c: TwinCall, key: string, it: ArgValues, cost: number): Settled {
  const { store, now, simulated } = c;
  let r: Settled;
  switch (it.algo) {
    case 'gcra':
      r = a.gcraRefund(store, key, num(it.limit), num(it.period_ms), num(it.burst), cost, now, simulated);
      break;
    case 'token_bucket':
      r = a.tokenBucketRefund(store, key, num(it.limit), num(it.period_ms), num(it.burst), cost, now, simulated);
      break;
    case 'fixed_window':
      r = a.fixedWindowRefund(store, key, num(it.limit), num(it.period_ms), num(it.offset_ms), cost, now, simulated);
      break;
    case 'sliding_window':
      r = a.slidingWindowRefund(store, key, num(it.limit), num(it.period_ms), cost, now, simulated);
      break;
    default:
      r = a.quotaRefund(store, key, num(it.limit), it.unit as string, num(it.offset_ms), cost, now, simulated);
  }
  return [Math.max(r[0], 0), r[1], r[2]];
}

/** settle_quota (settle.lua): the period reserve recorded; undefined once it has ended (not touched). */
function settleQuota(c: TwinCall, key: string, it: ArgValues, delta: number, debt: boolean): Settled | undefined {
  const start = extra(it).start!;
  const end = extra(it).period_end!;
  if (c.now >= end) return undefined;
  if (delta > 0) return counterCharge(c, 'quota', key, num(it.limit), start, end, delta, debt);
  const v = c.store.get(key, 'counter', c.now, 'quota');
  const used = Math.max((v && v.start === start ? v.count : 0) + delta, 0);
  const value = { kind: 'counter' as const, start, count: used };
  const at = expiresAt(c.now, end - c.now, c.simulated);
  const writes: a.Write[] = used <= 0 ? [(s) => void s.delete(key)] : [(s) => s.set(key, value, at)];
  return [Math.max(num(it.limit) - used, 0), used > 0 ? end - c.now : 0, writes];
}

/** settle.lua (v3) */
export function twinSettle(c: TwinCall, keyError: StateKeyError): number[] {
  const recordKey = c.keys[0]!;
  const n = c.keys.length - 1;
  const unsettled = (status: number) => {
    const reply = [status];
    for (let i = 0; i < n; i++) reply.push(-1, -1);
    return reply;
  };
  const held = readHeld(c, recordKey, keyError);
  if (!held) return unsettled(SETTLE_STATUS.unknown);
  if (held.kind === 'tombstone') return unsettled(SETTLE_STATUS.settled);
  const split = held.rest.indexOf('\n');
  if (split < 0 || held.rest.slice(split + 1) !== canonKeys(c.keys)) return unsettled(SETTLE_STATUS.mismatch);
  const items = parseSpecs('settle', recordKey, held.rest.slice(0, split));
  if (items.length !== n) throw wrongState('settle', recordKey);
  if (held.periods !== undefined) parsePeriods('settle', recordKey, held.periods, items);

  const cancel = c.args.mode === 'cancel';
  const debt = c.args.overage === 'debt';
  const reply: number[] = [cancel ? SETTLE_STATUS.cancelled : SETTLE_STATUS.committed];
  const pending: a.Write[][] = [];
  items.forEach((it, i) => {
    const key = c.keys[i + 1]!;
    let remaining = -1;
    let reset = -1;
    const actual = c.items[i]!.actual;
    const delta = it.algo === 'block' ? 0 : cancel ? -num(it.cost) : actual === undefined || actual === null ? 0 : num(actual) - num(it.cost);
    if (delta !== 0) {
      let done: Settled | undefined;
      try {
        done = extra(it).period_end !== undefined ? settleQuota(c, key, it, delta, debt) : delta < 0 ? refund(c, key, it, -delta) : charge(c, key, it, delta, debt);
      } catch (err) {
        if (err instanceof TwinStateError) throw keyError('settle', c.store, key, it.algo as string, c.now);
        throw err;
      }
      if (done) {
        [remaining, reset] = done;
        pending.push(done[2]);
      }
    }
    reply.push(remaining, reset);
  });
  for (const w of pending) a.apply(c.store, w);
  const tomb = Math.max(held.deadline - c.now, TOMBSTONE_MS);
  store(c, recordKey, `s:${c.now + tomb}:${cancel ? 'x' : 'c'}`, tomb);
  return reply;
}

/**
 * What tiers.ts borrows for tiers_reserve and tiers_settle (the same records, the same charges
 * and give-backs, over a subject's one key): lib/reservation's and lib/charge's twins above.
 */
export const rsv = { TOMBSTONE_MS, canonKeys, specs, periods, parseSpecs, parsePeriods, readHeld, storeRecord: store, charge, refund, settleQuota, extra };
export type { Held, Settled };
