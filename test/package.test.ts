import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './support/temp-scripts.js';
import { allScripts } from '../generated/index.js';
import { redisUrl } from './support/redis.js';

/**
 * The package as a user gets it: `npm pack`, unpacked into a fresh project's node_modules, then
 * used from CommonJS, ESM and TypeScript under node16, nodenext and bundler resolution.
 */
let project: string;
let files: string[];
beforeAll(() => {
  const out = execFileSync('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', tmpdir()], { cwd: repoRoot, encoding: 'utf8', timeout: 420_000 });
  const [pack] = JSON.parse(out.slice(out.indexOf('['))) as [{ filename: string; files: { path: string }[] }];
  files = pack.files.map((f) => f.path);
  project = mkdtempSync(join(tmpdir(), 'redlimit-user-'));
  const pkg = join(project, 'node_modules', 'redlimit');
  mkdirSync(pkg, { recursive: true });
  execFileSync('tar', ['xzf', join(tmpdir(), pack.filename), '-C', pkg, '--strip-components=1']);
  rmSync(join(tmpdir(), pack.filename));
  // The user's own dependencies: a Redis client and, for TypeScript, Node's types.
  for (const dep of ['ioredis', 'prom-client', 'commander', '@types']) symlinkSync(join(repoRoot, 'node_modules', dep), join(project, 'node_modules', dep));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user', private: true }));
}, 480_000);
afterAll(() => project && rmSync(project, { recursive: true, force: true }));

const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: project, encoding: 'utf8', timeout: 60_000 });

describe('the npm package', () => {
  it('ships exactly what it needs: both builds with types, the Lua, the manifest, the Functions library, the Python binding, the dashboard', () => {
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'generated/manifest.json', 'generated/functions/redlimit.lua', 'generated/python/redlimit_scripts.py', 'dashboards/redlimit-grafana.json']));
    for (const build of ['esm', 'cjs']) {
      for (const f of ['src/index', 'src/http/index', 'src/metrics/prometheus', 'generated/index']) {
        expect(files).toContain(`dist/${build}/${f}.js`);
        expect(files).toContain(`dist/${build}/${f}.d.ts`);
      }
    }
    expect(files).toContain('dist/cjs/package.json');
    for (const def of allScripts) {
      expect(files).toContain(`scripts-lua/${def.name}.lua`);
      expect(files).toContain(`generated/lua/${def.name}.lua`);
    }
    const unwanted = files.filter((f) => /^(test|codegen|bench|demo|devtools|examples|node_modules|src|generated\/ts)\//.test(f) || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')));
    expect(unwanted).toEqual([]);
  });

  it('works from CommonJS (require) against Redis, with every subpath the README names', () => {
    const code = `
      const { createRateLimiter, gcra, TwinClient } = require('redlimit');
      const { expressRateLimit } = require('redlimit/http');
      const { prometheusMetrics } = require('redlimit/prometheus');
      const bindings = require('redlimit/bindings');
      const manifest = require('redlimit/manifest.json');
      const { Redis } = require('ioredis');
      const paths = ['redlimit/functions.lua', 'redlimit/python/redlimit_scripts.py', 'redlimit/lua/gcra.lua', 'redlimit/scripts-lua/gcra.lua', 'redlimit/dashboards/redlimit-grafana.json'].map((p) => require('fs').existsSync(require.resolve(p)));
      (async () => {
        const redis = new Redis(process.argv[1]);
        const rl = createRateLimiter({ redis, prefix: 'cjs' + process.pid, limits: { name: 'r', algo: 'gcra', limit: 1, periodMs: 60000 } });
        const a = await rl.limit('x'); const b = await rl.limit('x');
        const t = await gcra(new TwinClient(), { key: 'k', limit: 1, periodMs: 1000 });
        console.log(JSON.stringify([a.source, a.allowed, b.allowed, t.allowed, typeof expressRateLimit, typeof prometheusMetrics, typeof bindings.multi, manifest.scripts.length > 20, ...paths]));
        await rl.close(); redis.disconnect();
      })();`;
    expect(JSON.parse(node(['-e', code, redisUrl()]))).toEqual(['redis', true, false, true, 'function', 'function', 'function', true, true, true, true, true, true]);
  });

  it('has a working bin: npx redlimit', () => {
    const pkg = JSON.parse(node(['-e', "process.stdout.write(require('fs').readFileSync('node_modules/redlimit/package.json', 'utf8'))"])) as { bin: { redlimit: string } };
    const out = node([join(project, 'node_modules', 'redlimit', pkg.bin.redlimit), 'scripts', '--json']);
    expect((JSON.parse(out) as { name: string }[]).map((s) => s.name)).toEqual(allScripts.map((d) => d.name));
  });

  it('works from ESM (import) against Redis', () => {
    const code = `
      import { createRateLimiter } from 'redlimit';
      import { fetchRateLimit } from 'redlimit/http';
      import { Redis } from 'ioredis';
      const redis = new Redis(process.argv[1]);
      const rl = createRateLimiter({ redis, prefix: 'esm' + process.pid, timeoutMs: 10000, limits: { name: 'r', algo: 'sliding_log', limit: 1, periodMs: 60000 } });
      const a = await rl.limit('x'); const b = await rl.limit('x');
      console.log(JSON.stringify([a.source, a.allowed, b.allowed, typeof fetchRateLimit]));
      await rl.close(); redis.disconnect();`;
    expect(JSON.parse(node(['--input-type=module', '-e', code, redisUrl()]))).toEqual(['redis', true, false, 'function']);
  });

  it.each([
    ['node16', 'Node16', 'Node16'],
    ['nodenext', 'NodeNext', 'NodeNext'],
    ['bundler', 'ESNext', 'Bundler'],
  ])('type-checks from .ts, .mts and .cts under %s resolution', (name, module, resolution) => {
    const dir = join(project, `tsc-${name}`);
    mkdirSync(dir, { recursive: true });
    const use = `const limiter = createRateLimiter({ limits: { name: 'r', algo: 'gcra', limit: 1, periodMs: 1000 } });\nexport const p: Promise<Decision> = limiter.limit('x');\nexport const m = expressRateLimit({ limits: [] , rules: [] });\n`;
    writeFileSync(join(dir, 'a.mts'), `import { createRateLimiter, type Decision } from 'redlimit';\nimport { expressRateLimit } from 'redlimit/http';\n${use}`);
    writeFileSync(join(dir, 'b.cts'), `import { createRateLimiter, type Decision } from 'redlimit';\nimport { expressRateLimit } from 'redlimit/http';\n${use}`);
    writeFileSync(join(dir, 'c.ts'), `import { createRateLimiter, type Decision } from 'redlimit';\nimport { expressRateLimit } from 'redlimit/http';\n${use}`);
    const files = resolution === 'Bundler' ? ['a.mts', 'c.ts'] : ['a.mts', 'b.cts', 'c.ts'];
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const out = (() => {
      try {
        return execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', module, '--moduleResolution', resolution, '--target', 'ES2022', '--types', 'node', ...files], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      } catch (err) {
        return (err as { stdout: string }).stdout;
      }
    })();
    expect(out).toBe('');
  }, 120_000);
});
