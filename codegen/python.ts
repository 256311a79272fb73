import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import type { ReturnSpec, ScriptDef } from '../src/runtime/script-def.js';
import { CodegenError } from './errors.js';
import type { CompiledScript } from './generate.js';
import { pascalCase } from './names.js';

/**
 * A Python string literal holding exactly `text`, in ASCII: code points above 0xFFFF become
 * \U escapes (a JSON \uD83D\uDE00 pair would be two lone surrogates in Python).
 */
export function pyString(text: string): string {
  let out = '"';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else out += `\\U${cp.toString(16).padStart(8, '0')}`;
  }
  return out + '"';
}

/** A long text as adjacent literals, one per line of the text (Python joins them). */
function pyText(text: string, indent: string): string {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [''];
  return lines.map((l) => indent + pyString(l)).join('\n');
}

/** Names Python will not take as a field (a header name that is one fails codegen, not an import). */
const PY_KEYWORDS = new Set([
  'False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else',
  'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise',
  'return', 'try', 'while', 'with', 'yield',
]);

const PY_RETURN: Record<ReturnSpec['type'], string> = { bool: 'bool', int: 'int', string: 'str' };

function field(script: string, name: string): string {
  if (PY_KEYWORDS.has(name) || !/^[a-z_][a-z0-9_]*$/.test(name)) {
    throw new CodegenError(`scripts-lua/${script}.lua`, 1, `${name} cannot be a Python field name (the Python binding's result dataclasses)`);
  }
  return name;
}

/** The Python class of a script's reply (`GcraResult`) and of one item of its list (`MultiItemResult`). */
export function pyResultClass(name: string, item = false): string {
  return `${pascalCase(name)}${item ? 'Item' : ''}Result`;
}

/**
 * One frozen dataclass per script reply, fields in reply order with their header docs, and
 * from_reply() taking the dict a Script call answers. Derived from @return / @return_each only.
 */
