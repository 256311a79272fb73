/**
 * The twin of tiers, tiers_peek, tiers_refund and tiers_reset (scripts-lua/lib/tiers.lua): every
 * limit of a subject in ONE key. In Redis the key holds the limits' states as strings joined by
 * '|' (each in its self-describing, "plain" form: rl_plain_forms); here its entry holds the twin
 * states themselves, in specs order (undefined: full), as a value of kind 'tiers' (the store's
 * TwinValue does not list it: cast, as fair.ts and reservation.ts do). tiersValueString gives the
 * string the Lua stores for it.
 *
 * A decision runs the twin's own algorithms (scripts.ts evalItem, lent by scripts.ts) against a
 * scratch store where each limit's state sits under a key of its own and never expires: in Lua a
 * stale plain-form state reads as full whatever its age, and the twin's states are absolute (a
 * window's start, a bucket's time), so they read the same. What the algorithms write to the
 * scratch keys (and the expiry they give it) becomes the limits' new states, written back into
 * the subject's entry with lib/tiers' expiry rule: the longest any state needs.
 *
 * tiers_reserve and tiers_settle keep reserve's records (reservation.ts: the same strings under
 * the same keys) for a reservation over the subject's one key: the estimate taken by one tiers
 * decision, settled by reservation.ts' charges and give-backs on each touched limit's state.
 */
import { ScriptError } from '../errors.js';
import * as a from './algorithms.js';
import { expiresAt } from './eval.js';
import type { ArgValues } from './args.js';
import type { TwinCall } from './scripts.js';
import { parseMultiBatchSpecs, tiersList, TIERS_ALGOS } from '../runtime/checks.js';
import { ALGO_KIND, KIND_REDIS_TYPE, MemoryStore, TwinStateError, type TwinValue } from './store.js';
import { decodeState, toTwinValue, GCRA_MAX_PACKED_MS, type AlgoName } from './state.js';
import { tokenBucketStateValue } from './token-bucket.js';
import { msUntil, refill } from './bucket.js';
import { windowStart } from './windows.js';
import type { Zone } from './calendar.js';
import { rsv, SETTLE_STATUS, type Settled } from './reservation.js';

/** A subject's key: the states of its limits in specs order, undefined for a limit at full. */
export interface TiersValue {
  kind: 'tiers';
  states: (TwinValue | undefined)[];
}
export const TIERS_KIND = 'tiers' as unknown as TwinValue['kind'];

/** What scripts.ts lends: its per-item evaluation (rl_multi_item) and rl_multi_zones. */
export interface TiersDeps {
  evalItem: (c: TwinCall, key: string, it: ArgValues, trim: boolean) => a.Eval;
  zones: (script: string, raw: string | undefined, items: ArgValues[]) => ArgValues[];
}

const SIMULATED_GRACE_MS = 60_000;

/** The Redis type of each kind the twin's store may hold (kinds of other modules included). */
const REDIS_TYPE: Record<string, string> = { ...KIND_REDIS_TYPE, tiers: 'string', reservation: 'string', fair_tenants: 'hash', fair_active: 'zset' };

/** A value the twin holds in a string key, as the Lua's plain form writes it (undefined: not a string state the Lua could read). */
export function tiersStateString(v: TwinValue): string | undefined {
  switch ((v as { kind: string }).kind) {
    case 'gcra': {
      const g = v as Extract<TwinValue, { kind: 'gcra' }>;
      return g.tatNum < 1_000_000 && g.tatMs >= 1 && g.tatMs <= GCRA_MAX_PACKED_MS ? `${g.tatMs}${String(g.tatNum).padStart(6, '0')}` : `${g.tatMs}:${g.tatNum}`;
    }
    case 'token_bucket': {
      const t = v as Extract<TwinValue, { kind: 'token_bucket' }>;
      // simulated: never the compact form (rl_plain_forms); reset 1: any state that is stored.
      return tokenBucketStateValue(t.tokens, t.frac, t.tsMs, 1, t.tsMs, true)!;
    }
    case 'counter': {
      const c = v as Extract<TwinValue, { kind: 'counter' }>;
      return `${c.start}:${c.count}`;
    }
    case 'sliding_window': {
      const s = v as Extract<TwinValue, { kind: 'sliding_window' }>;
      return `${s.start}:${s.cur}:${s.prev}`;
    }
    case 'block':
      return String((v as Extract<TwinValue, { kind: 'block' }>).untilMs);
    case 'reservation':
      return (v as unknown as { text: string }).text;
    default:
      return undefined;
  }
}

