import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './support/temp-scripts.js';
import { redisUrl } from './support/redis.js';

/** Every ```ts block of the README, type-checked as its own module; the quick start is run. */
const blocks = [...readFileSync(join(repoRoot, 'README.md'), 'utf8').matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
const dir = join(repoRoot, '.tmp', `readme-${process.pid}`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the README', () => {
  it('has TypeScript blocks, and every one type-checks against the package', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    mkdirSync(dir, { recursive: true });
    const names = blocks.map((code, i) => {
      // `redlimit` is this repository's source, as a user's import of the package resolves.
      const name = `block-${i + 1}.ts`;
      writeFileSync(join(dir, name), code.replaceAll("from 'redlimit'", `from '${join(repoRoot, 'src', 'index.js')}'`));
      return name;
    });
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: names }),
    );
    let out = '';
    try {
      execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
    } catch (err) {
      out = (err as { stdout: string }).stdout;
    }
    expect(out).toBe('');
  }, 120_000);

  it('the quick start runs as written against a real Redis and exits', () => {
    const quickStart = join(dir, 'block-1.ts');
    const out = execFileSync(process.execPath, ['--import', 'tsx', quickStart], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000, env: { ...process.env, REDIS_URL: redisUrl() } });
    expect(out).toMatch(/^allowed, \d+ of \d+ left/);
  }, 60_000);
});
