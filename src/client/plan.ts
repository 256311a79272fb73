import * as b from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError } from '../errors.js';
import { enumArg, intArg, type ScriptDef } from '../runtime/index.js';
import type { ArgValues } from '../twin/args.js';
import { parseScriptArgs } from '../twin/args.js';
import type { LimitSpec } from './config.js';

/**
 * A limiter's configuration compiled once (see shared/STYLE.md, "Compile once"): per limit its
 * scripts, its key segment and its fixed arguments, both as the strings Redis is sent and as the
 * typed values the twin takes (so the in-memory path parses no strings). A call only fills in
 * what depends on it: the keys and the costs.
 */

export type Algo = LimitSpec['algo'];

/** One script with its fixed arguments: `argv(cost)` fills in the one slot that varies. */
export interface CompiledScript {
  readonly def: ScriptDef;
  /** ARGV as sent, with `cost` at `costIndex` (-1: the script takes no cost). */
  readonly argv: readonly string[];
  readonly costIndex: number;
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
  /** This limit as a multi / batch item (algo, limit, period_ms, cost, burst, offset_ms, unit). */
  readonly item: Readonly<Record<string, string>>;
  /** The fallback's item, typed for the twin (defaults applied as the Lua prologue would). */
  readonly fallbackItem: Readonly<ArgValues>;
}

const SCRIPTS: Record<Algo, { consume: ScriptDef; peek: ScriptDef; refund: ScriptDef | null }> = {
  gcra: { consume: b.gcraScript, peek: b.gcraPeekScript, refund: b.gcraRefundScript },
  token_bucket: { consume: b.tokenBucketScript, peek: b.tokenBucketPeekScript, refund: b.tokenBucketRefundScript },
  fixed_window: { consume: b.fixedWindowScript, peek: b.fixedWindowPeekScript, refund: b.fixedWindowRefundScript },
  sliding_window: { consume: b.slidingWindowScript, peek: b.slidingWindowPeekScript, refund: b.slidingWindowRefundScript },
  sliding_log: { consume: b.slidingLogScript, peek: b.slidingLogPeekScript, refund: null },
  quota: { consume: b.quotaScript, peek: b.quotaPeekScript, refund: b.quotaRefundScript },
};

/** A limit's parameters by script argument name, every size divided by `share`. */
function parameters(l: LimitSpec, share: number): Record<string, number | string | undefined> {
  const div = (n: number) => (share === 1 ? n : Math.max(1, Math.floor(n / share)));
  const p: Record<string, number | string | undefined> = { limit: div(l.limit) };
  if (l.algo === 'quota') {
    p.unit = l.unit;
    p.utc_offset_ms = l.utcOffsetMs ?? 0;
    p.offset_ms = l.utcOffsetMs ?? 0; // the multi / batch item's name for it
  } else p.period_ms = l.periodMs;
  if (l.algo === 'gcra' || l.algo === 'token_bucket') p.burst = div(l.burst ?? l.limit);
  if (l.algo === 'fixed_window') p.offset_ms = l.offsetMs ?? 0;
  return p;
}

/** Validates the values against the script's own header (the one source of every range). */
function compile(def: ScriptDef, values: Record<string, number | string | undefined>): CompiledScript {
  let costIndex = -1;
  const argv = def.args.map((spec, i) => {
    if (spec.name === 'cost') {
      costIndex = i;
      return '1';
    }
    if (spec.name === 'now_ms') return '';
    const v = values[spec.name];
    if (v === undefined) return '';
    return spec.type === 'enum' ? enumArg(def.name, spec, v as string, spec.name) : intArg(def.name, spec, v as number, spec.name);
  });
  while (argv.length > 0 && argv[argv.length - 1] === '' && argv.length - 1 !== costIndex) argv.pop();
  // The twin's parse of the same strings applies the defaults and the cross-argument checks.
  const keys = def.keys.map(() => 'plan');
  const { args } = parseScriptArgs(def, keys, argv);
  return { def, argv, costIndex, values: args };
}

function compileItem(l: LimitSpec): Record<string, string> {
  const p = parameters(l, 1);
  const str = (v: number | string | undefined) => (v === undefined ? '' : String(v));
  return { algo: l.algo, limit: str(p.limit), period_ms: str(p.period_ms), burst: str(p.burst), offset_ms: str(p.offset_ms), unit: str(p.unit) };
}

function typedItem(l: LimitSpec, share: number): ArgValues {
  const p = parameters(l, share);
  return { algo: l.algo, limit: p.limit, period_ms: p.period_ms, burst: p.burst ?? p.limit, offset_ms: p.offset_ms ?? 0, unit: p.unit, cost: 1 };
}

export function compileLimit(l: LimitSpec, share: number): LimitPlan {
  try {
    const scripts = SCRIPTS[l.algo];
    const side = (s: number) => {
      const p = parameters(l, s);
      return { consume: compile(scripts.consume, p), peek: compile(scripts.peek, p), refund: scripts.refund ? compile(scripts.refund, p) : null };
    };
    const redis = side(1);
    return {
      name: l.name,
      algo: l.algo,
      limit: l.limit,
      fallbackLimit: parameters(l, share).limit as number,
      fallbackCapacity: (parameters(l, share).burst ?? parameters(l, share).limit) as number,
      scope: l.scope === undefined || l.scope === 'id' ? null : l.scope,
      ...redis,
      fallback: share === 1 ? redis : side(share),
      item: compileItem(l),
      fallbackItem: typedItem(l, share),
    };
  } catch (err) {
    if (err instanceof InvalidArgumentError || (err as Error).name === 'ScriptError') {
      throw new InvalidConfigError(`limit ${l.name}: ${(err as Error).message.replace(/^ERR redlimit \w+: /, '').replace(/^redlimit \w+: /, '')}`);
    }
    throw err;
  }
}

/** ARGV of a single-limit script call with this cost (a fresh array: the runner may keep it). */
export function argvWith(c: CompiledScript, cost: number | string): string[] {
  const argv = c.argv.slice();
  if (c.costIndex >= 0) argv[c.costIndex] = String(cost);
  return argv;
}

const scratch = new WeakMap<CompiledScript, ArgValues>();

/**
 * The typed twin arguments with this cost, in a scratch object reused per script: the twin runs
 * synchronously and keeps nothing of its arguments, so the in-memory path allocates none.
 */
export function valuesWith(c: CompiledScript, cost: number): ArgValues {
  let v = scratch.get(c);
  if (!v) {
    v = { ...c.values };
    scratch.set(c, v);
  }
  if (c.costIndex >= 0) v.cost = cost;
  return v;
}

/** The multi item group order (see scripts-lua/multi.lua): algo limit period_ms cost burst offset_ms unit. */
export function pushItem(argv: string[], item: Readonly<Record<string, string>>, cost: number | string): void {
  argv.push(item.algo!, item.limit!, item.period_ms!, String(cost), item.burst!, item.offset_ms!, item.unit!);
}

/** The multi item group for a block key. */
export function pushBlockItem(argv: string[]): void {
  argv.push('block', '', '', '', '', '', '');
}

/** The batch script's fixed ARGV for this limit (see scripts-lua/batch.lua), now_ms omitted. */
export function batchArgv(item: Readonly<Record<string, string>>): string[] {
  return [item.algo!, item.limit!, item.period_ms!, item.burst!, item.offset_ms!, item.unit!, ''];
}