/** The string the Lua stores in a subject's key for `v`: the states joined by '|', '' for a full limit. */
export function tiersValueString(v: TiersValue): string {
  return v.states.map((s) => (s === undefined ? '' : tiersStateString(s))).join('|');
}

/** A decision whose key the Lua cannot read (rl_key_error's code, the 1-based limit at fault). */
class KeyFault extends Error {
  constructor(
    readonly code: 1 | 2,
    readonly bad: number,
    readonly algo: string,
    /** The key the Lua names: a limit's own key it was adopting from; undefined: the subject's. */
    readonly key?: string,
  ) {
    super(code === 1 ? 'WRONGTYPE' : 'WRONGSTATE');
  }
}

/** The value `key` holds at `now`, whatever its kind (undefined: none). */
function heldValue(store: MemoryStore, key: string, now: number): TwinValue | undefined {
  for (const kind of Object.keys(REDIS_TYPE)) {
    try {
      const v = store.get(key, kind as TwinValue['kind'], now);
      if (v !== undefined) return v;
    } catch (err) {
      if (!(err instanceof TwinStateError)) throw err;
    }
  }
  return undefined;
}

/** A copy of a flat state (the scratch store's algorithms write theirs in place). */
const copy = (v: TwinValue): TwinValue => ({ ...v }) as TwinValue;

/**
 * Limit `limit`'s state `v` as its algorithm reads it: as it is when it is of its kind, else
 * (a value another algorithm wrote: a spec changed under the same key, or a single-limit key)
 * its string read by `algo`'s decoder, as the Lua reads the string it finds. KeyFault when it
 * cannot be read (WRONGSTATE).
 */
function asState(v: TwinValue | undefined, limit: ArgValues, j: number, now: number): TwinValue | undefined {
  if (v === undefined) return undefined;
  const algo = limit.algo as AlgoName;
  if (v.kind === (ALGO_KIND as Record<string, string>)[algo]) return copy(v);
  const raw = tiersStateString(v);
  if (raw === undefined) throw new KeyFault(2, j, algo);
  try {
    const state = decodeState(algo, raw, now);
    if (state === undefined) return undefined;
    const period = limit.period_ms as number;
    const window =
      algo === 'fixed_window' ? { start: windowStart(now, period, limit.offset_ms as number), periodMs: period } : algo === 'sliding_window' ? { start: windowStart(now, period, 0), periodMs: period } : undefined;
    return toTwinValue(state, window);
  } catch (err) {
    if (err instanceof TwinStateError) throw new KeyFault(2, j, algo);
    throw err;
  }
}

/** adopt (rl_tiers_adopt): the limits' names as a subject's key names them, and that segment. */
export interface Adopt {
  seg: string;
  names: string[];
}

/** rl_tiers_adopt: `adopt` ('+'-joined names), `count` of them; undefined when omitted. */
function adoptOf(c: TwinCall, count: number): Adopt | undefined {
  const raw = c.args.adopt as string | undefined;
  if (raw === undefined || raw === null || raw === '') return undefined;
  const names = raw.split('+');
  if (names.some((n) => !/^[A-Za-z0-9_-]+$/.test(n))) {
    throw new ScriptError(c.script, `BADARG redlimit ${c.script}: adopt must be the limits' names joined by +, each of letters, digits, _ or -, got "${raw.slice(0, 64)}"`);
  }
  if (names.length !== count) throw new ScriptError(c.script, `BADARG redlimit ${c.script}: adopt names ${names.length} limit(s) for ${count} spec(s)`);
  return { seg: `}:${raw}`, names };
}

/**
 * rl_tiers_own_keys: the keys `key`'s limits had with a key per limit (adopt's segment, right
 * after the hash tag's "}:", replaced by each limit's name); undefined when `key` does not name
 * its limits so.
 */
export function ownKeys(key: string, adopt: Adopt): string[] | undefined {
  const i = key.indexOf(adopt.seg);
  if (i < 0) return undefined;
  const e = i + adopt.seg.length;
  if (e < key.length && key[e] !== ':') return undefined;
  const head = key.slice(0, i + 2);
  const tail = key.slice(e);
  return adopt.names.map((n) => head + n + tail);
}

/**
 * rl_tiers_adopted: a state a limit's own key holds, as the subject's key holds it: read at `now`
 * by its algorithm and written back (a window's count in the current window, a bucket refilled
 * to now); undefined when that is full. KeyFault as asState.
 */
