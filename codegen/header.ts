import type { ArgSpec, CheckSpec, KeySpec, ReturnSpec } from '../src/runtime/script-def.js';
import { CodegenError } from './errors.js';
import { KNOWN_CHECKS } from './checks.js';
import { camelCase } from './names.js';

/** What a script's header declares: its whole contract. */
export interface ScriptHeader {
  name: string;
  version: number;
  summary: string;
  readOnly: boolean;
  /** Redis script flags besides no-writes (`@flags`). */
  flags: string[];
  keys: KeySpec[];
  args: ArgSpec[];
  returns: ReturnSpec[];
  checks: CheckSpec[];
  each?: { name: string; args: ArgSpec[]; returns: ReturnSpec[]; per?: string };
}

const NAME = /^[a-z][a-z0-9_]*$/;
/** Redis script flags a header may declare with `@flags` (no-writes is `@readonly`). */
const KNOWN_FLAGS = ['allow-cross-slot-keys'];
const TAG_LINE = /^---\s+@(\w+)\s*(.*)$/;
const ARG_LINE =
  /^(\w+)\s+(int|string|enum:[\w|]+)\s+(required|optional|default=(\S+))(?:\s+(-?\d+)\.\.(-?\d+)|\s+maxlen=(\d+))?\s+(.+)$/;

/**
 * Parses the `--- @tag` block that opens a script. `file` is only for error messages.
 * Tags: script, version, summary, readonly, flags, key, arg, check, return. `@include` and `@args`
 * belong to the body and are left for the include resolver.
 */
export function parseHeader(file: string, text: string, expectedName: string): ScriptHeader {
  const lines = text.split('\n');
  const header: Partial<ScriptHeader> & Pick<ScriptHeader, 'flags' | 'keys' | 'args' | 'returns' | 'checks'> = {
    readOnly: false,
    flags: [],
    keys: [],
    args: [],
    returns: [],
    checks: [],
  };
  const seen = new Set<string>();

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trimEnd();
    if (!line.startsWith('---')) break;
    const lineNo = i + 1;
    const fail = (message: string): never => {
      throw new CodegenError(file, lineNo, message);
    };
    const m = TAG_LINE.exec(line);
    if (!m) continue; // prose in the doc block
    const [, tag, rest] = m as unknown as [string, string, string];
    switch (tag) {
      case 'script':
        if (!NAME.test(rest)) fail(`@script name "${rest}" must be snake_case`);
        if (rest !== expectedName) fail(`@script ${rest} does not match the file name ${expectedName}.lua`);
        header.name = rest;
        break;
      case 'version':
        if (!/^[1-9]\d*$/.test(rest)) fail(`@version must be a positive integer, got "${rest}"`);
        header.version = Number(rest);
        break;
      case 'summary':
        if (!rest) fail('@summary is empty');
        header.summary = rest;
        break;
      case 'readonly':
        header.readOnly = true;
        break;
      case 'flags':
        // Script flags Redis knows besides no-writes (@readonly): only what a script here needs.
        for (const f of rest.split(/\s+/)) {
          if (!KNOWN_FLAGS.includes(f)) fail(`@flags takes ${KNOWN_FLAGS.join(', ')}, got "${f}"`);
          header.flags.push(f);
        }
        break;
      case 'key': {
        // name+ is variadic; "name+ repeats" lets one key stand more than once (batch).
        const km = /^(\w+)(\+?)(\s+repeats)?\s+(.+)$/.exec(rest);
        if (!km || !NAME.test(km[1]!)) fail('@key wants: <name>[+ [repeats]] <doc>');
        if (header.keys.some((k) => k.variadic)) fail('only the last @key may be variadic (name+)');
        if (km![3] && !km![2]) fail('only a variadic key (name+) may repeat');
        header.keys.push({ name: km![1]!, prop: camelCase(km![1]!), doc: km![4]!, ...(km![2] ? { variadic: true } : {}), ...(km![3] ? { repeats: true } : {}) });
        break;
      }
      case 'arg':
        if (header.each) fail('@arg must come before @each');
        header.args.push(parseArg(rest, fail));
        break;
      case 'each': {
        // "@each decisions per=count": each item's reply is `count` results (an int argument's
        // value), one per limit (tiers: a key holds every limit), not one.
        const em = /^(\w+)(?:\s+per=(\w+))?$/.exec(rest);
        if (!em || !NAME.test(em[1]!)) fail('@each wants the list name, e.g. "@each limits" (or "@each decisions per=count")');
        // With a variadic last key, one item per key; without, items are counted from ARGV.
        header.each = { name: em![1]!, args: [], returns: [], ...(em![2] ? { per: em![2] } : {}) };
        if (em![2] && !header.args.some((a) => a.name === em![2] && a.type === 'int' && a.required)) fail(`@each ${em![1]} per=${em![2]}: ${em![2]} must be a required int @arg declared before it`);
        break;
      }
      case 'group':
        if (!header.each) fail('@group needs an @each before it');
        header.each!.args.push(parseArg(rest, fail));
        break;
      case 'return_each': {
        if (!header.each) fail('@return_each needs an @each before it');
        const rm = /^(\w+)\s+(bool|int|string)\s+(.+)$/.exec(rest);
        if (!rm || !NAME.test(rm[1]!)) fail('@return_each wants: <name> <bool|int|string> <doc>');
        header.each!.returns.push({ name: rm![1]!, prop: camelCase(rm![1]!), type: rm![2] as ReturnSpec['type'], doc: rm![3]! });
        break;
      }
      case 'check': {
        const [name, ...args] = rest.split(/\s+/);
        const known = KNOWN_CHECKS[name ?? ''];
        if (!known) fail(`@check ${name} is not a known check (${Object.keys(KNOWN_CHECKS).join(', ')})`);
        if (args.length !== known!.arity) fail(`@check ${name} takes ${known!.arity} argument names`);
        for (const a of args) {
          if (!header.args.some((x) => x.name === a) && header.each?.name !== a) fail(`@check ${name}: no @arg or @each named ${a} above it`);
        }
        header.checks.push({ name: name!, args, doc: known!.doc });
        break;
      }
      case 'return': {
        const rm = /^(\w+)\s+(bool|int|string)\s+(.+)$/.exec(rest);
        if (!rm || !NAME.test(rm[1]!)) fail('@return wants: <name> <bool|int|string> <doc>');
        header.returns.push({ name: rm![1]!, prop: camelCase(rm![1]!), type: rm![2] as ReturnSpec['type'], doc: rm![3]! });
        break;
      }
      case 'include':
      case 'args':
        continue;
      default:
        fail(`unknown tag @${tag}`);
    }
    if (['script', 'version', 'summary', 'readonly', 'flags'].includes(tag)) {
      if (seen.has(tag)) fail(`@${tag} given twice`);
      seen.add(tag);
    }
  }

  const end = lines.findIndex((l) => !l.startsWith('---'));
  const endLine = end === -1 ? lines.length : end + 1;
  for (const required of ['script', 'version', 'summary'] as const) {
    if (header[required === 'script' ? 'name' : required] === undefined) {
      throw new CodegenError(file, endLine, `header has no @${required}`);
    }
  }
  if (header.returns.length === 0) throw new CodegenError(file, endLine, 'header has no @return');
  if (header.each && header.each.args.length === 0) throw new CodegenError(file, endLine, '@each has no @group');
  checkNames(file, endLine, header as ScriptHeader);
  return header as ScriptHeader;
}

