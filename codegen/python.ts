import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import type { CompiledScript } from './generate.js';

/**
 * The Python binding: one module over redis-py that reads the manifest and the generated Lua at
 * import time, so Python services run the very bytes the TypeScript bindings run.
 */
export function renderPython(rootDir: string, version: string, scripts: CompiledScript[]): string {
  const template = Handlebars.create().compile(readFileSync(join(rootDir, 'codegen/templates/python.py.hbs'), 'utf8'), { noEscape: true });
  return template({ version, scripts: scripts.map((s) => ({ name: s.def.name, upper: s.def.name.toUpperCase() })) });
}