function adoptedState(v: TwinValue, limit: ArgValues, j: number, now: number): TwinValue | undefined {
  const state = asState(v, limit, j, now);
  if (state === undefined) return undefined;
  const period = limit.period_ms as number;
  switch (limit.algo) {
    case 'token_bucket': {
      const t = state as Extract<TwinValue, { kind: 'token_bucket' }>;
      const l = limit.limit as number;
      const burst = limit.burst as number;
      const [whole, frac] = refill(t.tokens, t.frac, now - t.tsMs, burst, l, period);
      if (msUntil(burst, whole, frac, l, period) === 0) return undefined;
      return { kind: 'token_bucket', tokens: whole, frac, tsMs: t.tsMs > now ? t.tsMs : now };
    }
    case 'fixed_window': {
      const w = state as Extract<TwinValue, { kind: 'counter' }>;
      const start = windowStart(now, period, limit.offset_ms as number);
      return w.start === start && w.count > 0 ? { kind: 'counter', start, count: w.count } : undefined;
    }
    case 'sliding_window': {
      const w = state as Extract<TwinValue, { kind: 'sliding_window' }>;
      const start = windowStart(now, period, 0);
      const [cur, prev] = w.start === start ? [w.cur, w.prev] : w.start === start - period ? [0, w.cur] : [0, 0];
      return cur > 0 || prev > 0 ? { kind: 'sliding_window', start, cur, prev } : undefined;
    }
    default:
      return state;
  }
}

/** rl_tiers_get's reads of the limits' own keys' values, in order: a fault names that limit's own key. */
function adoptedStates(raw: readonly (TwinValue | undefined)[], limits: readonly ArgValues[], own: readonly string[], now: number): (TwinValue | undefined)[] {
  return raw.map((v, j) => {
    if (v === undefined) return undefined;
    try {
      return adoptedState(v, limits[j]!, j + 1, now);
    } catch (err) {
      if (err instanceof KeyFault) throw new KeyFault(err.code, err.bad, err.algo, own[j]);
      throw err;
    }
  });
}

/**
 * rl_tiers_split and the reads that follow it: the states of `key` for `limits` (had: the key held
 * a value). KeyFault as the Lua fails: another Redis type (WRONGTYPE, limit 1); a value that is
 * not `count` states (WRONGSTATE, limit 1); a state its limit cannot read (WRONGSTATE, the first).
 */
function readStates(store: MemoryStore, key: string, limits: ArgValues[], now: number, script: string, adopt?: Adopt): { had: boolean; states: (TwinValue | undefined)[]; adopted?: string[] } {
  const { had, raw, adopted, own } = readRaw(store, key, limits.length, now, script, adopt);
  if (adopted) return { had, states: adoptedStates(raw, limits, own!, now), adopted };
  return { had, states: had ? raw.map((v, j) => asState(v, limits[j]!, j + 1, now)) : raw };
}

/**
 * rl_tiers_split alone: the values of `key` as they are, one per limit (decoded by asState when
 * read). With `adopt`, a key holding nothing: its limits' own keys' values (a string kind; another
 * Redis type is left alone), and `adopted`, those keys (deleted when the key is written).
 */
function readRaw(store: MemoryStore, key: string, count: number, now: number, script: string, adopt?: Adopt): { had: boolean; raw: (TwinValue | undefined)[]; adopted?: string[]; own?: string[] } {
  let held: TwinValue | undefined;
  try {
    held = store.get(key, TIERS_KIND, now);
  } catch (err) {
    if (!(err instanceof TwinStateError)) throw err;
    held = heldValue(store, key, now);
  }
  if (held === undefined) {
    const raw = new Array<TwinValue | undefined>(count).fill(undefined);
    const own = adopt && ownKeys(key, adopt);
    if (!own) return { had: false, raw };
    const adopted: string[] = [];
    own.forEach((k, j) => {
      const v = heldValue(store, k, now);
      if (v === undefined || REDIS_TYPE[(v as { kind: string }).kind] !== 'string') return;
      adopted.push(k);
      raw[j] = v;
    });
    return adopted.length > 0 ? { had: false, raw, adopted, own } : { had: false, raw };
  }
  const kind = (held as { kind: string }).kind;
  if (REDIS_TYPE[kind] !== 'string') throw new KeyFault(1, 1, script);
  // Another script's string: no '|' in it, so one state (the Lua splits it into one field).
  const raw = kind === 'tiers' ? (held as unknown as TiersValue).states : [held];
  if (raw.length !== count) throw new KeyFault(2, 1, script);
  return { had: true, raw: raw.slice() };
}

/**
 * The algorithms' store for one decision: each limit's state under its own key ("0", "1", ...),
 * never expiring, and what the algorithms write there (its value, undefined when deleted, and
 * the expiry they gave it).
 */
