import { checks } from '../runtime/checks.js';
import type { ArgSpec, ScriptDef } from '../runtime/script-def.js';
import { InvalidArgumentError, ScriptError } from '../errors.js';

export type ArgValues = Record<string, number | string | undefined>;

/** A refused argument: the reply the Lua prologue gives (rl_fail), code BADARG. */
function fail(def: ScriptDef, message: string): never {
  throw new ScriptError(def.name, `BADARG redlimit ${def.name}: ${message}`);
}

/** One argument as the Lua prologue parses it (rl_arg_int / rl_arg_enum / rl_arg_string). */
function parseOne(def: ScriptDef, spec: ArgSpec, raw: string | undefined, index: number, label: string, scope: ArgValues): number | string | undefined {
  let value: number | string | undefined;
  if (raw === undefined || raw === '') {
    if (spec.required) fail(def, `${label} (ARGV[${index}]) is required`);
  } else if (spec.type === 'int') {
    if (raw.length > 17 || !/^-?\d+$/.test(raw)) fail(def, `${label} (ARGV[${index}]) must be a decimal integer, got "${raw.slice(0, 40)}"`);
    value = Number(raw);
    if (value < spec.min! || value > spec.max!) fail(def, `${label} (ARGV[${index}]) must be between ${spec.min} and ${spec.max}, got ${raw}`);
  } else if (spec.type === 'enum') {
    if (!spec.values!.includes(raw)) fail(def, `${label} (ARGV[${index}]) must be one of ${spec.values!.join('|')}, got "${raw.slice(0, 40)}"`);
    value = raw;
  } else {
    if (Buffer.byteLength(raw) > spec.maxLength!) fail(def, `${label} (ARGV[${index}]) must be at most ${spec.maxLength} bytes, got ${Buffer.byteLength(raw)}`);
    value = raw;
  }
  if (value === undefined && spec.default !== undefined) {
    value = typeof spec.default === 'object' ? scope[spec.default.arg] : spec.default;
  }
  return value;
}

/** The twin of the generated Lua prologue: arity, arguments, defaults, item lists, checks. */
export function parseScriptArgs(def: ScriptDef, keys: readonly string[], argv: readonly string[]): { args: ArgValues; items: ArgValues[] } {
  const variadic = def.keys.at(-1)?.variadic === true;
  const groupSize = def.each?.args.length ?? 0;
  let count = keys.length - def.keys.length + 1;
  if (def.each && !variadic) {
    // Items counted from ARGV (rl_arity_groups): fixed keys, fixed args, then whole groups.
    if (keys.length !== def.keys.length) fail(def, `expects ${def.keys.length} key(s), got ${keys.length}`);
    const extra = argv.length - def.args.length;
    if (extra < groupSize || extra % groupSize !== 0) {
      fail(def, `expects ${def.args.length} fixed argument(s) then one or more groups of ${groupSize}, got ${argv.length} argument(s)`);
    }
    count = extra / groupSize;
  } else if (variadic) {
    const n = keys.length - def.keys.length + 1;
    if (n < 1) fail(def, `expects at least ${def.keys.length} key(s), got ${keys.length}`);
    const want = def.args.length + n * groupSize;
    if (argv.length !== want) {
      fail(def, `expects ${want} argument(s) for ${keys.length} key(s) (${def.args.length} fixed + ${groupSize} per key), got ${argv.length}`);
    }
  } else {
    if (keys.length !== def.keys.length) fail(def, `expects ${def.keys.length} key(s), got ${keys.length}`);
    if (argv.length > def.args.length) fail(def, `expects at most ${def.args.length} argument(s), got ${argv.length}`);
  }
  const args: ArgValues = {};
  def.args.forEach((spec, i) => (args[spec.name] = parseOne(def, spec, argv[i], i + 1, spec.name, args)));
  const items: ArgValues[] = [];
  if (def.each) {
    for (let i = 1; i <= count; i++) {
      const base = def.args.length + (i - 1) * groupSize;
      const item: ArgValues = {};
      def.each.args.forEach((spec, j) => (item[spec.name] = parseOne(def, spec, argv[base + j], base + j + 1, `${spec.name}[${i}]`, item)));
      items.push(item);
    }
  }
  try {
    for (const c of def.checks) {
      const fn = checkFns[c.name];
      if (!fn) fail(def, `twin has no check ${c.name}`);
      fn(def.name, c.args.map((a) => (a === def.each?.name ? items : args[a])));
    }
  } catch (err) {
    if (err instanceof InvalidArgumentError) fail(def, err.detail);
    throw err;
  }
  return { args, items };
}

const checkFns: Record<string, (script: string, values: unknown[]) => void> = {
  refill_bounded: (s, [l, p, b]) => checks.refillBounded(s, l as number, p as number, b as number),
  reserve_bounded: (s, [l, p, w]) => checks.reserveBounded(s, l as number, p as number, w as number),
  offset_within_period: (s, [p, o]) => checks.offsetWithinPeriod(s, p as number, o as number),
  batch_spec: (s, [algo, limit, period, burst, offset, unit, decisions]) =>
    checks.batchSpec(s, algo as string, limit as number, period as number | undefined, burst as number, offset as number, unit as string | undefined, decisions as { cost?: number }[]),
  multi_batch_specs: (s, [count, specs, items]) => checks.multiBatchSpecs(s, count as number, specs as string, items as { cost?: number }[]),
  tiers_specs: (s, [count, specs, decisions]) => checks.tiersSpecs(s, count as number, specs as string, decisions as { costs?: string; shares?: string }[]),
  tiers_items: (s, [count, specs, items]) => checks.tiersItems(s, count as number, specs as string, items as { cost?: number }[]),
  multi_items: (s, [items]) =>
    checks.multiItems(
      s,
      (items as ArgValues[]).map((it) => ({
        algo: it.algo as string,
        limit: it.limit as number,
        periodMs: it.period_ms as number | undefined,
        cost: it.cost as number,
        burst: it.burst as number,
        offsetMs: it.offset_ms as number,
        unit: it.unit as string | undefined,
      })),
    ),
};
