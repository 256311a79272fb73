import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import type { ArgSpec, ScriptDef } from '../src/runtime/script-def.js';
import { camelCase, pascalCase } from './names.js';

const hbs = Handlebars.create();
hbs.registerHelper('inc', (n: number) => n + 1);

let bindingTemplate: Handlebars.TemplateDelegate | undefined;

/** TypeScript property that carries KEYS[i]: `key` when a script has one key, else `<name>Key`. */
export function keyField(def: Pick<ScriptDef, 'keys'>, index: number): string {
  return def.keys.length === 1 ? 'key' : `${def.keys[index]!.prop}Key`;
}

/** A TS expression for an argument's value with its default applied (for cross-argument checks). */
function valueExpr(def: ScriptDef, name: string): string {
  const a = def.args.find((x) => x.name === name)!;
  const own = `args.${a.prop}`;
  if (a.default === undefined) return own;
  if (typeof a.default === 'object') return `(${own} ?? ${valueExpr(def, a.default.arg)})`;
  return `(${own} ?? ${JSON.stringify(a.default)})`;
}

function defaultDoc(a: ArgSpec): string | undefined {
  if (a.default === undefined) return undefined;
  return typeof a.default === 'object' ? `\`${camelCase(a.default.arg)}\`` : String(a.default);
}

/** Renders generated/ts/<name>.ts from the handlebars template. */
export function renderBinding(rootDir: string, def: ScriptDef, file: string): string {
  bindingTemplate ??= hbs.compile(readFileSync(join(rootDir, 'codegen/templates/binding.ts.hbs'), 'utf8'), { noEscape: true });
  return bindingTemplate({
    file,
    name: def.name,
    version: def.version,
    summary: def.summary,
    camel: camelCase(def.name),
    pascal: pascalCase(def.name),
    def: JSON.stringify(def, null, 2),
    keys: def.keys.map((k, i) => ({ ...k, field: keyField(def, i) })),
    args: def.args.map((a) => ({
      ...a,
      tsType: a.type === 'int' ? 'number' : 'string',
      range: a.type === 'int' ? `${a.min}..${a.max}` : `at most ${a.maxLength} bytes`,
      defaultDoc: defaultDoc(a),
      validator: a.type === 'int' ? 'intArg' : 'stringArg',
    })),
    checks: def.checks.map((c) => ({ fn: camelCase(c.name), argExprs: c.args.map((n) => valueExpr(def, n)).join(', ') })),
    returns: def.returns.map((r, i) => ({
      ...r,
      tsType: r.type === 'bool' ? 'boolean' : r.type === 'int' ? 'number' : 'string',
      decode: r.type === 'bool' ? `reply[${i}] === 1` : r.type === 'int' ? `reply[${i}] as number` : `String(reply[${i}])`,
    })),
  });
}