class Scratch extends MemoryStore {
  readonly held = new Map<string, TwinValue>();
  readonly written = new Map<string, { value: TwinValue | undefined; at: number }>();

  load(states: readonly (TwinValue | undefined)[]): void {
    this.held.clear();
    this.written.clear();
    states.forEach((v, j) => {
      if (v !== undefined) this.held.set(String(j), copy(v));
    });
  }

  override get<K extends TwinValue['kind']>(key: string, kind: K, _now: number, owner: string = kind): Extract<TwinValue, { kind: K }> | undefined {
    const v = this.held.get(key);
    if (v === undefined) return undefined;
    if (v.kind !== kind) throw new TwinStateError(`redlimit ${owner}: key ${key} does not hold ${owner} state`);
    return v as Extract<TwinValue, { kind: K }>;
  }

  override set(key: string, value: TwinValue, expiresAt: number): void {
    this.held.set(key, value);
    this.written.set(key, { value, at: expiresAt });
  }

  override expire(key: string, expiresAt: number): void {
    const v = this.held.get(key);
    if (v !== undefined) this.written.set(key, { value: v, at: expiresAt });
  }

  override delete(key: string): boolean {
    const had = this.held.delete(key);
    this.written.set(key, { value: undefined, at: 0 });
    return had;
  }

  override has(key: string): boolean {
    return this.held.has(key);
  }

  override recycle(): undefined {
    return undefined;
  }
}

/** Scripts run one at a time (synchronously): one scratch store serves every call. */
const scratch = new Scratch();

/** multi_batch's (and tiers') specs as items, each field by its item name (rl_multi_batch_parse). */
export function specLimits(script: string, count: number, specs: string): ArgValues[] {
  return parseMultiBatchSpecs(script, count, specs).map((l) => ({ algo: l.algo, limit: l.limit, period_ms: l.periodMs, burst: l.burst, offset_ms: l.offsetMs, unit: l.unit }));
}

/** The limits of `specs` as items (rl_multi_batch_specs), with their zones (rl_multi_zones). */
function parseLimits(c: TwinCall, deps: TiersDeps): ArgValues[] {
  const count = c.args.count as number;
  let parsed: ArgValues[];
  try {
    parsed = specLimits(c.script, count, c.args.specs as string);
  } catch (err) {
    // Checked by the prologue (tiers_specs); runParsed callers skip it.
    if (err instanceof Error && 'detail' in err) throw new ScriptError(c.script, `BADARG redlimit ${c.script}: ${(err as { detail: string }).detail}`);
    throw err;
  }
  return deps.zones(c.script, c.args.tz_rules as string | undefined, parsed);
}

/** A decision's list (costs, shares) as the prologue parsed it (rl_tiers_list). */
function list(c: TwinCall, kind: string, raw: unknown, count: number, max: number, d: number): number[] | undefined {
  try {
    return tiersList(c.script, kind, raw as string | undefined, count, max, d);
  } catch (err) {
    if (err instanceof Error && 'detail' in err) throw new ScriptError(c.script, `BADARG redlimit ${c.script}: ${(err as { detail: string }).detail}`);
    throw err;
  }
}

/** A write to a scratch key as lib/tiers takes it (rl_tiers_written): the new state and its ms to live. */
function writtenState(key: string, now: number, simulated: boolean): { state: TwinValue | undefined; ttl: number } | undefined {
  const w = scratch.written.get(key);
  if (w === undefined) return undefined;
  if (w.value === undefined) return { state: undefined, ttl: 0 };
  return { state: copy(w.value), ttl: w.at - now - (simulated ? SIMULATED_GRACE_MS : 0) };
}

/** rl_tiers_store: the states in `key`, expiring `ttl` ms after now (the longest any needs); deleted when none is left. `adopted`: the limits' own keys they came from, deleted. */
function storeStates(c: TwinCall, key: string, had: boolean, states: (TwinValue | undefined)[], ttl: number, adopted?: string[]): void {
  if (adopted) for (const k of adopted) c.store.delete(k);
  if (!states.some((s) => s !== undefined) || ttl <= 0) {
    if (had) c.store.delete(key);
    return;
  }
  const value: TiersValue = { kind: 'tiers', states };
  c.store.set(key, value as unknown as TwinValue, expiresAt(c.now, ttl, c.simulated));
}

