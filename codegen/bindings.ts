import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import type { ArgSpec, ReturnSpec, ScriptDef } from '../src/runtime/script-def.js';
import { camelCase, pascalCase } from './names.js';

const hbs = Handlebars.create();
hbs.registerHelper('inc', (n: number) => n + 1);

let bindingTemplate: Handlebars.TemplateDelegate | undefined;

/**
 * TypeScript property that carries KEYS[i]: `key` when a script has one fixed key, `keys` for a
 * variadic key without an item list, else `<name>Key`. Items of an `each` list carry `key`.
 */
export function keyField(def: Pick<ScriptDef, 'keys'>, index: number): string {
  if (def.keys[index]!.variadic) return 'keys';
  return def.keys.length === 1 ? 'key' : `${def.keys[index]!.prop}Key`;
}

export function tsArgType(a: ArgSpec): string {
  if (a.type === 'int') return 'number';
  if (a.type === 'enum') return a.values!.map((v) => `'${v}'`).join(' | ');
  return 'string';
}

export function tsReturnType(r: ReturnSpec): string {
  return r.type === 'bool' ? 'boolean' : r.type === 'int' ? 'number' : 'string';
}

const validator = { int: 'intArg', string: 'stringArg', enum: 'enumArg' } as const;

/** A TS expression for an argument's value with its default applied (for cross-argument checks). */
function valueExpr(def: ScriptDef, name: string): string {
  if (def.each?.name === name) return `args.${camelCase(name)}`;
  const a = def.args.find((x) => x.name === name)!;
  const own = `args.${a.prop}`;
  if (a.default === undefined) return own;
  if (typeof a.default === 'object') return `(${own} ?? ${valueExpr(def, a.default.arg)})`;
  return `(${own} ?? ${JSON.stringify(a.default)})`;
}

function argDoc(a: ArgSpec): string {
  const range = a.type === 'int' ? ` Range ${a.min}..${a.max}.` : a.type === 'string' ? ` At most ${a.maxLength} bytes.` : '';
  const dflt = a.default === undefined ? '' : ` Default: ${typeof a.default === 'object' ? `\`${camelCase(a.default.arg)}\`` : a.default}.`;
  return `${a.doc}${range}${dflt}`;
}

function decodeExpr(r: ReturnSpec, index: string): string {
  return r.type === 'bool' ? `reply[${index}] === 1` : r.type === 'int' ? `reply[${index}] as number` : `String(reply[${index}])`;
}

/** Renders generated/ts/<name>.ts from the handlebars template. */
export function renderBinding(rootDir: string, def: ScriptDef, file: string): string {
  bindingTemplate ??= hbs.compile(readFileSync(join(rootDir, 'codegen/templates/binding.ts.hbs'), 'utf8'), { noEscape: true });
  const pascal = pascalCase(def.name);
  const each = def.each;
  const fixedKeys = def.keys.filter((k) => !k.variadic);
  const variadic = def.keys.find((k) => k.variadic);
  return bindingTemplate({
    file,
    name: def.name,
    version: def.version,
    summary: def.summary,
    camel: camelCase(def.name),
    pascal,
    def: JSON.stringify(def, null, 2),
    fixedKeys: fixedKeys.map((k, i) => ({ ...k, index: i, field: keyField(def, i) })),
    variadicKeys: variadic && !each ? { ...variadic, index: def.keys.length - 1 } : undefined,
    args: def.args.map((a, i) => ({ ...a, index: i, optional: !a.required, tsType: tsArgType(a), doc: argDoc(a), validator: validator[a.type] })),
    trim: !variadic && !each,
    each: each && {
      name: camelCase(each.name),
      // With a variadic key each item's `key` is its KEYS entry; without, items live in ARGV only.
      keyed: variadic !== undefined,
      keyDoc: variadic?.doc,
      keyIndex: def.keys.length - 1,
      args: each.args.map((a, i) => ({ ...a, index: i, optional: !a.required, tsType: tsArgType(a), doc: argDoc(a), validator: validator[a.type] })),
      returns: each.returns.map((r, i) => ({ ...r, tsType: tsReturnType(r), decode: decodeExpr(r, `o + ${i}`) })),
      stride: each.returns.length,
      offset: def.returns.length,
      // Each item's reply is `per` results (an int argument's value), one per limit.
      per: each.per ? camelCase(each.per) : undefined,
    },
    checks: def.checks.map((c) => ({ fn: camelCase(c.name), argExprs: c.args.map((n) => valueExpr(def, n)).join(', ') })),
    keysRepeat: def.keys.some((k) => k.repeats === true),
    returns: def.returns.map((r, i) => ({ ...r, tsType: tsReturnType(r), decode: decodeExpr(r, String(i)) })),
  });
}
