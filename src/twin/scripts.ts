/**
 * Every generated script, run by the twin: same keys, same ARGV strings, same reply arrays.
 * This is what lets the generated bindings run unchanged on the twin (see TwinClient), and what
 * the differential tests compare with the Lua on a real Redis.
 */
import { KEY_ERROR_CODES, ScriptError } from '../errors.js';
import type { ScriptDef } from '../runtime/script-def.js';
import * as a from './algorithms.js';
import { parseScriptArgs, type ArgValues } from './args.js';
import { ALGO_KIND, KIND_REDIS_TYPE, TwinStateError, type MemoryStore, type TwinValue } from './store.js';
import { twinReserve, twinSettle } from './reservation.js';
import { twinFairShare } from './fair.js';
import { twinPolicyCarry } from './policy.js';
import { parseTzRules, type Zone } from './calendar.js';
import { specLimits, twinTiers, twinTiersRefund, twinTiersReserve, twinTiersReset, twinTiersSettle, type TiersDeps } from './tiers.js';

export interface TwinCall {
  store: MemoryStore;
  keys: readonly string[];
  args: ArgValues;
  items: ArgValues[];
  now: number;
  simulated: boolean;
  /** The script being run, for its error replies. */
  script: string;
}

const n = (v: unknown) => v as number;
const s = (v: unknown) => v as string;

/** A BADARG as the script's rl_fail raises it. */
function badArg(script: string, message: string): never {
  throw new ScriptError(script, `BADARG redlimit ${script}: ${message}`);
}

/** rl_tz_rules: a rule string parsed, or the script's BADARG. */
function tzRules(script: string, raw: string): Zone {
  return parseTzRules(raw, (m) => badArg(script, m));
}

/** A quota script's zone: its tz_rules when given (non-empty), else utc_offset_ms. */
function quotaZone(c: TwinCall): Zone {
  const raw = c.args.tz_rules as string | undefined;
  return raw === undefined || raw === '' ? n(c.args.utc_offset_ms) : tzRules(c.script, raw);
}

/** An item's zone (rl_multi_zones set it) or its fixed offset. */
const zoneOf = (it: ArgValues): Zone => ((it as unknown as { zone?: Zone }).zone ?? n(it.offset_ms));
const withZone = (it: ArgValues, zone: Zone): ArgValues => ({ ...it, zone } as unknown as ArgValues);

/**
 * rl_multi_zones: tz_rules of multi, multi_peek and multi_batch, one `|`-separated entry per item,
 * each empty (the item keeps its offset_ms) or a rule string for a quota item. Undefined (omitted
 * or empty) leaves the items as they are.
 */
function multiZones(script: string, raw: string | undefined, items: ArgValues[]): ArgValues[] {
  if (raw === undefined || raw === '') return items; // '' is what the prologue makes nil (runParsed callers may pass it)
  const entries = raw.split('|');
  if (entries.length !== items.length) badArg(script, `tz_rules has ${entries.length} entries for ${items.length} limit(s) (one per limit, empty for none)`);
  return items.map((it, index) => {
    const entry = entries[index]!;
    if (entry === '') return it;
    const i = index + 1;
    if (it.algo !== 'quota') badArg(script, `tz_rules[${i}] is for algo quota only, limit ${i} is ${it.algo}`);
    const bytes = Buffer.byteLength(entry);
    if (bytes > 1024) badArg(script, `tz_rules[${i}] must be at most 1024 bytes, got ${bytes}`);
    return withZone(it, tzRules(script, entry));
  });
}

/** Applies an admitted Eval's writes; the reply is the Eval itself less its writes (every Eval is a fresh array). */
function consume(e: a.Eval, store: MemoryStore): number[] {
  if (e[0] === 1) a.apply(store, e[4]);
  e.pop();
  return e as unknown as number[];
}

/** A single-key consume (its write made at once) into a fresh reply. */
function reply(run: (out: number[]) => void): number[] {
  const out = [0, 0, 0, 0];
  run(out);
  return out;
}

/** A peek: allowed and retry for `cost`, remaining and reset as they are now. */
function peek(evalAt: (cost: number) => a.Eval, cost: number): number[] {
  const e = evalAt(cost);
  if (e[0] === 1 && cost > 0) {
    const now = evalAt(0);
    return [1, now[1], now[2], e[3]];
  }
  return [e[0], e[1], e[2], e[3]];
}

