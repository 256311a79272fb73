import type { ArgSpec, ScriptDef } from '../src/runtime/script-def.js';
import { CodegenError } from './errors.js';
import type { ScriptHeader } from './header.js';
import { resolveIncludes, scanIncludes } from './includes.js';
import { shakeFragments } from './shake.js';

const ARGS_MARKER = /^---\s+@args\s*$/;

/** Lua literal for a number bound (always integral, never in exponent form). */
function luaInt(n: number): string {
  return BigInt(n).toString();
}

/**
 * Lua statements parsing one argument from `raw` at ARGV index `index` into `target`.
 *
 * What a valid call costs matters (the coalesced scripts parse a group per decision): an
 * optional argument sent empty, or an int sent as its own default spelled out (cost "1",
 * share_ppm "1000000"), takes the default without a function call; only other values go through
 * rl_arg_* (which refuse with the messages). `raw` must be a local the statements may reuse.
 */
function parseArgLua(script: string, a: ArgSpec, target: string, raw: string, index: string, item: string | null, scope: (n: string) => string, present = false): string[] {
  const required = a.required ? 'true' : 'false';
  // The name and item number go in separately: the label is only formatted for an error message.
  const label = `'${a.name}'`;
  const tail = item ? `, ${item}` : '';
  let call: string;
  if (a.type === 'int') {
    // A decimal string already parsed (rl_int_memo, filled by rl_arg_int: a limiter sends the
    // same limits on every call) costs a table read and the range test; anything else, and any
    // value out of this argument's range (refused there), goes through rl_arg_int.
    const [min, max] = [luaInt(a.min!), luaInt(a.max!)];
    const parse = `rl_arg_int(${script}, ${raw}, ${index}, ${label}, ${required}, ${min}, ${max}${tail})`;
    const assign = (t: string) => `do local n = rl_int_memo[${raw}] if n == nil or n < ${min} or n > ${max} then n = ${parse} end ${t} = n end`;
    if (a.required) return [assign(target)];
    const value =
      a.default === undefined ? 'nil' : typeof a.default === 'object' ? scope(a.default.arg) : typeof a.default === 'number' ? luaInt(a.default) : `'${a.default}'`;
    // An int default as the client spells it: a literal that is its own decimal form.
    const spelled = typeof a.default === 'number' ? ` or ${raw} == '${luaInt(a.default)}'` : '';
    const absent = present ? `${raw} == ''` : `${raw} == nil or ${raw} == ''`;
    return [`if ${absent}${spelled} then ${target} = ${value} else ${assign(target)} end`];
  } else if (a.type === 'enum') {
    call = `rl_arg_enum(${script}, ${raw}, ${index}, ${label}, ${required}, '|${a.values!.join('|')}|'${tail})`;
  } else {
    call = `rl_arg_string(${script}, ${raw}, ${index}, ${label}, ${required}, ${a.maxLength}${tail})`;
  }
  // An enum's valid values compare as interned strings (no concatenation, no search).
  const known = a.type === 'enum' ? a.values!.map((v) => `${raw} == '${v}'`).join(' or ') : null;
  if (a.required) return [known ? `if not (${known}) then ${target} = ${call} end` : `${target} = ${call}`];
  const value =
    a.default === undefined ? 'nil' : typeof a.default === 'object' ? scope(a.default.arg) : typeof a.default === 'number' ? luaInt(a.default) : `'${a.default}'`;
  // A group's arguments are all there (rl_arity_variadic counted them); a fixed one may be nil.
  const absent = present ? `${raw} == ''` : `${raw} == nil or ${raw} == ''`;
  if (known) return [`if ${absent} then ${target} = ${value} elseif not (${known}) then ${target} = ${call} end`];
  return [`if ${absent} then ${target} = ${value} else ${target} = ${call} end`];
}

/** A script's Redis flags, as its shebang line and its Functions registration declare them. */
export function scriptFlags(def: { readonly readOnly: boolean; readonly flags?: readonly string[] }): string[] {
  return [...(def.readOnly ? ['no-writes'] : []), ...(def.flags ?? [])];
}