/** rl_tiers_decide: one decision over every limit of `key`, its results into `reply` from `o`. */
function decide(c: TwinCall, deps: TiersDeps, key: string, limits: ArgValues[], costs: number[] | undefined, shares: number[] | undefined, commit: boolean, reply: number[], o: number, adopt?: Adopt): void {
  const { had, states, adopted } = readStates(c.store, key, limits, c.now, c.script, adopt);
  scratch.load(states);
  const on: TwinCall = { ...c, store: scratch };
  const items = limits.map((l, j) => ({ ...l, cost: costs ? costs[j]! : 1, share_ppm: shares ? shares[j] : undefined }));
  const writes: a.Write[][] = [];
  let all = true;
  items.forEach((it, j) => {
    const [allowed, remaining, reset, retry, w] = deps.evalItem(on, String(j), it, false);
    reply[o + 4 * j] = allowed;
    reply[o + 4 * j + 1] = remaining;
    reply[o + 4 * j + 2] = reset;
    reply[o + 4 * j + 3] = retry;
    if (allowed === 1) writes.push(w);
    else all = false;
  });
  if (commit && all) {
    for (const w of writes) a.apply(scratch, w);
    let ttl = 0;
    const next = states.map((s, j) => {
      let w = writtenState(String(j), c.now, c.simulated);
      // Not written (cost 0): kept while it has something to say, else dropped.
      if (w === undefined) {
        const reset = reply[o + 4 * j + 2]!;
        w = reset > 0 ? { state: s, ttl: reset } : { state: undefined, ttl: 0 };
      }
      if (w.ttl > ttl) ttl = w.ttl;
      return w.state;
    });
    storeStates(c, key, had, next, ttl, adopted);
    return;
  }
  // Nothing was taken: report what each admitting limit holds now, not what it would hold.
  items.forEach((it, j) => {
    if (reply[o + 4 * j] === 1 && (it.cost as number) > 0) {
      const [, remaining, reset] = deps.evalItem(on, String(j), { ...it, cost: 0 }, false);
      reply[o + 4 * j + 1] = remaining;
      reply[o + 4 * j + 2] = reset;
    }
  });
}

/** tiers (commit) and tiers_peek: each key a decision over every limit, in order; a decision whose key cannot be read fails alone. */
export function twinTiers(c: TwinCall, deps: TiersDeps, commit: boolean): number[] {
  const limits = parseLimits(c, deps);
  const count = limits.length;
  const adopt = adoptOf(c, count);
  const reply = [c.now];
  c.keys.forEach((key, d) => {
    const o = 1 + d * count * 4;
    const g = c.items[d]!;
    const costs = list(c, 'costs', g.costs, count, 1_000_000_000_000_000, d + 1);
    const shares = list(c, 'shares', g.shares, count, 1_000_000, d + 1);
    try {
      decide(c, deps, key, limits, costs, shares, commit, reply, o, adopt);
    } catch (err) {
      if (!(err instanceof KeyFault)) throw err;
      for (let j = 0; j < count; j++) {
        reply[o + 4 * j] = -1;
        reply[o + 4 * j + 1] = j + 1 === err.bad ? err.code : 0;
        reply[o + 4 * j + 2] = 0;
        reply[o + 4 * j + 3] = 0;
      }
    }
  });
  return reply;
}

/** A whole-call error as the Lua raises it when a key cannot be read outside a decision (tiers_refund, tiers_reset). */
function faultError(script: string, key: string, f: KeyFault): ScriptError {
  if (f.code === 1) return new ScriptError(script, 'WRONGTYPE Operation against a key holding the wrong kind of value');
  return new ScriptError(script, `WRONGSTATE redlimit ${f.algo}: key ${f.key ?? key} does not hold ${f.algo} state`);
}

const zoneOf = (it: ArgValues): Zone => ((it as unknown as { zone?: Zone }).zone ?? (it.offset_ms as number));

/** One limit's refund on its scratch key (the single-limit *_refund's). */
function refundOne(c: TwinCall, key: string, it: ArgValues, cost: number): [number, number, a.Write[]] {
  const n = (v: unknown) => v as number;
  const { now, simulated } = c;
  switch (it.algo) {
    case 'gcra':
      return a.gcraRefund(scratch, key, n(it.limit), n(it.period_ms), n(it.burst), cost, now, simulated);
    case 'token_bucket':
      return a.tokenBucketRefund(scratch, key, n(it.limit), n(it.period_ms), n(it.burst), cost, now, simulated);
    case 'fixed_window':
      return a.fixedWindowRefund(scratch, key, n(it.limit), n(it.period_ms), n(it.offset_ms), cost, now, simulated);
    case 'sliding_window':
      return a.slidingWindowRefund(scratch, key, n(it.limit), n(it.period_ms), cost, now, simulated);
    default:
      return a.quotaRefund(scratch, key, n(it.limit), it.unit as string, zoneOf(it), cost, now, simulated);
  }
}

