import { algorithmScripts, algorithms, batchScript, concurrencyAcquireScript, concurrencyPeekScript, itemFields, type AlgoName } from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError } from '../errors.js';
import { enumArg, intArg, stringArg, type ArgSpec, type ScriptDef } from '../runtime/index.js';
import type { ArgValues } from '../twin/args.js';
import { parseScriptArgs } from '../twin/args.js';
import { DEFAULT_CONCURRENCY_TTL_MS, type AnyLimitSpec, type ConcurrencyLimitSpec, type LimitSpec } from './config.js';
import { callerError } from './failure.js';
import { ZoneRules } from './time-zone.js';

/**
 * A limiter's configuration compiled once, since it never changes after construction: per limit
 * its scripts, its key segment and its fixed arguments, both as the strings Redis is sent and as
 * the typed values the twin takes (so the in-memory path parses no strings). A call only fills in
 * what depends on it: the keys and the costs. What an algorithm takes, and which scripts serve
 * it, comes from the generated algorithm table (the script headers).
 */

export type Algo = AlgoName | 'concurrency';

/**
 * What a limiter fills in per call besides costs: the clock reading sent as now_ms (only with
 * `sendClock`; null: the server's TIME).
 */
export interface CallClock {
  now: (() => number) | null;
}

/** One script with its fixed arguments: `argv(cost)` fills in the one slot that varies. */
export interface CompiledScript {
  readonly def: ScriptDef;
  /** ARGV as sent, with `cost` at `costIndex` (-1: the script takes no cost). */
  readonly argv: readonly string[];
  readonly costIndex: number;
  /** Where a priority class (share_ppm) goes when a call has one (-1: the script takes none). */
  readonly shareIndex: number;
  /** Where the clock reading goes with `sendClock` (-1: the script takes none). */
  readonly nowIndex: number;
  /** Where the time zone's rules go (-1: the script takes none). */
  readonly tzIndex: number;
  /** The limit's time zone (a quota with `timeZone`): its rules are filled in per call. */
  readonly zone: ZoneRules | null;
  /** With `sendClock`, the limiter's clock (shared by every script of the limiter). */
  readonly clock: CallClock;
  /** The same arguments, parsed and defaulted as the Lua prologue does, for the twin. */
  readonly values: Readonly<ArgValues>;
}

export interface LimitPlan {
  readonly name: string;
  readonly algo: Algo;
  /** A concurrency limit: its item takes a holder per call; it has no refund (release frees its slot). */
  readonly concurrency: boolean;
  /** A quota's IANA time zone (null: its fixed offset). */
  readonly zone: ZoneRules | null;
  /** Size reported to callers (the configured limit; during an outage divided by the share). */
  readonly limit: number;
  readonly fallbackLimit: number;
  /** Units a fresh key holds on the fallback (burst for gcra / token_bucket, else the limit), per share. */
  readonly fallbackCapacity: number;
  /** null: keyed by the subject's id; else the scope name whose value keys it. */
  readonly scope: string | null;
  readonly consume: CompiledScript;
  readonly peek: CompiledScript;
  readonly refund: CompiledScript | null;
  /** The same three with every size divided by the fallback share (the twin's side). */
  readonly fallback: { readonly consume: CompiledScript; readonly peek: CompiledScript; readonly refund: CompiledScript | null };
  /** This limit as a multi / batch item, by item field name (algo, limit, period_ms, …), as sent. */
  readonly item: Readonly<Record<string, string>>;
  /** The same item as its ARGV group, in item field order, with the cost at `itemCostIndex`. */
  readonly itemArgv: readonly string[];
  readonly itemCostIndex: number;
  readonly itemShareIndex: number;
  readonly itemHolderIndex: number;
  /** The fallback's item, typed for the twin (defaults applied as the Lua prologue would). */
  readonly fallbackItem: Readonly<ArgValues>;
}

/** A limit's parameters by script argument name, defaults applied, every size divided by `share`. */
function parameters(l: LimitSpec, share: number): Record<string, number | string | undefined> {
  const algo = algorithms[l.algo];
  const div = (n: number) => (share === 1 ? n : Math.max(1, Math.floor(n / share)));
  const p: Record<string, number | string | undefined> = {};
  for (const spec of algo.params) {
    let v = (l as unknown as Record<string, number | string | undefined>)[spec.prop];
    if (v === undefined && spec.default !== undefined) v = typeof spec.default === 'object' ? (l as unknown as Record<string, number>)[algo.params.find((x) => x.name === (spec.default as { arg: string }).arg)!.prop] : spec.default;
    p[spec.name] = typeof v === 'number' && (spec.name === 'limit' || spec.name === algo.capacity) ? div(v) : v;
  }
  return p;
}

/** The same parameters by the name each has as a multi / batch item (utc_offset_ms travels as offset_ms). */
function itemParameters(l: LimitSpec, share: number): Record<string, number | string | undefined> {
  const p = parameters(l, share);
  return Object.fromEntries(algorithms[l.algo].params.map((spec) => [spec.item, p[spec.name]]));
}