function refund(r: [number, number, a.Write[]], store: MemoryStore): number[] {
  a.apply(store, r[2]);
  return [r[0], r[1]];
}

type Kind = TwinValue['kind'];

const KINDS = Object.keys(KIND_REDIS_TYPE) as Kind[];

/** The kind of state `key` holds at `now` (it is known to hold some). */
function heldKind(store: MemoryStore, key: string, now: number): Kind | undefined {
  for (const kind of KINDS) {
    try {
      if (store.get(key, kind, now) !== undefined) return kind;
    } catch {
      // another kind: try the next
    }
  }
  return undefined;
}

/**
 * What Redis answers when `algo` meets `key` holding another algorithm's state: WRONGTYPE when
 * the Redis types differ (the Lua's redis.call refuses), WRONGSTATE when they match but the
 * value is not this algorithm's (the Lua's rl_fail_state).
 */
function stateKeyError(script: string, store: MemoryStore, key: string, algo: string, now: number): ScriptError {
  const held = heldKind(store, key, now);
  if (held !== undefined && KIND_REDIS_TYPE[held] !== KIND_REDIS_TYPE[(ALGO_KIND as Record<string, Kind>)[algo]!]) {
    return new ScriptError(script, 'WRONGTYPE Operation against a key holding the wrong kind of value');
  }
  return new ScriptError(script, `WRONGSTATE redlimit ${algo}: key ${key} does not hold ${algo} state`);
}

/** The algorithm a single-key script runs (gcra_peek: gcra). */
function algoOfScript(name: string): string {
  let best = name;
  for (const algo of Object.keys(ALGO_KIND)) if (name.startsWith(algo) && (best === name || algo.length > best.length)) best = algo;
  return best;
}

/** The marker code of a batch decision that failed alone; any other error is thrown again. */
function keyErrorCode(err: unknown): number {
  if (err instanceof ScriptError) {
    for (const [code, word] of Object.entries(KEY_ERROR_CODES)) if (word === err.redisCode) return Number(code);
  }
  throw err;
}

function multiItem(c: TwinCall, key: string, it: ArgValues, trim: boolean): a.Eval {
  try {
    return evalItem(c, key, it, trim);
  } catch (err) {
    if (err instanceof TwinStateError) throw stateKeyError(c.script, c.store, key, s(it.algo), c.now);
    throw err;
  }
}

function evalItem(c: TwinCall, key: string, it: ArgValues, trim: boolean): a.Eval {
  const { store, now, simulated } = c;
  const share = it.share_ppm as number | undefined;
  switch (it.algo) {
    case 'gcra':
      return a.gcraEval(store, key, n(it.limit), n(it.period_ms), n(it.burst), n(it.cost), now, simulated, a.keep(n(it.burst), share));
    case 'token_bucket':
      return a.tokenBucketEval(store, key, n(it.limit), n(it.period_ms), n(it.burst), n(it.cost), now, simulated, a.keep(n(it.burst), share));
    case 'fixed_window':
      return a.fixedWindowEval(store, key, n(it.limit), n(it.period_ms), n(it.offset_ms), n(it.cost), now, simulated, a.keep(n(it.limit), share));
    case 'sliding_window':
      return a.slidingWindowEval(store, key, n(it.limit), n(it.period_ms), n(it.cost), now, simulated, a.keep(n(it.limit), share));
    case 'sliding_log':
      return a.slidingLogEval(store, key, n(it.limit), n(it.period_ms), n(it.cost), now, simulated, trim, a.keep(n(it.limit), share));
    case 'quota':
      return a.quotaEval(store, key, n(it.limit), s(it.unit), zoneOf(it), n(it.cost), now, simulated, a.keep(n(it.limit), share));
    case 'concurrency':
      return a.concurrencyEval(store, key, n(it.limit), n(it.period_ms), s(it.holder), n(it.cost), now, simulated, trim, a.keep(n(it.limit), share));
    default: {
      const until = a.blockRead(store, key, now);
      return until !== undefined ? [0, 0, until - now, until - now, []] : [1, 0, 0, 0, []];
    }
  }
}