function parseArg(rest: string, fail: (m: string) => never): ArgSpec {
  const m = ARG_LINE.exec(rest);
  if (!m) {
    fail('@arg wants: <name> <int|string> <required|optional|default=V> [min..max | maxlen=N] <doc>');
  }
  const [, name, type, presence, defaultRaw, min, max, maxLength, doc] = m!;
  if (!NAME.test(name!)) fail(`@arg name "${name}" must be snake_case`);
  const spec: { -readonly [K in keyof ArgSpec]: ArgSpec[K] } = {
    name: name!,
    prop: camelCase(name!),
    type: type!.startsWith('enum:') ? 'enum' : (type as ArgSpec['type']),
    required: presence === 'required',
    doc: doc!,
  };
  if (defaultRaw !== undefined) {
    if (/^-?\d+$/.test(defaultRaw)) spec.default = type === 'int' ? Number(defaultRaw) : defaultRaw;
    else if (NAME.test(defaultRaw)) spec.default = { arg: defaultRaw };
    else spec.default = defaultRaw;
  }
  if (type === 'int') {
    if (min === undefined || max === undefined) fail(`@arg ${name}: an int needs a range min..max`);
    spec.min = Number(min);
    spec.max = Number(max);
    if (!Number.isSafeInteger(spec.min) || !Number.isSafeInteger(spec.max) || spec.min > spec.max) {
      fail(`@arg ${name}: bad range ${min}..${max}`);
    }
    if (typeof spec.default === 'number' && (spec.default < spec.min || spec.default > spec.max)) {
      fail(`@arg ${name}: default ${spec.default} is outside ${min}..${max}`);
    }
  } else if (spec.type === 'enum') {
    spec.values = type!.slice('enum:'.length).split('|');
    if (spec.values.some((v) => !NAME.test(v))) fail(`@arg ${name}: enum values must be snake_case words`);
    if (typeof spec.default === 'object') spec.default = spec.default.arg; // a bare word is a value here
    if (spec.default !== undefined && !spec.values.includes(String(spec.default))) fail(`@arg ${name}: default ${spec.default} is not one of its values`);
  } else {
    if (maxLength === undefined) fail(`@arg ${name}: a string needs maxlen=N`);
    spec.maxLength = Number(maxLength);
  }
  return spec;
}

function checkNames(file: string, line: number, h: ScriptHeader): void {
  const names = new Set<string>();
  for (const n of [...h.keys.map((k) => k.name), ...h.args.map((a) => a.name), ...(h.each?.args ?? []).map((a) => a.name)]) {
    if (names.has(n)) throw new CodegenError(file, line, `name ${n} is declared twice`);
    names.add(n);
  }
  let optionalSeen = false;
  for (const a of h.args) {
    if (!a.required) optionalSeen = true;
    else if (optionalSeen) throw new CodegenError(file, line, `required @arg ${a.name} comes after an optional one`);
    checkDefaultRef(file, line, h.args, a);
  }
  for (const a of h.each?.args ?? []) checkDefaultRef(file, line, h.each!.args, a);
}

function checkDefaultRef(file: string, line: number, list: ArgSpec[], a: ArgSpec): void {
  if (typeof a.default !== 'object') return;
  const ref = a.default.arg;
  if (!list.slice(0, list.indexOf(a)).some((b) => b.name === ref)) {
    throw new CodegenError(file, line, `@arg ${a.name}: default=${ref} must name an earlier argument`);
  }
}