/** tiers_refund: each limit of each key gets its cost back (rl_tiers_refund), keys in order, each written at once. */
export function twinTiersRefund(c: TwinCall, deps: TiersDeps): number[] {
  const limits = parseLimits(c, deps);
  const count = limits.length;
  const adopt = adoptOf(c, count);
  const reply = [c.now];
  c.keys.forEach((key, d) => {
    const costs = list(c, 'costs', c.items[d]!.costs, count, 1_000_000_000_000_000, d + 1)!;
    let read: { had: boolean; states: (TwinValue | undefined)[]; adopted?: string[] };
    try {
      read = readStates(c.store, key, limits, c.now, c.script, adopt);
    } catch (err) {
      if (err instanceof KeyFault) throw faultError(c.script, key, err);
      throw err;
    }
    const { had, states, adopted } = read;
    scratch.load(states);
    const on: TwinCall = { ...c, store: scratch };
    let ttl = 0;
    let changed = false;
    const next = limits.map((l, j) => {
      const k = String(j);
      let remaining: number;
      let reset: number;
      let state: TwinValue | undefined;
      let life: number;
      if (costs[j]! > 0 && states[j] !== undefined) {
        let w: a.Write[];
        [remaining, reset, w] = refundOne(c, k, l, costs[j]!);
        a.apply(scratch, w);
        const s = writtenState(k, c.now, c.simulated) ?? { state: states[j], ttl: 0 };
        state = s.state;
        life = s.ttl;
        changed = true;
      } else {
        [, remaining, reset] = deps.evalItem(on, k, { ...l, cost: 0, share_ppm: undefined }, false);
        state = reset > 0 ? states[j] : undefined;
        life = reset > 0 ? reset : 0;
      }
      if (life > ttl) ttl = life;
      reply.push(remaining, reset);
      return state;
    });
    if (changed) storeStates(c, key, had, next, ttl, adopted);
  });
  return reply;
}

/** tiers_reset: the named limits' states dropped from each key (KEEPTTL), a key left with none deleted. */
export function twinTiersReset(c: TwinCall): number[] {
  const count = c.args.count as number;
  const raw = c.args.limits as string;
  const which = new Set<number>();
  for (const field of raw.split(',')) {
    const j = Number(field);
    if (!/^\d+$/.test(field) || j < 1 || j > count) {
      throw new ScriptError(c.script, `BADARG redlimit ${c.script}: limits must be positions 1..${count}, comma-separated, got "${raw.slice(0, 64)}"`);
    }
    which.add(j);
  }
  const adopt = adoptOf(c, count);
  let reset = 0;
  for (const key of c.keys) {
    let held: TwinValue | undefined;
    try {
      held = c.store.get(key, TIERS_KIND, c.now);
    } catch (err) {
      if (!(err instanceof TwinStateError)) throw err;
      held = heldValue(c.store, key, c.now);
    }
    // The key is read (and refused) before anything of it changes, as the Lua's GET and split.
    const kind = held === undefined ? undefined : (held as { kind: string }).kind;
    if (kind !== undefined && REDIS_TYPE[kind] !== 'string') throw faultError(c.script, key, new KeyFault(1, 1, c.script));
    if (kind !== undefined && kind !== 'tiers' && count !== 1) throw faultError(c.script, key, new KeyFault(2, 1, c.script));
    if (kind === 'tiers' && (held as unknown as TiersValue).states.length !== count) throw faultError(c.script, key, new KeyFault(2, 1, c.script));
    // The named limits' own keys (a key per limit) go too: a reset is not undone by adopting them.
    const own = adopt && ownKeys(key, adopt);
    const cleared = new Set<number>();
    if (own) {
      for (const j of which) {
        if (heldValue(c.store, own[j - 1]!, c.now) !== undefined) {
          c.store.delete(own[j - 1]!);
          cleared.add(j);
        }
      }
    }
    if (held === undefined) {
      reset += cleared.size;
      continue;
    }
    if (kind !== 'tiers') {
      // Another script's string is one state (the Lua splits it into one field).
      if (which.has(1)) {
        cleared.add(1);
        c.store.delete(key);
      }
      reset += cleared.size;
      continue;
    }
    const v = held as unknown as TiersValue;
    let left = false;
    v.states.forEach((s, i) => {
      if (which.has(i + 1)) {
        if (s !== undefined) cleared.add(i + 1);
        v.states[i] = undefined;
      } else if (s !== undefined) left = true;
    });
    reset += cleared.size;
    // Changed in place: the entry keeps its expiry (KEEPTTL).
    if (!left) c.store.delete(key);
  }
  return [reset];
}

