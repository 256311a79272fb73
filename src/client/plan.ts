import { algorithmScripts, algorithms, batchScript, itemFields, type AlgoName } from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError } from '../errors.js';
import { enumArg, intArg, stringArg, type ArgSpec, type ScriptDef } from '../runtime/index.js';
import type { ArgValues } from '../twin/args.js';
import { parseScriptArgs } from '../twin/args.js';
import type { LimitSpec } from './config.js';
import { callerError } from './failure.js';

/**
 * A limiter's configuration compiled once, since it never changes after construction: per limit
 * its scripts, its key segment and its fixed arguments, both as the strings Redis is sent and as
 * the typed values the twin takes (so the in-memory path parses no strings). A call only fills in
 * what depends on it: the keys and the costs. What an algorithm takes, and which scripts serve
 * it, comes from the generated algorithm table (the script headers).
 */

export type Algo = AlgoName;

/** One script with its fixed arguments: `argv(cost)` fills in the one slot that varies. */
export interface CompiledScript {
  readonly def: ScriptDef;
  /** ARGV as sent, with `cost` at `costIndex` (-1: the script takes no cost). */
  readonly argv: readonly string[];
  readonly costIndex: number;
  /** Where a priority class (share_ppm) goes when a call has one (-1: the script takes none). */
  readonly shareIndex: number;
  /** The same arguments, parsed and defaulted as the Lua prologue does, for the twin. */
  readonly values: Readonly<ArgValues>;
}

export interface LimitPlan {
  readonly name: string;
  readonly algo: Algo;
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
function compile(def: ScriptDef, values: Record<string, number | string | undefined>): CompiledScript {
  let costIndex = -1;
  const shareIndex = def.args.findIndex((a) => a.name === 'share_ppm');
  const argv = def.args.map((spec, i) => {
    if (spec.name === 'cost') {
      costIndex = i;
      return '1';
    }
    if (spec.name === 'share_ppm') return '';
    if (spec.name === 'now_ms') return '';
    const v = values[spec.name];
    if (v === undefined) return '';
    return validate[spec.type](def.name, spec, v as never, spec.name);
  });
  while (argv.length > 0 && argv[argv.length - 1] === '' && argv.length - 1 !== costIndex) argv.pop();
  // The twin's parse of the same strings applies the defaults and the cross-argument checks.
  const keys = def.keys.map(() => 'plan');
  const { args } = parseScriptArgs(def, keys, argv);
  return { def, argv, costIndex, shareIndex, values: args };
}

const validate: Record<ArgSpec['type'], (script: string, spec: ArgSpec, value: never, label: string) => string> = { int: intArg, enum: enumArg, string: stringArg };

/** Every item field as sent: this limit's parameters, '' for what it does not take (the cost is filled in per call). */
function compileItem(l: LimitSpec): Record<string, string> {
  const p = itemParameters(l, 1);
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

export function compileLimit(l: LimitSpec, share: number): LimitPlan {
  try {
    const scripts = algorithmScripts[l.algo];
    const side = (s: number) => {
      const p = parameters(l, s);
      return { consume: compile(scripts.consume, p), peek: compile(scripts.peek, p), refund: scripts.refund ? compile(scripts.refund, p) : null };
    };
    const redis = side(1);
    const item = compileItem(l);
    const shared = parameters(l, share);
    return {
      name: l.name,
      algo: l.algo,
      limit: l.limit,
      fallbackLimit: shared.limit as number,
      fallbackCapacity: shared[algorithms[l.algo].capacity] as number,
      scope: l.scope === undefined || l.scope === 'id' ? null : l.scope,
      ...redis,
      fallback: share === 1 ? redis : side(share),
      item,
      itemArgv: itemFields.map((f) => item[f.name]!),
      itemCostIndex: itemFields.findIndex((f) => f.name === 'cost'),
      itemShareIndex: itemFields.findIndex((f) => f.name === 'share_ppm'),
      fallbackItem: typedItem(l, share),
    };
  } catch (err) {
    const typed = callerError(err, []); // a script's BADARG, typed
    if (typed instanceof InvalidArgumentError) throw new InvalidConfigError(`limit ${l.name}: ${typed.detail}`);
    throw err;
  }
}

/** ARGV of a single-limit script call with this cost and priority share (a fresh array: the runner may keep it). */
export function argvWith(c: CompiledScript, cost: number | string, share?: string): string[] {
  const argv = c.argv.slice();
  if (c.costIndex >= 0) argv[c.costIndex] = String(cost);
  if (share !== undefined && share !== '' && c.shareIndex >= 0) {
    while (argv.length <= c.shareIndex) argv.push('');
    argv[c.shareIndex] = share;
  }
  return argv;
}

const scratch = new WeakMap<CompiledScript, ArgValues>();

/**
 * The typed twin arguments with this cost, in a scratch object reused per script: the twin runs
 * synchronously and keeps nothing of its arguments, so the in-memory path allocates none.
 */
export function valuesWith(c: CompiledScript, cost: number, share?: string): ArgValues {
  let v = scratch.get(c);
  if (!v) {
    v = { ...c.values };
    scratch.set(c, v);
  }
  if (c.costIndex >= 0) v.cost = cost;
  if (c.shareIndex >= 0) v.share_ppm = share === undefined || share === '' ? c.values.share_ppm : Number(share);
  return v;
}

/** This limit's multi item group with this cost (item field order, see scripts-lua/multi.lua). */
export function pushItem(argv: string[], p: LimitPlan, cost: number | string, share?: string): void {
  const group = p.itemArgv;
  for (let j = 0; j < group.length; j++) argv.push(j === p.itemCostIndex ? String(cost) : j === p.itemShareIndex && share !== undefined ? share : group[j]!);
}

/** The multi item group for a block key: its kind, nothing else. */
const BLOCK_GROUP = itemFields.map((f) => (f.name === 'algo' ? 'block' : ''));

export function pushBlockItem(argv: string[]): void {
  for (const v of BLOCK_GROUP) argv.push(v);
}

/** The batch script's fixed ARGV for this limit (its arguments are item fields), now_ms omitted. */
export function batchArgv(item: Readonly<Record<string, string>>): string[] {
  return batchScript.args.map((a) => item[a.name] ?? '');
}