/** Validates the values against the script's own header (the one source of every range). */
function compile(def: ScriptDef, values: Record<string, number | string | undefined>, zone: ZoneRules | null, clock: CallClock): CompiledScript {
  let costIndex = -1;
  const shareIndex = def.args.findIndex((a) => a.name === 'share_ppm');
  const nowIndex = def.args.findIndex((a) => a.name === 'now_ms');
  const tzIndex = def.args.findIndex((a) => a.name === 'tz_rules');
  const argv = def.args.map((spec, i) => {
    if (spec.name === 'cost') {
      costIndex = i;
      return '1';
    }
    if (spec.name === 'share_ppm' || spec.name === 'now_ms' || spec.name === 'tz_rules') return '';
    const v = values[spec.name];
    if (v === undefined) return '';
    return validate[spec.type](def.name, spec, v as never, spec.name);
  });
  while (argv.length > 0 && argv[argv.length - 1] === '' && argv.length - 1 !== costIndex) argv.pop();
  // The twin's parse of the same strings applies the defaults and the cross-argument checks.
  const keys = def.keys.map(() => 'plan');
  const { args } = parseScriptArgs(def, keys, argv);
  return { def, argv, costIndex, shareIndex, nowIndex, tzIndex, zone: tzIndex >= 0 ? zone : null, clock, values: args };
}

const validate: Record<ArgSpec['type'], (script: string, spec: ArgSpec, value: never, label: string) => string> = { int: intArg, enum: enumArg, string: stringArg };

/** Every item field as sent: this limit's parameters, '' for what it does not take (the cost is filled in per call). */
function compileItem(l: LimitSpec): Record<string, string> {
  const p: Record<string, number | string | undefined> = itemParameters(l, 1);
  return Object.fromEntries(itemFields.map((f) => [f.name, f.name === 'algo' ? l.algo : p[f.name] === undefined ? '' : String(p[f.name])]));
}

/** The twin's item: every field parsed and defaulted as the Lua prologue would. */
function typedItem(l: LimitSpec, share: number): ArgValues {
  const p = itemParameters(l, share);
  const item: ArgValues = { algo: l.algo };
  for (const f of itemFields) {
    if (f.name === 'algo') continue;
    let v = f.name === 'cost' ? 1 : p[f.name];
    if (v === undefined && f.default !== undefined) v = typeof f.default === 'object' ? item[f.default.arg] : f.default;
    item[f.name] = v;
  }
  return item;
}

/**
 * `label` names the limit in configuration errors (default `limit <name>`; a byScope entry's
 * values: `limit <name>: byScope["<value>"]`). `zone`: the limit's time zone rules when they are
 * built already (the same zone for every scope value).
 */
export function compileLimit(l: AnyLimitSpec, share: number, clock: CallClock = { now: null }, localClock: () => number = Date.now, label = `limit ${l.name}`, zoneRules?: ZoneRules | null): LimitPlan {
  if (l.algo === 'concurrency') return compileConcurrency(l, share, clock);
  try {
    const zone = zoneRules !== undefined ? zoneRules : l.algo === 'quota' && l.timeZone !== undefined ? zoneOf(label, l.timeZone, localClock) : null;
    const scripts = algorithmScripts[l.algo];
    const side = (s: number) => {
      const p = parameters(l, s);
      return { consume: compile(scripts.consume, p, zone, clock), peek: compile(scripts.peek, p, zone, clock), refund: scripts.refund ? compile(scripts.refund, p, zone, clock) : null };
    };
    const redis = side(1);
    const item = compileItem(l);
    const shared = parameters(l, share);
    return {
      name: l.name,
      algo: l.algo,
      concurrency: false,
      zone,
      limit: l.limit,
      fallbackLimit: shared.limit as number,
      fallbackCapacity: shared[algorithms[l.algo].capacity] as number,
      scope: l.scope === undefined || l.scope === 'id' ? null : l.scope,
      ...redis,
      fallback: share === 1 ? redis : side(share),
      item,
      itemArgv: itemFields.map((f) => item[f.name]!),
      itemCostIndex: ITEM_COST,
      itemShareIndex: ITEM_SHARE,
      itemHolderIndex: ITEM_HOLDER,
      fallbackItem: typedItem(l, share),
    };
  } catch (err) {
    if (err instanceof InvalidConfigError) throw err;
    const typed = callerError(err, []); // a script's BADARG, typed
    if (typed instanceof InvalidArgumentError) throw new InvalidConfigError(`${label}: ${typed.detail}`);
    throw err;
  }
}

const ITEM_COST = itemFields.findIndex((f) => f.name === 'cost');
const ITEM_SHARE = itemFields.findIndex((f) => f.name === 'share_ppm');
const ITEM_HOLDER = itemFields.findIndex((f) => f.name === 'holder');

/** A quota's time zone, its rules built now: an unknown name is the configuration's error. */
function zoneOf(label: string, timeZone: string, clock: () => number): ZoneRules {
  try {
    return new ZoneRules(timeZone, clock);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new InvalidConfigError(`${label}: ${err.detail}`);
    throw err;
  }
}

