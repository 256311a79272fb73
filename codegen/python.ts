import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import type { CompiledScript } from './generate.js';

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

/**
 * The Python binding: one self-contained module over redis-py (sync and asyncio) that embeds the
 * manifest and the exact Lua bytes, so a Python service runs the very bytes the TypeScript
 * bindings run without any other file, and builds the keys the TypeScript limiter builds.
 */
export function renderPython(rootDir: string, version: string, manifestJson: string, scripts: CompiledScript[]): string {
  const template = Handlebars.create().compile(readFileSync(join(rootDir, 'codegen/templates/python.py.hbs'), 'utf8'), { noEscape: true });
  return template({
    version,
    manifest: pyText(manifestJson, '    '),
    scripts: scripts.map((s) => ({ name: s.def.name, upper: s.def.name.toUpperCase(), source: pyText(s.def.source, '        ') })),
  });
}