/**
 * rl_multi_check's rules for a concurrency item, which the shared item checks (src/runtime/checks.ts)
 * do not know yet: concurrency_acquire's ranges, cost 1 or 0, a holder id.
 */
function checkConcurrencyItems(name: string, items: readonly ArgValues[]): void {
  items.forEach((it, index) => {
    if (it.algo !== 'concurrency') return;
    const i = index + 1;
    const need = (field: string, value: number | undefined, min: number, max: number) => {
      if (value === undefined) throw new ScriptError(name, `BADARG redlimit ${name}: ${field}[${i}] is required for algo concurrency`);
      if (value < min || value > max) throw new ScriptError(name, `BADARG redlimit ${name}: ${field}[${i}] must be between ${min} and ${max} for algo concurrency, got ${value}`);
    };
    need('limit', it.limit as number | undefined, 1, 1_000_000);
    need('period_ms', it.period_ms as number | undefined, 1, 31_622_400_000);
    need('cost', it.cost as number | undefined, 0, 1);
    if (it.holder === undefined) throw new ScriptError(name, `BADARG redlimit ${name}: holder[${i}] is required for algo concurrency`);
  });
}

function multi(c: TwinCall, commit: boolean, name: string): number[] {
  checkConcurrencyItems(name, c.items);
  const seen = new Map<string, number>();
  c.keys.forEach((k, i) => {
    if (seen.has(k)) throw new ScriptError(name, `BADARG redlimit ${name}: key ${k} is given twice (items ${seen.get(k)! + 1} and ${i + 1})`);
    seen.set(k, i);
  });
  const reply = [1, 0, 0];
  const pending: a.Write[][] = [];
  c.items.forEach((it, i) => {
    const [allowed, remaining, reset, retry, writes] = multiItem(c, c.keys[i]!, it, commit);
    reply.push(allowed, remaining, reset, retry);
    if (allowed === 1) pending.push(writes);
    else {
      if (reply[0] === 1) {
        reply[0] = 0;
        reply[1] = i + 1;
      }
      if (retry < 0 || reply[2]! < 0) reply[2] = -1;
      else if (retry > reply[2]!) reply[2] = retry;
    }
  });
  if (commit && reply[0] === 1) for (const w of pending) a.apply(c.store, w);
  else {
    c.items.forEach((it, i) => {
      const o = 3 + 4 * i;
      if (reply[o] === 1 && n(it.cost) > 0) {
        const [, remaining, reset] = multiItem(c, c.keys[i]!, { ...it, cost: 0 }, false);
        reply[o + 1] = remaining;
        reply[o + 2] = reset;
      }
    });
  }
  return reply;
}

/** multi / multi_peek: the item checks of the prologue, then their zones (rl_multi_zones), then rl_multi. */
function multiCall(c: TwinCall, commit: boolean, name: string): number[] {
  checkConcurrencyItems(name, c.items);
  return multi({ ...c, items: multiZones(name, c.args.tz_rules as string | undefined, c.items) }, commit, name);
}

/** batch: independent decisions on one limit, in order, each applied before the next. */
function batch(c: TwinCall): number[] {
  let spec: ArgValues = { ...c.args };
  const tz = c.args.tz_rules as string | undefined;
  if (tz !== undefined && tz !== '') {
    if (c.args.algo !== 'quota') badArg('batch', `tz_rules is for algo quota only, got algo ${c.args.algo}`);
    spec = withZone(spec, tzRules('batch', tz));
  }
  const reply = [c.now];
  c.items.forEach((it, i) => {
    spec.cost = it.cost;
    spec.share_ppm = it.share_ppm;
    let e: a.Eval;
    try {
      e = multiItem(c, c.keys[i]!, spec, true);
    } catch (err) {
      reply.push(-1, keyErrorCode(err), 0, 0); // this decision fails alone; nothing of it written
      return;
    }
    const [allowed, remaining, reset, retry, writes] = e;
    if (allowed === 1) a.apply(c.store, writes);
    reply.push(allowed, remaining, reset, retry);
  });
  return reply;
}