// --- tiers_reserve, tiers_settle ------------------------------------------------------------------

/** readHeld's state-key error for a record key (rl_rsv_read's GET): WRONGTYPE when it is no string. */
function recordKeyError(script: string, store: MemoryStore, key: string, _algo: string, now: number): ScriptError {
  const held = heldValue(store, key, now);
  if (held !== undefined && REDIS_TYPE[(held as { kind: string }).kind] !== 'string') return new ScriptError(script, 'WRONGTYPE Operation against a key holding the wrong kind of value');
  return new ScriptError(script, `WRONGSTATE redlimit ${script}: key ${key} does not hold ${script} state`);
}

/**
 * What PTTL answers for `key` at `now` in the twin: -2 when it holds nothing live, -1 when it
 * never expires, else the ms until it does (the store's expiry, found through `has`).
 */
export function twinPttl(store: MemoryStore, key: string, now: number): number {
  if (!store.has(key, now)) return -2;
  if (store.has(key, Infinity)) return -1;
  let lo = now; // live at lo
  let step = 1;
  while (store.has(key, lo + step)) {
    lo += step;
    step *= 2;
  }
  let hi = lo + step; // not live at hi
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (store.has(key, mid)) lo = mid;
    else hi = mid;
  }
  return lo - now;
}

/** tiers_reserve: the estimates as one tiers decision on the subject's key; the record (reserve's) when admitted; a replay admitted again, taking nothing. */
export function twinTiersReserve(c: TwinCall, deps: TiersDeps): number[] {
  const recordKey = c.keys[0]!;
  const key = c.keys[1]!;
  if (key === recordKey) throw new ScriptError(c.script, `BADARG redlimit ${c.script}: the record key is also the state key`);
  const limits = parseLimits(c, deps);
  const count = limits.length;
  // Checked by the prologue (tiers_items); runParsed callers skip it.
  if (c.items.length !== count) throw new ScriptError(c.script, `BADARG redlimit ${c.script}: ${c.items.length} limit group(s) for ${count} spec(s)`);
  const adopt = adoptOf(c, count);
  const costs = c.items.map((g) => (g.cost ?? 1) as number);
  // undefined: no class on that limit (what the default 1000000 keeps back: nothing).
  const shares = c.items.map((g) => g.share_ppm) as number[];
  limits.forEach((l, j) => (l.cost = costs[j]));
  const body = `${rsv.specs(limits)}\n${rsv.canonKeys(c.keys)}`;
  const held = rsv.readHeld(c, recordKey, recordKeyError);
  const replay = held?.kind === 'record' && held.rest === body;
  if (held && !replay) throw new ScriptError(c.script, `BADARG redlimit ${c.script}: reservation key ${recordKey} already holds another reservation or a settled one (ids are never reused)`);
  const reply = [1, 0, 0];
  try {
    if (replay) {
      // The same reservation again: admitted, nothing more taken; what each limit holds now.
      decide(c, deps, key, limits, costs.map(() => 0), undefined, false, reply, 3, adopt);
      for (let j = 0; j < count; j++) {
        reply[3 + 4 * j] = 1;
        reply[6 + 4 * j] = 0;
      }
      return reply;
    }
    decide(c, deps, key, limits, costs, shares, true, reply, 3, adopt);
  } catch (err) {
    if (err instanceof KeyFault) throw faultError(c.script, key, err);
    throw err;
  }
  for (let j = 0; j < count; j++) {
    const r = 3 + 4 * j;
    if (reply[r] !== 1) {
      if (reply[0] === 1) {
        reply[0] = 0;
        reply[1] = j + 1;
      }
      const retry = reply[r + 3]!;
      if (retry < 0 || reply[2]! < 0) reply[2] = -1;
      else if (retry > reply[2]!) reply[2] = retry;
    }
  }
  if (reply[0] === 1) {
    const ttl = c.args.ttl_ms as number;
    rsv.storeRecord(c, recordKey, `r:${c.now + ttl}:${rsv.periods(limits, c.now)}${body}`, ttl);
  }
  return reply;
}

/**
 * tiers_settle: settle's statuses and rules (reservation.ts' charges and give-backs) on each
 * limit's state in the subject's one key; the key written once, expiring with the longest of
 * what the changed states need and what it had left; then the tombstone. With adopt, also a
 * record reserve made on the key's limits' own keys (the upgrade from a key per limit).
 */
