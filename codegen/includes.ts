import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CodegenError } from './errors.js';

const INCLUDE = /^---\s+@include\s+"([\w/.-]+)"\s*$/;

export interface Fragment {
  /** Include name, e.g. "lib/exact". */
  name: string;
  /** Path relative to the package root, for messages. */
  file: string;
  /** Body with its include lines removed. */
  body: string;
}

/** Splits a source's include lines from its other lines, keeping line numbers for errors. */
export function scanIncludes(text: string): { includes: { name: string; line: number }[]; body: string } {
  const includes: { name: string; line: number }[] = [];
  const kept: string[] = [];
  text.split('\n').forEach((line, i) => {
    const m = INCLUDE.exec(line.trim());
    if (m) includes.push({ name: m[1]!, line: i + 1 });
    else kept.push(line);
  });
  return { includes, body: kept.join('\n') };
}

/**
 * Resolves the includes of one script: every fragment reachable from it, once each, dependencies
 * before dependents. A missing fragment or a cycle is an error naming the include chain.
 */
export function resolveIncludes(rootDir: string, scriptFile: string, scriptText: string): Fragment[] {
  const ordered: Fragment[] = [];
  const done = new Set<string>();
  const cache = new Map<string, string>();

  const visit = (from: string, text: string, stack: string[]): void => {
    for (const inc of scanIncludes(text).includes) {
      const where = `${from}:${inc.line}`;
      if (stack.includes(inc.name)) {
        throw new CodegenError(from, inc.line, `circular include: ${[...stack, inc.name].join(' -> ')}`);
      }
      if (done.has(inc.name)) continue;
      const path = join(rootDir, 'scripts-lua', `${inc.name}.lua`);
      if (!existsSync(path)) {
        throw new CodegenError(from, inc.line, `include "${inc.name}" not found (looked for ${relative(rootDir, path)}); chain: ${[...stack, inc.name].join(' -> ')} at ${where}`);
      }
      let fragmentText = cache.get(path);
      if (fragmentText === undefined) {
        fragmentText = readFileSync(path, 'utf8');
        cache.set(path, fragmentText);
      }
      const file = relative(rootDir, path);
      visit(file, fragmentText, [...stack, inc.name]);
      done.add(inc.name);
      ordered.push({ name: inc.name, file, body: scanIncludes(fragmentText).body.trim() });
    }
  };
  visit(scriptFile, scriptText, [scriptFile]);
  return ordered;
}