/** Which item of a decision that threw holds the key at fault (0: none found), as the Lua finds it. */
function failingItem(c: TwinCall): number {
  for (let i = 0; i < c.items.length; i++) {
    try {
      multiItem(c, c.keys[i]!, { ...c.items[i], cost: 0 }, false);
    } catch {
      return i + 1;
    }
  }
  return 0;
}

/**
 * multi_batch: whole multi decisions over the same limits, in order, each all-or-nothing. Also
 * node_batch's (`name`), whose items carry their keys: every key is local to the twin, so none
 * of its decisions is ELSEWHERE (with one limit node_batch runs batch's loop, which decides
 * exactly as a multi decision of one limit).
 */
function multiBatch(c: TwinCall, name = 'multi_batch'): number[] {
  const count = n(c.args.count);
  const parsed = specLimits(name, count, s(c.args.specs));
  const limits = multiZones(name, c.args.tz_rules as string | undefined, parsed);
  const reply = [c.now];
  for (let d = 0; d * count < c.keys.length; d++) {
    const keys = c.keys.slice(d * count, (d + 1) * count);
    const items = limits.map((l, j) => ({ ...l, cost: c.items[d * count + j]!.cost, share_ppm: c.items[d * count + j]!.share_ppm }));
    const call = { ...c, keys, items };
    try {
      reply.push(...multi(call, true, name).slice(3));
    } catch (err) {
      // This decision fails alone: -1 on each item, the code on the one whose key it was.
      const code = keyErrorCode(err);
      const bad = failingItem(call);
      for (let j = 1; j <= count; j++) reply.push(-1, j === bad ? code : 0, 0, 0);
    }
  }
  return reply;
}

/** What lib/tiers' twin (tiers.ts) borrows: rl_multi_item and rl_multi_zones. */
const tiersDeps: TiersDeps = { evalItem, zones: multiZones };

type Impl = (c: TwinCall) => number[];
const k0 = (c: TwinCall) => c.keys[0]!;
/** What a single script's call must leave of `capacity` for its share_ppm (its priority class). */
const share = (c: TwinCall, capacity: number) => a.keep(capacity, c.args.share_ppm as number | undefined);