/** The argument prologue a header stands for: arity, each argument, defaults, checks, groups. */
export function renderPrologue(h: Pick<ScriptDef, 'name' | 'keys' | 'args' | 'checks' | 'each'>): string {
  const s = `'${h.name}'`;
  // The library functions the hot paths call (lib/args: rl_call, ...), looked up once per
  // Functions library (on each call of an EVAL script).
  const out = [
    '-- Arguments, as declared in the header above (written by codegen).',
    'if not rl_bound then rl_call, rl_fmod, rl_floor, rl_format, rl_tonumber, rl_bound = redis.call, math.fmod, math.floor, string.format, tonumber, true end',
  ];
  const variadic = h.keys.at(-1)?.variadic === true;
  const groupSize = h.each?.args.length ?? 0;
  if (variadic) out.push(`rl_arity_variadic(${s}, KEYS, ARGV, ${h.keys.length}, ${h.args.length}, ${groupSize})`);
  else if (h.each) out.push(`local rl_groups = rl_arity_groups(${s}, KEYS, ARGV, ${h.keys.length}, ${h.args.length}, ${groupSize})`);
  else out.push(`rl_arity(${s}, KEYS, ARGV, ${h.keys.length}, ${h.args.length})`);
  h.args.forEach((a: ArgSpec, i) => {
    out.push(`local ${a.name} = ARGV[${i + 1}]`);
    out.push(...parseArgLua(s, a, a.name, a.name, String(i + 1), null, (n) => n));
  });
  if (h.each) {
    // Each group's fields go into locals, then into one table built whole (sized once by its
    // constructor, not grown field by field).
    const fixed = h.args.length;
    const local = (n: string) => `g_${n}`;
    out.push(`local ${h.each.name} = {}`);
    out.push(variadic ? `for i = 1, #KEYS - ${h.keys.length - 1} do` : 'for i = 1, rl_groups do');
    out.push(`  local base = ${fixed} + (i - 1) * ${groupSize}`);
    h.each.args.forEach((a, j) => {
      out.push(`  local ${local(a.name)} = ARGV[base + ${j + 1}]`);
      for (const l of parseArgLua(s, a, local(a.name), local(a.name), `base + ${j + 1}`, 'i', local, true)) out.push(`  ${l}`);
    });
    out.push(`  ${h.each.name}[i] = { ${h.each.args.map((a) => `${a.name} = ${local(a.name)}`).join(', ')} }`);
    out.push('end');
  }
  for (const c of h.checks) out.push(`rl_check_${c.name}(${s}, ${c.args.join(', ')})`);
  return out.join('\n');
}

/**
 * The self-contained script that gets loaded: the header, a generated-file note, every fragment
 * once (only the definitions the script reaches), then the body with the argument prologue in
 * place of `--- @args`.
 */
export function assembleLua(rootDir: string, file: string, text: string, h: ScriptHeader): string {
  const lines = text.split('\n');
  const headerEnd = lines.findIndex((l) => !l.startsWith('---') || /^---\s+@(include|args)\b/.test(l));
  const headerLines = lines.slice(0, headerEnd);
  const rest = lines.slice(headerEnd).join('\n');

  const markerCount = rest.split('\n').filter((l) => ARGS_MARKER.test(l.trim())).length;
  if (markerCount !== 1) {
    throw new CodegenError(file, headerEnd + 1, `the body must hold exactly one "--- @args" line (found ${markerCount})`);
  }
  const body = scanIncludes(rest)
    .body.split('\n')
    .map((l) => (ARGS_MARKER.test(l.trim()) ? renderPrologue(h) : l))
    .join('\n')
    .trim();
  const fragments = shakeFragments(resolveIncludes(rootDir, file, text), body);
  const defined = new Set(fragments.flatMap((f) => [...f.body.matchAll(/^local (?:function )?(rl_\w+)/gm)].map((m) => m[1]!)));
  const missing = [...new Set([...body.matchAll(/\b(rl_\w+)\s*\(/g)].map((m) => m[1]!))].filter((n) => !defined.has(n));
  if (missing.length > 0) {
    throw new CodegenError(file, headerEnd + 1, `uses ${missing.join(', ')}, which no included fragment defines (a missing --- @include?)`);
  }

  const flags = scriptFlags(h);
  const parts = [
    // Redis 7+: no-writes refuses any write from the script and lets it run on replicas
    // (EVALSHA_RO); allow-cross-slot-keys lets it reach keys of several slots on its node.
    ...(flags.length > 0 ? [`#!lua flags=${flags.join(',')}`] : []),
    headerLines.join('\n'),
    `-- redlimit ${h.name} v${h.version}: generated by codegen from ${file} and its includes. Edit those, not this file.`,
    ...fragments.map((f) => `-- from ${f.file}\n${f.body}`),
    `-- from ${file}\n${body}`,
  ];
  const joined = parts.join('\n\n');
  return (flags.length > 0 ? joined.replace('\n\n', '\n') : joined) + '\n';
}
