import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { CodegenError } from './errors.js';
import { generate, type Output } from './generate.js';

const defaultRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

function listFiles(dir: string): string[] {
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
  for (const abs of listFiles(join(root, 'generated'))) {
    const path = relative(root, abs);
    if (!out.has(path)) stale.push(`${path} (no longer generated)`);
  }
  return stale;
}

const program = new Command()
  .name('codegen')
  .description('Compile scripts-lua/ into generated/: flattened Lua, typed bindings, manifest, Functions library')
  .option('--check', 'fail if generated/ is not what codegen would write')
  .option('--root <dir>', 'package root', defaultRoot)
  .action((opts: { check?: boolean; root: string }) => {
    let out: Output;
    try {
      out = generate(opts.root);
    } catch (err) {
      if (err instanceof CodegenError) {
        console.error(`codegen: ${err.message}`);
        process.exit(1);
      }
      throw err;
    }
    const stale = staleFiles(opts.root, out);
    if (opts.check) {
      if (stale.length > 0) {
        console.error(`codegen --check: generated/ is stale; run \`npm run codegen\`:\n  ${stale.join('\n  ')}`);
        process.exit(1);
      }
      console.log(`codegen --check: generated/ is up to date (${out.size} files)`);
      return;
    }
    for (const abs of listFiles(join(opts.root, 'generated'))) {
      if (!out.has(relative(opts.root, abs))) rmSync(abs);
    }
    for (const [path, content] of out) {
      mkdirSync(dirname(join(opts.root, path)), { recursive: true });
      writeFileSync(join(opts.root, path), content);
    }
    console.log(`codegen: wrote ${out.size} files (${stale.length} changed)`);
  });

program.parse();