export const twinScripts: Record<string, Impl> = {
  policy_carry: twinPolicyCarry,
  gcra: (c) => a.gcraConsume(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.burst), n(c.args.cost), c.now, c.simulated, share(c, n(c.args.burst))),
  gcra_peek: (c) => peek((cost) => a.gcraEval(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.burst), cost, c.now, c.simulated), n(c.args.cost)),
  gcra_refund: (c) => refund(a.gcraRefund(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.burst), n(c.args.cost), c.now, c.simulated), c.store),
  gcra_reserve: (c) =>
    a.gcraReserve(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.burst), n(c.args.cost), n(c.args.max_wait_ms), c.now, c.simulated),
  token_bucket: (c) => reply((out) => a.tokenBucketConsumeTo(out, c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.burst), n(c.args.cost), c.now, c.simulated, share(c, n(c.args.burst)))),
  token_bucket_peek: (c) => peek((cost) => a.tokenBucketEval(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.burst), cost, c.now, c.simulated), n(c.args.cost)),
  token_bucket_refund: (c) => refund(a.tokenBucketRefund(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.burst), n(c.args.cost), c.now, c.simulated), c.store),
  fixed_window: (c) => reply((out) => a.fixedWindowConsumeTo(out, c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.offset_ms), n(c.args.cost), c.now, c.simulated, share(c, n(c.args.limit)))),
  fixed_window_peek: (c) => peek((cost) => a.fixedWindowEval(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.offset_ms), cost, c.now, c.simulated), n(c.args.cost)),
  fixed_window_refund: (c) => refund(a.fixedWindowRefund(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.offset_ms), n(c.args.cost), c.now, c.simulated), c.store),
  sliding_window: (c) => reply((out) => a.slidingWindowConsumeTo(out, c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.cost), c.now, c.simulated, share(c, n(c.args.limit)))),
  sliding_window_peek: (c) => peek((cost) => a.slidingWindowEval(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), cost, c.now, c.simulated), n(c.args.cost)),
  sliding_window_refund: (c) => refund(a.slidingWindowRefund(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.cost), c.now, c.simulated), c.store),
  sliding_log: (c) => consume(a.slidingLogEval(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), n(c.args.cost), c.now, c.simulated, true, share(c, n(c.args.limit))), c.store),
  sliding_log_peek: (c) => peek((cost) => a.slidingLogEval(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), cost, c.now, c.simulated, false), n(c.args.cost)),
  quota: (c) => {
    const zone = quotaZone(c);
    return consume(a.quotaEval(c.store, k0(c), n(c.args.limit), s(c.args.unit), zone, n(c.args.cost), c.now, c.simulated, share(c, n(c.args.limit))), c.store);
  },
  quota_peek: (c) => {
    const zone = quotaZone(c);
    return peek((cost) => a.quotaEval(c.store, k0(c), n(c.args.limit), s(c.args.unit), zone, cost, c.now, c.simulated), n(c.args.cost));
  },
  quota_refund: (c) => {
    const zone = quotaZone(c);
    return refund(a.quotaRefund(c.store, k0(c), n(c.args.limit), s(c.args.unit), zone, n(c.args.cost), c.now, c.simulated), c.store);
  },
  concurrency_acquire: (c) => a.concurrencyAcquire(c.store, k0(c), n(c.args.limit), n(c.args.period_ms), s(c.args.lease_id), c.now, c.simulated, share(c, n(c.args.limit))),
  concurrency_release: (c) => a.concurrencyRelease(c.store, k0(c), s(c.args.lease_id), c.now, c.simulated),
  concurrency_peek: (c) => a.concurrencyPeek(c.store, k0(c), n(c.args.limit), c.now, share(c, n(c.args.limit))),
  block: (c) => [a.block(c.store, k0(c), n(c.args.duration_ms), c.now, c.simulated)],
  // DEL counts only live keys: one expired but not yet swept is not counted (as Redis answers).
  reset: (c) =>
    [
      c.keys.reduce((count, k) => {
        const live = c.store.has(k, c.now);
        c.store.delete(k);
        return count + (live ? 1 : 0);
      }, 0),
    ],
  multi: (c) => multiCall(c, true, 'multi'),
  multi_batch: (c) => multiBatch(c),
  node_batch: (c) => multiBatch({ ...c, keys: c.items.map((it) => s(it.key)) }, 'node_batch'),
  batch,
  multi_peek: (c) => multiCall(c, false, 'multi_peek'),
  reserve: (c) => twinReserve(c, multi, stateKeyError),
  settle: (c) => twinSettle(c, stateKeyError),
  fair_share: twinFairShare,
  tiers: (c) => twinTiers(c, tiersDeps, true),
  // Its items carry their keys; every key is local to the twin, so none is ELSEWHERE.
  tiers_node_batch: (c) => twinTiers({ ...c, keys: c.items.map((it) => s(it.key)) }, tiersDeps, true),
  tiers_peek: (c) => twinTiers(c, tiersDeps, false),
  tiers_refund: (c) => twinTiersRefund(c, tiersDeps),
  tiers_reset: twinTiersReset,
  tiers_reserve: (c) => twinTiersReserve(c, tiersDeps),
  tiers_settle: twinTiersSettle,
};

/** Runs one script on the twin, answering as Redis would (reply array, or ScriptError). */
export function runTwinScript(store: MemoryStore, def: ScriptDef, keys: readonly string[], argv: readonly string[], clock: () => number): number[] {
  const impl = twinScripts[def.name];
  if (!impl) throw new ScriptError(def.name, `ERR the twin has no script ${def.name}`);
  const { args, items } = parseScriptArgs(def, keys, argv);
  const override = args.now_ms as number | undefined;
  const now = override ?? clock();
  try {
    return impl({ store, keys, args, items, now, simulated: override !== undefined, script: def.name });
  } catch (err) {
    throw twinError(err, def, store, keys, now);
  }
}

/** A single-key script's state error as Redis would answer it (multi-key scripts convert per item). */
export function twinError(err: unknown, def: ScriptDef, store: MemoryStore, keys: readonly string[], now: number): unknown {
  if (err instanceof TwinStateError) return stateKeyError(def.name, store, keys[0]!, algoOfScript(def.name), now);
  return err;
}
