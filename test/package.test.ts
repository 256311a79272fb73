import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/temp-scripts.js';
import { allScripts } from '../generated/index.js';

describe('the npm package', () => {
  it('ships the Lua sources, the generated scripts, the manifest and the built ESM with types', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--loglevel=error'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
    const [pack] = JSON.parse(out.slice(out.indexOf('['))) as [{ files: { path: string }[] }];
    const files = pack.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'generated/manifest.json', 'generated/functions/redlimit.lua']));
    for (const def of allScripts) {
      expect(files).toContain(`scripts-lua/${def.name}.lua`);
      expect(files).toContain(`generated/lua/${def.name}.lua`);
      expect(files).toContain(`dist/generated/ts/${def.name}.js`);
      expect(files).toContain(`dist/generated/ts/${def.name}.d.ts`);
    }
    expect(files).toEqual(expect.arrayContaining(['dist/src/index.js', 'dist/src/index.d.ts', 'dist/generated/index.js', 'scripts-lua/lib/exact.lua']));
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('codegen/') || f.startsWith('node_modules/'))).toEqual([]);
  }, 180_000);
});
