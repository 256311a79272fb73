import { execFile, execFileSync } from 'node:child_process';
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

// Each CLI call is a process that compiles TypeScript on start: seconds each on a loaded machine.
describe('npx redlimit', { timeout: 300_000 }, () => {
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
    // A day: nothing refills or expires while the test runs, however slow the machine.
    const rl = createRateLimiter({ redis, limits: { name: 'default', algo: 'gcra', limit: 10, periodMs: 86_400_000 } });
    for (const [id, n] of [['ann', 9], ['bob', 2], ['cy', 5]] as const) for (let i = 0; i < n; i++) await rl.limit(id);
    await rl.close();
    const limit = ['--limit', '10', '--period', '86400000'];
    expect(await json('peek', 'ann', ...limit)).toMatchObject({ subject: 'ann', remaining: 1, limit: 10 });
    const inspected = await json('inspect', 'rl:{bob}:default', ...limit);
    expect(inspected).toMatchObject({ type: 'string', decoded: { kind: 'gcra' }, exact: { remaining: 8 } });
    expect(inspected.pttlMs).toBeGreaterThan(0);
    expect((await json('inspect', 'rl:{bob}:default')).exact).toBeNull();
    const top = await json('top', ...limit, '--count', '2');
    expect(top.top.map((t: { subject: string }) => t.subject)).toEqual(['ann', 'cy']);
    // reset only deletes state: no limit options needed.
    expect(await json('reset', 'ann')).toMatchObject({ reset: true, keys: ['rl:{ann}:default'], deleted: 1 });
    expect(await json('peek', 'ann', ...limit)).toMatchObject({ remaining: 10 });
  });

  it("reset --subject-limits resets some or all limits of a subject's one key (layout 'subject'), and refuses what that layout has not", async () => {
    const prefix = 'subj';
    const day = 86_400_000; // nothing refills while the test runs, however slow the machine
    const limits = [
      { name: 'm', algo: 'gcra', limit: 5, periodMs: day },
      { name: 'h', algo: 'sliding_window', limit: 8, periodMs: day },
      { name: 'd', algo: 'quota', limit: 20, unit: 'day' },
    ] as const;
    const rl = createRateLimiter({ redis, prefix, layout: 'subject', limits: [...limits] });
    const remaining = async (id: string | { id: string; hashTag: string }) => (await rl.peek(id)).limits.map((l) => l.remaining);
    for (let i = 0; i < 3; i++) await rl.limit('ann');
    for (let i = 0; i < 2; i++) await rl.limit({ id: 'bob', hashTag: 'acme' });
    expect(await remaining('ann')).toEqual([2, 5, 17]);
    const sl = ['--prefix', prefix, '--subject-limits', 'm,h,d'];
    // One limit: the others keep their state.
    expect(await json('reset', 'ann', ...sl, '--name', 'h')).toMatchObject({ keys: [`${prefix}:{ann}:m+h+d`], limits: ['h'], held: 1 });
    expect(await remaining('ann')).toEqual([2, 8, 17]);
    expect(await json('reset', 'ann', ...sl, '--name', 'm', '--name', 'd')).toMatchObject({ limits: ['m', 'd'], held: 2 });
    expect(await remaining('ann')).toEqual([5, 8, 20]);
    expect(await redis.exists(`${prefix}:{ann}:m+h+d`)).toBe(0); // no state left: no key
    // Every limit of a tagged subject: its key goes.
    expect(await remaining({ id: 'bob', hashTag: 'acme' })).toEqual([3, 6, 18]);
    expect(await json('reset', 'bob', ...sl, '--hash-tag', 'acme')).toMatchObject({ keys: [`${prefix}:{acme}:m+h+d:bob`], limits: ['m', 'h', 'd'], held: 3 });
    expect(await remaining({ id: 'bob', hashTag: 'acme' })).toEqual([5, 8, 20]);
    await rl.close();
    for (const bad of [
      ['reset', 'ann', ...sl, '--name', 'w'], // not one of the key's limits
      ['reset', 'ann', '--prefix', prefix, '--subject-limits', 'm,m'],
      ['reset', 'ann', '--prefix', prefix, '--subject-limits', 'm,h:x'],
      ['reset', 'ann', ...sl, '--block'],
    ]) {
      const r = await cli(...bad, '--url', `redis://127.0.0.1:${await freePort()}`);
      expect(r.code, `${bad.join(' ')}: ${r.stderr}`).toBe(2);
    }
  });

  it('inspect on an absent key reports it (exit 0): no state means full', async () => {
    const absent = await json('inspect', 'rl:{nobody}:default', '--limit', '10', '--period', '60000');
    expect(absent).toMatchObject({ key: 'rl:{nobody}:default', type: 'none', absent: true, decoded: { kind: 'absent' }, exact: { remaining: 10, resetAfterMs: 0 } });
    const text = await cli('inspect', 'rl:{nobody}:default');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/absent/);
    expect((await json('inspect', 'rl:{bob}:default')).absent).toBe(false);
  });

  it('peek, top and reset address hash-tagged and scoped subjects', async () => {
    const prefix = 'tagged';
    const day = 86_400_000; // nothing refills while the test runs, however slow the machine
    const rl = createRateLimiter({
      redis,
      prefix,
      limits: [
        { name: 'user', algo: 'gcra', limit: 10, periodMs: day },
        { name: 'org', algo: 'quota', limit: 100, unit: 'day', scope: 'org' },
      ],
    });
    const who = (id: string, org: string) => ({ id, hashTag: org, scopes: { org } });
    for (let i = 0; i < 7; i++) await rl.limit(who('ann', 'acme'));
    for (let i = 0; i < 2; i++) await rl.limit(who('bob', 'acme'));
    for (let i = 0; i < 4; i++) await rl.limit(who('cy', 'initech'));
    await rl.close();
    const user = ['--prefix', prefix, '--name', 'user', '--limit', '10', '--period', String(day)];
    const org = ['--prefix', prefix, '--name', 'org', '--algo', 'quota', '--limit', '100', '--unit', 'day', '--scoped-by', 'org'];

    expect(await json('peek', 'ann', ...user, '--hash-tag', 'acme')).toMatchObject({ subject: { id: 'ann', hashTag: 'acme' }, remaining: 3 });
    expect(await json('peek', 'ann', ...org, '--hash-tag', 'acme', '--scope', 'org=acme')).toMatchObject({ remaining: 91 });
    expect(await json('peek', 'zed', ...org, '--hash-tag', 'initech', '--scope', 'org=initech')).toMatchObject({ remaining: 96 });

    const users = await json('top', ...user);
    expect(users.top.map((t: { subject: string; hashTag: string; remaining: number }) => [t.subject, t.hashTag, t.remaining])).toEqual([
      ['ann', 'acme', 3],
      ['cy', 'initech', 6],
      ['bob', 'acme', 8],
    ]);
    expect((await json('top', ...user, '--hash-tag', 'acme')).top.map((t: { subject: string }) => t.subject)).toEqual(['ann', 'bob']);
    const orgs = await json('top', ...org);
    expect(orgs.top.map((t: { subject: string; scope: object; remaining: number }) => [t.subject, t.scope, t.remaining])).toEqual([
      ['org=acme', { org: 'acme' }, 91],
      ['org=initech', { org: 'initech' }, 96],
    ]);

    // Reset one user under the org's tag: the org's shared budget is untouched...
    expect(await json('reset', 'ann', '--prefix', prefix, '--name', 'user', '--hash-tag', 'acme')).toMatchObject({ keys: [`${prefix}:{acme}:user:ann`], deleted: 1 });
    expect(await json('peek', 'ann', ...user, '--hash-tag', 'acme')).toMatchObject({ remaining: 10 });
    expect(await json('peek', 'ann', ...org, '--hash-tag', 'acme', '--scope', 'org=acme')).toMatchObject({ remaining: 91 });
    // ...unless it is named.
    expect(await json('reset', 'ann', '--prefix', prefix, '--name', 'org', '--hash-tag', 'acme', '--scope', 'org=acme', '--scoped-by', 'org')).toMatchObject({ keys: [`${prefix}:{acme}:org:acme`], deleted: 1 });
    expect(await json('peek', 'bob', ...org, '--hash-tag', 'acme', '--scope', 'org=acme')).toMatchObject({ remaining: 100 });

    // Bad subjects and options are bad input (2), never a connection attempt.
    for (const bad of [
      ['peek', 'a{b', ...user],
      ['reset', 'ann', '--hash-tag', 'ac}me'],
      ['reset', 'ann', '--name', 'no:colons'],
      ['peek', 'ann', ...user, '--scope', 'org'],
      ['peek', 'ann', ...org, '--hash-tag', 'acme'], // scoped by org, but no --scope org=...
    ]) {
      const r = await cli(...bad, '--url', `redis://127.0.0.1:${await freePort()}`);
      expect(r.code, `${bad.join(' ')}: ${r.stderr}`).toBe(2);
    }
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
    // The exported Python module loads on its own, from wherever it was written.
    const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
    const loaded = execFileSync(python, ['-c', 'import redlimit_scripts as rl; print(len(rl.SCRIPTS), rl.limit_key("rpm", "ann"))'], { cwd: join(out, 'python'), encoding: 'utf8', timeout: 30_000 });
    expect(loaded.trim()).toBe(`${allScripts.length} rl:{ann}:rpm`);
  });

  it('simulate draws allowed vs denied; fixed windows admit more than the limit across a boundary, a sliding log never', async () => {
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
