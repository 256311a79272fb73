import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { allScripts } from '../generated/index.js';
import { createRateLimiter } from '../src/index.js';
import { freePort, startLocalRedis, type LocalRedis } from '../devtools/local-redis.js';
import { repoRoot } from './support/temp-scripts.js';

/** The CLI as a user runs it (a real process), against a redis-server of its own. */
let own: LocalRedis;
let redis: Redis;
let out: string;
beforeAll(async () => {
  own = await startLocalRedis();
  redis = new Redis(own.url);
  out = mkdtempSync(join(tmpdir(), 'redlimit-cli-'));
});
afterAll(async () => {
  redis.disconnect();
  await own.stop();
  rmSync(out, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), ...args], { cwd: repoRoot, timeout: 60_000, env: { ...process.env, REDIS_URL: own.url } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}
const json = async (...args: string[]) => {
  const r = await cli(...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

describe('npx redlimit', () => {
  it('scripts and show: every script with its SHA1, and one contract; clear errors and exit codes', async () => {
    const scripts = await json('scripts');
    expect(scripts).toEqual(allScripts.map((d) => ({ name: d.name, version: d.version, sha1: d.sha1, readOnly: d.readOnly })));
    const gcra = await json('show', 'gcra');
    expect(gcra).toMatchObject({ name: 'gcra', keys: [{ name: 'state' }], args: expect.arrayContaining([expect.objectContaining({ name: 'limit', min: 1, max: 1_000_000_000 })]) });
    const unknown = await cli('show', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown script "nope"/);
    const bad = await cli('peek', 'a', '--limit', 'ten');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--limit must be a whole number/);
    expect((await cli('--help')).stdout).toMatch(/simulate/);
    expect((await cli('simulate', '--help')).stdout).toMatch(/--traffic/);
  });

  it('peek, inspect, top and reset read and change real state', async () => {
    const rl = createRateLimiter({ redis, limits: { name: 'default', algo: 'gcra', limit: 10, periodMs: 60_000 } });
    for (const [id, n] of [['ann', 9], ['bob', 2], ['cy', 5]] as const) for (let i = 0; i < n; i++) await rl.limit(id);
    await rl.close();
    const limit = ['--limit', '10', '--period', '60000'];
    expect(await json('peek', 'ann', ...limit)).toMatchObject({ subject: 'ann', remaining: 1, limit: 10 });
    const inspected = await json('inspect', 'rl:{bob}:default', ...limit);
    expect(inspected).toMatchObject({ type: 'string', decoded: { kind: 'gcra' }, exact: { remaining: 8 } });
    expect(inspected.pttlMs).toBeGreaterThan(0);
    expect((await json('inspect', 'rl:{bob}:default')).exact).toBeNull();
    const top = await json('top', ...limit, '--count', '2');
    expect(top.top.map((t: { subject: string }) => t.subject)).toEqual(['ann', 'cy']);
    expect(await json('reset', 'ann', ...limit)).toMatchObject({ reset: true });
    expect(await json('peek', 'ann', ...limit)).toMatchObject({ remaining: 10 });
  });

  it('load puts every script (or the Functions library) on the server', async () => {
    await redis.script('FLUSH');
    await json('load');
    expect(await redis.script('EXISTS', ...allScripts.map((d) => d.sha1))).toEqual(allScripts.map(() => 1));
    await json('load', '--functions');
    expect(await redis.fcall('redlimit_library', 0)).toMatch(/^[0-9a-f]{40}$/);
  });

  it('export writes the scripts for other tooling', async () => {
    for (const format of ['lua', 'functions', 'manifest', 'python']) await json('export', '--format', format, '--out', join(out, format));
    expect(readFileSync(join(out, 'lua', 'gcra.lua'), 'utf8')).toBe(allScripts.find((d) => d.name === 'gcra')!.source);
    for (const f of ['functions/redlimit.lua', 'manifest/manifest.json', 'python/redlimit_scripts.py']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  it('simulate draws allowed vs denied; fixed windows admit twice the limit across a boundary, a sliding log never', async () => {
    const run = (algo: string) => json('simulate', '--algo', algo, '--limit', '20', '--period', '10000', '--traffic', 'burst', '--out', join(out, `${algo}.svg`));
    const fixed = await run('fixed_window');
    const log = await run('sliding_log');
    expect(fixed.allowed + fixed.denied).toBe(log.allowed + log.denied);
    // The bursts straddle a window boundary: the most admitted in any two adjacent 1 s bars.
    const peak = (s: { buckets: { allowed: number }[] }) => Math.max(...s.buckets.slice(1).map((b, i) => b.allowed + s.buckets[i]!.allowed));
    expect(peak(fixed)).toBeGreaterThan(20);
    expect(peak(log)).toBeLessThanOrEqual(20);
    expect(readFileSync(join(out, 'fixed_window.svg'), 'utf8')).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });

  it('an unreachable Redis is exit code 3 with a clear message', async () => {
    const r = await cli('peek', 'a', '--limit', '1', '--period', '1000', '--url', `redis://127.0.0.1:${await freePort()}`);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot reach Redis/);
  });

  it('bench reports decisions per second', async () => {
    const r = await json('bench', '--decisions', '2000', '--in-flight', '32');
    expect(r['coalesced']).toBeGreaterThan(0);
    expect(r['one call per decision']).toBeGreaterThan(0);
  });
});