/**
 * A concurrency limit: always decided as a multi item (concurrency_acquire and concurrency_peek
 * stand in as its single scripts, which no call of the limiter sends: the holder is per call);
 * during an outage each instance holds its share of the slots. Its slots are never seeded on the
 * fallback from what Redis said (fallbackCapacity 0): the twin cannot know the holders.
 */
function compileConcurrency(l: ConcurrencyLimitSpec, share: number, clock: CallClock): LimitPlan {
  const ttl = l.ttlMs ?? DEFAULT_CONCURRENCY_TTL_MS;
  const slots = (s: number) => (s === 1 ? l.limit : Math.max(1, Math.floor(l.limit / s)));
  const side = (s: number) => ({
    consume: compile(concurrencyAcquireScript, { limit: slots(s), period_ms: ttl, lease_id: '-' }, null, clock),
    peek: compile(concurrencyPeekScript, { limit: slots(s) }, null, clock),
    refund: null,
  });
  const redis = side(1);
  const item: Record<string, string> = Object.fromEntries(itemFields.map((f) => [f.name, '']));
  item.algo = 'concurrency';
  item.limit = String(l.limit);
  item.period_ms = String(ttl);
  item.cost = '1';
  const fallbackItem: ArgValues = { algo: 'concurrency', limit: slots(share), period_ms: ttl, cost: 1, burst: slots(share), offset_ms: 0, unit: undefined, share_ppm: 1_000_000, holder: undefined };
  return {
    name: l.name,
    algo: 'concurrency',
    concurrency: true,
    zone: null,
    limit: l.limit,
    fallbackLimit: slots(share),
    fallbackCapacity: 0,
    scope: l.scope === undefined || l.scope === 'id' ? null : l.scope,
    ...redis,
    fallback: share === 1 ? redis : side(share),
    item,
    itemArgv: itemFields.map((f) => item[f.name]!),
    itemCostIndex: ITEM_COST,
    itemShareIndex: ITEM_SHARE,
    itemHolderIndex: ITEM_HOLDER,
    fallbackItem,
  };
}

/** ARGV of a single-limit script call with this cost and priority share (a fresh array: the runner may keep it). */
export function argvWith(c: CompiledScript, cost: number | string, share?: string): string[] {
  const argv = c.argv.slice();
  if (c.costIndex >= 0) argv[c.costIndex] = String(cost);
  if (share !== undefined && share !== '' && c.shareIndex >= 0) put(argv, c.shareIndex, share);
  if (c.zone !== null) put(argv, c.tzIndex, c.zone.rules());
  if (c.clock.now !== null && c.nowIndex >= 0) put(argv, c.nowIndex, String(Math.floor(c.clock.now())));
  return argv;
}

/** Sets an argument, filling what comes before it with '' (omitted). */
function put(argv: string[], i: number, value: string): void {
  while (argv.length <= i) argv.push('');
  argv[i] = value;
}

const scratch = new WeakMap<CompiledScript, ArgValues>();

/**
 * The typed twin arguments with this cost, in a scratch object reused per script: the twin runs
 * synchronously and keeps nothing of its arguments, so the in-memory path allocates none. A
 * quota with a time zone carries its current rules.
 */
export function valuesWith(c: CompiledScript, cost: number, share?: string): ArgValues {
  let v = scratch.get(c);
  if (!v) {
    v = { ...c.values };
    scratch.set(c, v);
  }
  if (c.costIndex >= 0) v.cost = cost;
  if (c.shareIndex >= 0) v.share_ppm = share === undefined || share === '' ? c.values.share_ppm : Number(share);
  if (c.zone !== null) v.tz_rules = c.zone.rules();
  return v;
}

/** This limit's multi item group with this cost (item field order, see scripts-lua/multi.lua); a concurrency item takes `holder`. */
export function pushItem(argv: string[], p: LimitPlan, cost: number | string, share?: string, holder?: string): void {
  const group = p.itemArgv;
  for (let j = 0; j < group.length; j++) {
    argv.push(j === p.itemCostIndex ? String(cost) : j === p.itemShareIndex && share !== undefined ? share : j === p.itemHolderIndex && holder !== undefined && p.concurrency ? holder : group[j]!);
  }
}

/** The multi item group for a block key: its kind, nothing else. */
const BLOCK_GROUP = itemFields.map((f) => (f.name === 'algo' ? 'block' : ''));

/** Appends the block item's group (after multi v3 / multi_peek v3's now_ms and tz_rules). */
export function pushBlockItem(argv: string[]): void {
  for (const v of BLOCK_GROUP) argv.push(v);
}

/** Where the batch script takes its clock reading and its time zone's rules. */
export const BATCH_NOW = batchScript.args.findIndex((a) => a.name === 'now_ms');
export const BATCH_TZ = batchScript.args.findIndex((a) => a.name === 'tz_rules');

/** The batch script's fixed ARGV for this limit (its arguments are item fields), now_ms and tz_rules omitted. */
export function batchArgv(item: Readonly<Record<string, string>>): string[] {
  return batchScript.args.map((a) => (a.name === 'tz_rules' || a.name === 'now_ms' ? '' : (item[a.name] ?? '')));
}
