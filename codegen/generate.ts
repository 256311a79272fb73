import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ArgSpec, ScriptDef } from '../src/runtime/script-def.js';
import { algorithmTable, renderAlgorithms, type AlgorithmTable } from './algorithms.js';
import { renderBinding } from './bindings.js';
import { parseHeader } from './header.js';
import { KEY_LAYOUT } from './key-layout.js';
import { scanIncludes } from './includes.js';
import { assembleLua } from './lua.js';
import { libraryHash, renderFunctionsLibrary } from './functions.js';
import { renderPython } from './python.js';
import { renderBarrel, verifyBinding } from './surface.js';

export interface CompiledScript {
  def: ScriptDef;
  /** scripts-lua/<name>.lua */
  sourceFile: string;
  /** generated/lua/<name>.lua */
  luaFile: string;
  /** The script body as written, without header and includes (for the Functions library). */
  body: string;
}

/** Everything codegen writes, as package-relative path → content. */
export type Output = Map<string, string>;

export function sha1(text: string): string {
  return createHash('sha1').update(text, 'utf8').digest('hex');
}

/** Compiles every top-level script in scripts-lua/ (fragments live in subfolders). */
export function compileScripts(rootDir: string): CompiledScript[] {
  const dir = join(rootDir, 'scripts-lua');
  const files = readdirSync(dir).filter((f) => f.endsWith('.lua')).sort();
  return files.map((f) => {
    const file = `scripts-lua/${f}`;
    const text = readFileSync(join(dir, f), 'utf8');
    const header = parseHeader(file, text, f.slice(0, -'.lua'.length));
    const source = assembleLua(rootDir, file, text, header);
    const def: ScriptDef = {
      name: header.name,
      version: header.version,
      summary: header.summary,
      sha1: sha1(source),
      source,
      readOnly: header.readOnly,
      ...(header.flags.length > 0 ? { flags: header.flags } : {}),
      keys: header.keys,
      args: header.args,
      returns: header.returns,
      checks: header.checks,
      ...(header.each ? { each: header.each } : {}),
    };
    const lines = text.split('\n');
    const bodyStart = lines.findIndex((l) => !l.startsWith('---') || /^---\s+@(include|args)\b/.test(l));
    const body = scanIncludes(lines.slice(bodyStart).join('\n')).body;
    return { def, sourceFile: file, luaFile: `generated/lua/${header.name}.lua`, body };
  });
}

function manifestArg(a: ArgSpec) {
  return {
    name: a.name,
    type: a.type,
    required: a.required,
    default: a.default ?? null,
    ...(a.type === 'int' ? { min: a.min, max: a.max } : a.type === 'enum' ? { values: a.values } : { maxLength: a.maxLength }),
    doc: a.doc,
  };
}

export function manifest(pkg: { name: string; version: string }, scripts: CompiledScript[], table: AlgorithmTable): unknown {
  return {
    name: pkg.name,
    version: pkg.version,
    keyLayout: KEY_LAYOUT,
    algorithms: table.algorithms.map((a) => ({
      ...a,
      params: a.params.map((p) => ({ ...manifestArg(p), item: p.item })),
    })),
    items: { kinds: table.itemKinds, fields: table.itemFields.map(({ name, default: d, values }) => ({ name, default: d ?? null, ...(values ? { values } : {}) })) },
    decision: { fields: table.decisionFields, replies: table.replies },
    scripts: scripts.map(({ def, luaFile }) => ({
      name: def.name,
      version: def.version,
      sha1: def.sha1,
      file: luaFile,
      summary: def.summary,
      readOnly: def.readOnly,
      keys: def.keys.map(({ name, doc, variadic, repeats }) => ({ name, doc, variadic: variadic ?? false, ...(repeats ? { repeats } : {}) })),
      args: def.args.map(manifestArg),
      returns: def.returns.map(({ name, type, doc }) => ({ name, type, doc })),
      checks: def.checks.map(({ name, args, doc }) => ({ name, args, doc })),
      ...(def.each ? { each: { name: def.each.name, ...(def.each.per ? { per: def.each.per } : {}), args: def.each.args.map(manifestArg), returns: def.each.returns.map(({ name, type, doc }) => ({ name, type, doc })) } } : {}),
      // Redis script flags besides no-writes (readOnly), as its shebang declares them.
      ...(def.flags ? { flags: def.flags } : {}),
    })),
  };
}

/** Runs the whole pipeline in memory. */
export function generate(rootDir: string): Output {
  const pkg = JSON.parse(readFileSync(join(rootDir, 'package.json'), 'utf8')) as { name: string; version: string };
  const scripts = compileScripts(rootDir);
  const out: Output = new Map();
  for (const s of scripts) {
    out.set(s.luaFile, s.def.source);
    const tsPath = `generated/ts/${s.def.name}.ts`;
    out.set(tsPath, verifyBinding(s.def, tsPath, renderBinding(rootDir, s.def, s.sourceFile)));
  }
  const table = algorithmTable(scripts.map((s) => s.def));
  out.set('generated/algorithms.ts', renderAlgorithms(table));
  out.set('generated/index.ts', renderBarrel(scripts.map((s) => s.def), table));
  const manifestJson = JSON.stringify(manifest(pkg, scripts, table), null, 2) + '\n';
  out.set('generated/manifest.json', manifestJson);
  const library = renderFunctionsLibrary(rootDir, pkg.version, scripts);
  out.set('generated/functions/redlimit.lua', library);
  out.set(
    'generated/ts/functions-library.ts',
    `// Generated by \`npm run codegen\` (generated/functions/redlimit.lua). Do not edit.\n\n/** The Redis Functions library: every script as redlimit_<name>_v<version>. */\nexport const functionsLibrary = ${JSON.stringify(library)};\n\n/** What FCALL_RO redlimit_library answers on a server that holds exactly this library. */\nexport const functionsLibraryHash = ${JSON.stringify(libraryHash(library))};\n`,
  );
  out.set('generated/python/redlimit_scripts.py', renderPython(rootDir, pkg.version, manifestJson, scripts));
  return out;
}

/** Absolute paths of every file now under generated/. */
export function listGenerated(root: string): string[] {
  const dir = join(root, 'generated');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** Paths that differ between `out` and generated/ on disk (changed, missing or stale). */
export function staleFiles(root: string, out: Output): string[] {
  const stale: string[] = [];
  for (const [path, content] of out) {
    const abs = join(root, path);
    if (!existsSync(abs) || readFileSync(abs, 'utf8') !== content) stale.push(path);
  }
  for (const abs of listGenerated(root)) {
    const path = relative(root, abs);
    if (!out.has(path)) stale.push(`${path} (no longer generated)`);
  }
  return stale;
}

