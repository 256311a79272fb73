/**
 * The twin of policy_carry: a proportional policy change carries one subject's limit from its
 * key under an earlier epoch to its key under the new one, the same fraction left, floored
 * (scripts-lua/policy_carry.lua line for line: each algorithm's own evaluation reads the source
 * at cost 0 and charges the fresh target, so nothing of the state encodings is known here).
 */
import { InvalidArgumentError, ScriptError } from '../errors.js';
import { checks } from '../runtime/checks.js';
import * as a from './algorithms.js';
import { muldivmod } from './exact.js';
import type { MemoryStore } from './store.js';
import type { ArgValues } from './args.js';
import { expiresAt } from './eval.js';

/**
 * The markers policy_carry sets (key -> expiry on the twin's clock), beside each store: a marker
 * is no algorithm state, and the store holds only those. Gone once now > expiry (Redis' rule).
 */
const markers = new WeakMap<MemoryStore, Map<string, number>>();
function markerHeld(store: MemoryStore, key: string, now: number): boolean {
  const at = markers.get(store)?.get(key);
  if (at === undefined) return false;
  if (now > at) {
    markers.get(store)!.delete(key);
    return false;
  }
  return true;
}
function setMarker(store: MemoryStore, key: string, at: number): void {
  let m = markers.get(store);
  if (!m) markers.set(store, (m = new Map()));
  m.set(key, at);
  if (m.size > 100_000) m.delete(m.keys().next().value!);
}

/** One limit as policy_carry reads it (multi's item fields). */
interface CarryItem {
  algo: string;
  limit: number;
  periodMs?: number;
  burst: number;
  offsetMs: number;
  unit?: string;
  cost: number;
}

const S = 'policy_carry';
const badArg = (message: string): never => {
  throw new ScriptError(S, `BADARG redlimit ${S}: ${message}`);
};

function spec(i: number | undefined, algo: string, limit: number, periodMs: number, burst: number, offsetMs: number, unit: string | undefined): CarryItem {
  const item: CarryItem = { algo, limit, periodMs: algo === 'quota' ? undefined : periodMs, burst: burst === 0 ? limit : burst, offsetMs, cost: 0, ...(unit !== undefined ? { unit } : {}) };
  try {
    if (i === undefined) checks.batchSpec(S, algo, item.limit, item.periodMs, item.burst, item.offsetMs, item.unit, [{ cost: 0 }]);
    else checks.multiItems(S, [...Array<CarryItem>(i - 1).fill({ ...item, algo: 'block' }), item]);
  } catch (err) {
    if (err instanceof InvalidArgumentError) badArg(err.detail);
    throw err;
  }
  return item;
}

const capacity = (item: CarryItem) => (item.algo === 'gcra' || item.algo === 'token_bucket' ? item.burst : item.limit);

function evalItem(store: MemoryStore, key: string, it: CarryItem, now: number, simulated: boolean, trim: boolean): a.Eval {
  switch (it.algo) {
    case 'gcra':
      return a.gcraEval(store, key, it.limit, it.periodMs!, it.burst, it.cost, now, simulated, 0);
    case 'token_bucket':
      return a.tokenBucketEval(store, key, it.limit, it.periodMs!, it.burst, it.cost, now, simulated, 0);
    case 'fixed_window':
      return a.fixedWindowEval(store, key, it.limit, it.periodMs!, it.offsetMs, it.cost, now, simulated, 0);
    case 'sliding_window':
      return a.slidingWindowEval(store, key, it.limit, it.periodMs!, it.cost, now, simulated, 0);
    case 'sliding_log':
      return a.slidingLogEval(store, key, it.limit, it.periodMs!, it.cost, now, simulated, trim, 0);
    default:
      return a.quotaEval(store, key, it.limit, it.unit!, it.offsetMs, it.cost, now, simulated, 0);
  }
}

const ENTRY = /^([A-Za-z0-9_]+):(\d+):(\d+):(\d+):(-?\d+):([A-Za-z]*)$/;

/** policy_carry on the twin: same keys, same ARGV values, same reply. */
export function twinPolicyCarry(c: { store: MemoryStore; keys: readonly string[]; args: ArgValues; now: number; simulated: boolean }): number[] {
  const { store, keys, args, now, simulated } = c;
  const algo = args.algo as string;
  const target = spec(undefined, algo, args.limit as number, args.period_ms as number, args.burst as number, args.offset_ms as number, args.unit as string | undefined);
  const sources: CarryItem[] = [];
  for (const entry of (args.from as string).split(',').filter((e) => e !== '')) {
    const i = sources.length + 1;
    const m = ENTRY.exec(entry);
    if (!m) badArg(`from[${i}] must be algo:limit:period_ms:burst:offset_ms:unit, got "${entry.slice(0, 60)}"`);
    const [, a2, l, p, b, o, u] = m!;
    if (a2 !== algo) badArg(`from[${i}] is algo ${a2}, the target is ${algo}: only the same algorithm carries`);
    sources.push(spec(i, a2!, Number(l), Number(p), Number(b), Number(o), u === '' ? undefined : u));
  }
  if (sources.length !== keys.length - 2) badArg(`from has ${sources.length} source(s) for ${keys.length - 2} source key(s)`);
  const capNew = capacity(target);
  const [targetKey, markerKey] = [keys[0]!, keys[1]!];
  if (markerHeld(store, markerKey, now)) return [0, 0, 0, -1];
  for (let i = 0; i < sources.length; i++) {
    const sourceKey = keys[i + 2]!;
    if (!store.has(sourceKey, now)) continue;
    const src = sources[i]!;
    const [, leftRead, fullIn] = evalItem(store, sourceKey, src, now, simulated, false);
    const capOld = capacity(src);
    const left = Math.min(Math.max(leftRead, 0), capOld);
    const used = capNew - muldivmod(left, capNew, capOld)[0];
    if (fullIn > 0) setMarker(store, markerKey, expiresAt(now, fullIn, simulated));
    const room = evalItem(store, targetKey, target, now, simulated, false)[1];
    const take = Math.min(used, Math.max(room, 0));
    if (take === 0) return [0, i + 1, 0, room];
    const [allowed, remaining, , , writes] = evalItem(store, targetKey, { ...target, cost: take }, now, simulated, true);
    if (allowed !== 1) throw new ScriptError(S, 'ERR redlimit policy_carry: a key refused what it has left');
    a.apply(store, writes);
    return [1, i + 1, take, remaining];
  }
  return [0, 0, 0, capNew];
}