export function twinTiersSettle(c: TwinCall): number[] {
  const recordKey = c.keys[0]!;
  const key = c.keys[1]!;
  const count = c.items.length;
  if (count < 1 || count > 16) throw new ScriptError(c.script, `BADARG redlimit ${c.script}: expects 1 to 16 actuals (one per limit), got ${count}`);
  const unsettled = (status: number) => {
    const reply = [status];
    for (let j = 0; j < count; j++) reply.push(-1, -1);
    return reply;
  };
  const held = rsv.readHeld(c, recordKey, recordKeyError);
  if (!held) return unsettled(SETTLE_STATUS.unknown);
  if (held.kind === 'tombstone') return unsettled(SETTLE_STATUS.settled);
  const split = held.rest.indexOf('\n');
  if (split < 0) return unsettled(SETTLE_STATUS.mismatch);
  const recorded = held.rest.slice(split + 1);
  // A record of other keys is settled here only when they are exactly this key's limits' own
  // keys, in order (reserve's record, made with a key per limit before the upgrade).
  let adopt: Adopt | undefined;
  let ownRecord = false;
  if (recorded !== rsv.canonKeys(c.keys)) {
    adopt = adoptOf(c, count);
    const own = adopt && ownKeys(key, adopt);
    if (!own || recorded !== rsv.canonKeys([recordKey, ...own])) return unsettled(SETTLE_STATUS.mismatch);
    ownRecord = true;
  }
  const items = rsv.parseSpecs(c.script, recordKey, held.rest.slice(0, split));
  if (items.length !== count) return unsettled(SETTLE_STATUS.mismatch);
  if (ownRecord && items.some((it) => !TIERS_ALGOS.has(it.algo as string))) return unsettled(SETTLE_STATUS.mismatch);
  if (held.periods !== undefined) rsv.parsePeriods(c.script, recordKey, held.periods, items);
  if (!ownRecord) adopt = adoptOf(c, count);

  const cancel = c.args.mode === 'cancel';
  const debt = c.args.overage !== 'cap';
  const reply: number[] = [cancel ? SETTLE_STATUS.cancelled : SETTLE_STATUS.committed];
  try {
    // The key's states as they are (each read by its limit only when settled: rl_tiers_split).
    const { had, raw: held0, adopted, own } = readRaw(c.store, key, count, c.now, c.script, adopt);
    // Adopted states as a subject's key holds them (rl_tiers_adopted), each read when settled.
    const raw = adopted ? adoptedStates(held0, items, own!, c.now) : held0;
    scratch.load([]);
    const on: TwinCall = { ...c, store: scratch };
    const next = raw.slice();
    let ttl = 0;
    let changed = false;
    items.forEach((it, j) => {
      const actual = c.items[j]!.actual;
      const delta = cancel ? -(it.cost as number) : actual === undefined || actual === null || actual === '' ? 0 : Number(actual) - (it.cost as number);
      let run: (() => Settled | undefined) | undefined;
      const k = String(j);
      if (delta !== 0 && rsv.extra(it).period_end !== undefined) {
        // A quota in the period reserve recorded; left alone once that period has ended.
        if (c.now < rsv.extra(it).period_end!) run = () => rsv.settleQuota(on, k, it, delta, debt);
      } else if (delta < 0) run = () => rsv.refund(on, k, it, -delta);
      else if (delta > 0) run = () => rsv.charge(on, k, it, delta, debt);
      let remaining = -1;
      let reset = -1;
      if (run) {
        const state = asState(raw[j], it, j + 1, c.now);
        if (state !== undefined) scratch.held.set(k, state);
        const done = run()!;
        [remaining, reset] = done;
        a.apply(scratch, done[2]);
        const w = writtenState(k, c.now, c.simulated);
        if (w !== undefined) {
          next[j] = w.state;
          if (w.ttl > ttl) ttl = w.ttl;
          changed = true;
        }
      }
      reply.push(remaining, reset);
    });
    if (changed) {
      // The untouched states need no more than what the key had left (adopted: what their own keys had).
      for (const k of adopted ?? [key]) {
        let left = twinPttl(c.store, k, c.now);
        if (c.simulated) left -= SIMULATED_GRACE_MS;
        if (left > ttl) ttl = left;
      }
      storeStates(c, key, had, next, ttl, adopted);
    }
  } catch (err) {
    if (err instanceof KeyFault) throw faultError(c.script, key, err);
    throw err;
  }
  const tomb = Math.max(held.deadline - c.now, rsv.TOMBSTONE_MS);
  rsv.storeRecord(c, recordKey, `s:${c.now + tomb}:${cancel ? 'x' : 'c'}`, tomb);
  return reply;
}
