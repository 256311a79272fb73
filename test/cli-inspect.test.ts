import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../generated/index.js';
import { ioredis, redisUrl, uniquePrefix } from './support/redis.js';
import { repoRoot } from './support/temp-scripts.js';

/** `redlimit inspect` decodes every stored form through src/twin/state.ts (a real process, real scripts). */
let redis: Redis;
let prefix: string;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('cli-inspect');
});
afterAll(() => redis.quit());

function inspect(key: string, ...args: string[]): Promise<{ code: number; out: Record<string, unknown>; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'inspect', key, '--url', redisUrl(), '--json', ...args], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout ? JSON.parse(stdout) : {}, stderr }),
    );
  });
}

// Each CLI call is a process that compiles TypeScript on start: seconds each on a loaded machine.
describe('redlimit inspect', { timeout: 300_000 }, () => {
  it("decodes what the scripts write, v2's token bucket hash, sorted sets, and shows garbage as unknown with the reason", async () => {
    const now = 1_700_000_000_000;
    const keys = { tb: `${prefix}tb`, hash: `${prefix}hash`, fw: `${prefix}fw`, log: `${prefix}log`, bad: `${prefix}bad` };
    await b.tokenBucket(redis, { key: keys.tb, limit: 10, periodMs: 86_400_000, cost: 3, nowMs: now });
    await redis.hset(keys.hash, 'tokens', '4', 'frac', '12', 'ts_ms', String(now));
    await b.fixedWindow(redis, { key: keys.fw, limit: 10, periodMs: 3_600_001, cost: 2 }); // the server clock: the packed integer
    await b.slidingLog(redis, { key: keys.log, limit: 10, periodMs: 86_400_000, cost: 2, nowMs: now });
    await redis.set(keys.bad, 'not a state', 'PX', 600_000);
    const [tb, hash, fw, log, bad] = await Promise.all([
      inspect(keys.tb),
      inspect(keys.hash),
      inspect(keys.fw, '--algo', 'fixed_window'),
      inspect(keys.log, '--algo', 'sliding_log'),
      inspect(keys.bad),
    ]);
    for (const r of [tb, hash, fw, log, bad]) expect(r.code, r.stderr).toBe(0);
    expect(tb.out.decoded).toEqual({ kind: 'token_bucket', form: 'packed', tokens: 7, frac: 0, countedAt: new Date(now).toISOString() });
    expect(hash.out).toMatchObject({ type: 'hash', decoded: { kind: 'token_bucket', form: 'hash', tokens: 4, frac: '12/period_ms' } });
    expect(fw.out.decoded).toMatchObject({ kind: 'fixed_window', form: 'packed', count: 2 });
    expect(log.out.decoded).toEqual({ kind: 'sliding_log', entries: 1, oldest: new Date(now).toISOString(), units: 2 });
    expect(bad.out.decoded).toMatchObject({ kind: 'unknown', value: 'not a state', error: expect.stringMatching(/redlimit gcra: "not a state" is not gcra state/) });
  });

  it("reads a token bucket's compact form (a fraction left, the server clock) against the server's own clock", async () => {
    const key = `${prefix}tbc`;
    await b.tokenBucket(redis, { key, limit: 7, periodMs: 3_600_000, cost: 3 });
    await new Promise((r) => setTimeout(r, 5));
    await b.tokenBucket(redis, { key, limit: 7, periodMs: 3_600_000, cost: 3 }); // refilled a fraction meanwhile
    const raw = (await redis.get(key))!;
    expect(raw).toMatch(/^-\d{19}$/);
    expect(await redis.object('ENCODING', key)).toBe('int');
    const [sec, usec] = await redis.time();
    const serverNow = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const r = await inspect(key, '--algo', 'token_bucket');
    expect(r.code, r.stderr).toBe(0);
    const d = r.out.decoded as { kind: string; form: string; tokens: number; countedAt: string };
    expect(d).toMatchObject({ kind: 'token_bucket', form: 'compact', tokens: 1 });
    // Counted at the second call: a few ms before this test read the server's clock.
    const counted = Date.parse(d.countedAt);
    expect(counted).toBeLessThanOrEqual(serverNow);
    expect(counted).toBeGreaterThan(serverNow - 60_000);
  });
});

describe("redlimit inspect, layout 'subject'", { timeout: 300_000 }, () => {
  it("decodes a subject's key limit by limit, named as the key names them", async () => {
    const key = `${prefix}:{s1}:m+h+d`;
    const now = 1_700_000_000_000;
    await b.tiers(redis, { count: 3, specs: 'gcra,10,60000,10,,;sliding_window,100,3600000,,,;quota,1000,,,0,day', nowMs: now, decisions: [{ key, costs: '1,0,5' }] });
    const { code, out } = await inspect(key);
    expect(code).toBe(0);
    const decoded = out.decoded as { kind: string; limits: Record<string, { kind: string; count?: number }> };
    expect(decoded.kind).toBe('subject');
    expect(Object.keys(decoded.limits)).toEqual(['m', 'h', 'd']);
    expect(decoded.limits.m!.kind).toBe('gcra');
    expect(decoded.limits.h!.kind).toBe('absent'); // cost 0: no state
    expect(decoded.limits.d).toMatchObject({ count: 5 });
  });
});
