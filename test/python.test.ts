import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { gcra, multi } from '../generated/index.js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startLocalRedis, type LocalRedis } from '../devtools/local-redis.js';
import { uniquePrefix } from './support/redis.js';
import { repoRoot } from './support/temp-scripts.js';

const run = promisify(execFile);
// Debian's python3 with python3-redis (.ci/run installs it); a pyenv python3 would not see it.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

// The Python side flushes the script cache to take the NOSCRIPT path: this file owns its server.
let server: LocalRedis;
beforeAll(async () => {
  server = await startLocalRedis();
});
afterAll(() => server.stop());

describe('the generated Python binding', () => {
  it('runs the same scripts from Python and gets exactly what the TypeScript bindings get', async () => {
    const py = uniquePrefix('py');
    const { stdout } = await run(PYTHON, [join(repoRoot, 'test/python/sequence.py'), server.url, py], { timeout: 30_000 });
    const fromPython = JSON.parse(stdout) as Record<string, unknown>[];

    const redis = new Redis(server.url);
    const ts = uniquePrefix('ts');
    const t0 = 1_764_000_000_000;
    const fromTs: Record<string, unknown>[] = [];
    for (const dt of [0, 0, 0, 50, 400, 401]) {
      const r = await gcra(redis, { key: `${ts}g`, limit: 10, periodMs: 1000, burst: 3, cost: 1, nowMs: t0 + dt });
      fromTs.push({ allowed: r.allowed, remaining: r.remaining, reset_after_ms: r.resetAfterMs, retry_after_ms: r.retryAfterMs });
    }
    for (const dt of [0, 1, 2, 3]) {
      const r = await multi(redis, {
        nowMs: t0 + dt,
        limits: [
          { key: `{${ts}}:rpm`, algo: 'sliding_log', limit: 2, periodMs: 60_000, cost: 1 },
          { key: `{${ts}}:tpm`, algo: 'quota', limit: 1000, unit: 'month', cost: 300 },
        ],
      });
      fromTs.push({
        allowed: r.allowed,
        denied_index: r.deniedIndex,
        retry_after_ms: r.retryAfterMs,
        limits: r.limits.map((l) => ({ allowed: l.allowed, remaining: l.remaining, reset_after_ms: l.resetAfterMs, retry_after_ms: l.retryAfterMs })),
      });
    }
    await redis.quit();
    expect(fromPython.slice(0, -1)).toEqual(fromTs);
    expect(fromPython.at(-1)).toEqual({ error: 'redlimit gcra: limit must be between 1 and 1000000000, got 0' });
  });
});