function resultClasses(def: ScriptDef): string {
  const fields = (returns: readonly ReturnSpec[]) =>
    returns.map((r) => `    ${field(def.name, r.name)}: ${PY_RETURN[r.type]}\n    ${pyString(r.doc)}\n`).join('');
  const out: string[] = [];
  const cls = pyResultClass(def.name);
  if (def.each) {
    const item = pyResultClass(def.name, true);
    out.push(`@dataclass(frozen=True)\nclass ${item}:\n    ${pyString(`One item of ${def.name}'s ${def.each.name} (@return_each).`)}\n\n${fields(def.each.returns)}`);
    const list = field(def.name, def.each.name);
    const per = def.each.per !== undefined;
    out.push(
      `@dataclass(frozen=True)\nclass ${cls}:\n    ${pyString(`${def.name} v${def.version}'s reply (scripts-lua/${def.name}.lua).`)}\n\n${fields(def.returns)}` +
        (per
          ? `    ${list}: List[List[${item}]]\n    ${pyString(`Per item of ${def.each.name}, in order: its ${def.each.per} results (one per limit).`)}\n\n` +
            `    @classmethod\n    def from_reply(cls, reply):\n        return cls(**{**reply, ${pyString(list)}: [[${item}(**x) for x in xs] for xs in reply[${pyString(list)}]]})\n`
          : `    ${list}: List[${item}]\n    ${pyString(`One per item of ${def.each.name}, in order.`)}\n\n` +
            `    @classmethod\n    def from_reply(cls, reply):\n        return cls(**{**reply, ${pyString(list)}: [${item}(**x) for x in reply[${pyString(list)}]]})\n`),
    );
  } else {
    out.push(
      `@dataclass(frozen=True)\nclass ${cls}:\n    ${pyString(`${def.name} v${def.version}'s reply (scripts-lua/${def.name}.lua).`)}\n\n${fields(def.returns)}` +
        `\n    @classmethod\n    def from_reply(cls, reply):\n        return cls(**reply)\n`,
    );
  }
  return out.join('\n\n');
}

interface ManifestArg {
  name: string;
  type: 'int' | 'enum' | 'string';
  required: boolean;
  default: number | string | { arg: string } | null;
  min?: number;
  max?: number;
  values?: string[];
  maxLength?: number;
  doc: string;
  item?: string;
}
interface Manifest {
  algorithms: { name: string; params: ManifestArg[]; perCall: ManifestArg[] }[];
  items: { kinds: string[]; fields: { name: string }[] };
  scripts: { name: string; args: ManifestArg[] }[];
}

/**
 * What a limit of each kind takes, from the manifest: an algorithm's params (its script's @arg
 * lines that describe the limit, with the multi item field each travels in) and its per-call
 * cost; an item kind that is not an algorithm (concurrency) takes the @arg lines of its script
 * (`<kind>_acquire`, else `<kind>`) that travel as multi item fields and are not per call.
 * Kinds with nothing to describe (block: a limiter option, not a limit) are left out.
 */
export function limitKinds(m: Manifest): Record<string, { params: ManifestArg[]; cost: ManifestArg | null }> {
  const kinds: Record<string, { params: ManifestArg[]; cost: ManifestArg | null }> = {};
  const perCall = new Set(m.algorithms.flatMap((a) => a.perCall.map((p) => p.item!)));
  const itemFields = new Set(m.items.fields.map((f) => f.name));
  for (const a of m.algorithms) kinds[a.name] = { params: a.params, cost: a.perCall.find((p) => p.name === 'cost') ?? null };
  for (const kind of m.items.kinds) {
    if (kinds[kind]) continue;
    const script = m.scripts.find((s) => s.name === `${kind}_acquire`) ?? m.scripts.find((s) => s.name === kind);
    const params = (script?.args ?? []).filter((a) => itemFields.has(a.name) && !perCall.has(a.name) && a.name !== 'algo').map((a) => ({ ...a, item: a.name }));
    if (params.length > 0) kinds[kind] = { params, cost: null };
  }
  return kinds;
}

/** The Limit dataclass: name, algo, then every parameter any kind takes (by script argument name), scope, priorities. */
function limitClass(kinds: Record<string, { params: ManifestArg[] }>): string {
  const seen = new Map<string, ManifestArg>();
  for (const k of Object.values(kinds)) for (const p of k.params) if (!seen.has(p.name)) seen.set(p.name, p);
  const type = (p: ManifestArg) => (p.type === 'int' ? 'Optional[int]' : 'Optional[str]');
  // What the parameter means for each kind that takes it, kinds with the same words together.
  const doc = (name: string) => {
    const byDoc = new Map<string, string[]>();
    for (const [kind, k] of Object.entries(kinds)) {
      const p = k.params.find((x) => x.name === name);
      if (p) byDoc.set(p.doc, [...(byDoc.get(p.doc) ?? []), kind]);
    }
    return [...byDoc].map(([d, ks]) => `${ks.join(', ')}: ${d}`).join(' ');
  };
  return [...seen.values()].map((p) => `    ${field('multi', p.name)}: ${type(p)} = None\n    ${pyString(doc(p.name))}`).join('\n');
}

/**
 * The Python binding: one self-contained module over redis-py (sync and asyncio) that embeds the
 * manifest and the exact Lua bytes, so a Python service runs the very bytes the TypeScript
 * bindings run without any other file, and builds the keys the TypeScript limiter builds. What
 * the headers state (arguments, ranges, reply fields, what a limit of each algorithm takes) is
 * generated; the hand-written API over it (codegen/templates/python/*.py: limiter, reservation
 * handles, fair share) is embedded as it is.
 */
export function renderPython(rootDir: string, version: string, manifestJson: string, scripts: CompiledScript[]): string {
  const dir = join(rootDir, 'codegen/templates');
  const template = Handlebars.create().compile(readFileSync(join(dir, 'python.py.hbs'), 'utf8'), { noEscape: true });
  const kinds = limitKinds(JSON.parse(manifestJson) as Manifest);
  const fragment = (name: string) => readFileSync(join(dir, 'python', name), 'utf8').trimEnd();
  return template({
    version,
    manifest: pyText(manifestJson, '    '),
    scripts: scripts.map((s) => ({
      name: s.def.name,
      upper: s.def.name.toUpperCase(),
      source: pyText(s.def.source, '        '),
      result: pyResultClass(s.def.name),
    })),
    results: scripts.map((s) => resultClasses(s.def)).join('\n\n'),
    limitKinds: pyText(JSON.stringify(kinds, null, 1) + '\n', '    '),
    limitFields: limitClass(kinds),
    handles: fragment('handles.py'),
    failure: fragment('failure.py'),
    limiter: fragment('limiter.py'),
    fairShare: fragment('fair_share.py'),
  });
}
