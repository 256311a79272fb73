import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { CodegenError } from './errors.js';
import { generate, listGenerated, staleFiles, type Output } from './generate.js';

const defaultRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

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
    for (const abs of listGenerated(opts.root)) {
      if (!out.has(relative(opts.root, abs))) rmSync(abs);
    }
    for (const [path, content] of out) {
      mkdirSync(dirname(join(opts.root, path)), { recursive: true });
      writeFileSync(join(opts.root, path), content);
    }
    console.log(`codegen: wrote ${out.size} files (${stale.length} changed)`);
  });

program.parse();
