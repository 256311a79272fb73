import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/temp-scripts.js';
import { allScripts } from '../generated/index.js';
import { redisUrl } from './support/redis.js';

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

  it('the built ESM runs in plain Node (no tsx): a limiter and a binding against Redis', () => {
    // npm pack above ran the build (prepack); build here if this test runs alone.
    if (!existsSync(`${repoRoot}/dist/src/index.js`)) execFileSync('npm', ['run', 'build'], { cwd: repoRoot, timeout: 120_000 });
    const code = `
      const { createRateLimiter, gcra, TwinClient } = await import('${repoRoot}/dist/src/index.js');
      const { Redis } = await import('ioredis');
      const redis = new Redis(process.argv[1]);
      const rl = createRateLimiter({ redis, prefix: 'pkg' + process.pid, limits: { name: 'r', algo: 'gcra', limit: 1, periodMs: 60000 } });
      const a = await rl.limit('x'); const b = await rl.limit('x');
      const t = await gcra(new TwinClient(), { key: 'k', limit: 1, periodMs: 1000 });
      console.log(JSON.stringify([a.allowed, a.source, b.allowed, t.allowed]));
      await rl.close(); await redis.quit();`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', code, redisUrl()], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out)).toEqual([true, 'redis', false, true]);
  }, 60_000);
});
