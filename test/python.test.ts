import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { gcra, multi } from '../generated/index.js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startLocalRedis, type LocalRedis } from '../devtools/local-redis.js';
import { createRateLimiter, type Subject } from '../src/index.js';
import { blockKey, limitKey, resolveSubject } from '../src/client/keys.js';
import { uniquePrefix } from './support/redis.js';
import { repoRoot } from './support/temp-scripts.js';

const run = promisify(execFile);
// Debian's python3 with python3-redis (.ci/run installs it); a pyenv python3 would not see it.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

// The Python side flushes the script cache to take the NOSCRIPT path: this file owns its server.
let server: LocalRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startLocalRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

describe('the generated Python binding', () => {
  it('runs the same scripts from Python and gets exactly what the TypeScript bindings get', async () => {
    const py = uniquePrefix('py');
    const { stdout } = await run(PYTHON, [join(repoRoot, 'test/python/sequence.py'), server.url, py], { timeout: 30_000 });
    const fromPython = JSON.parse(stdout) as Record<string, unknown>[];

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
    expect(fromPython.slice(0, -1)).toEqual(fromTs);
    expect(fromPython.at(-1)).toEqual({ error: 'redlimit gcra: limit must be between 1 and 1000000000, got 0' });
  });

  it('is one self-contained file: copied alone into an empty directory, it loads and runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redlimit-py-'));
    try {
      copyFileSync(join(repoRoot, 'generated/python/redlimit_scripts.py'), join(dir, 'redlimit_scripts.py'));
      const code = `import json, redis, redlimit_scripts as rl
c = redis.Redis.from_url(${JSON.stringify(server.url)})
k = rl.limit_key("rpm", "solo", prefix=${JSON.stringify(uniquePrefix('solo').slice(0, -1))})
print(json.dumps([rl.GCRA(c, [k], limit=3, period_ms=86400000)["remaining"], len(rl.SCRIPTS)]))`;
      const { stdout } = await run(PYTHON, ['-c', code], { cwd: dir, timeout: 30_000 });
      expect(JSON.parse(stdout)).toEqual([2, JSON.parse(readFileSync(join(repoRoot, 'generated/manifest.json'), 'utf8')).scripts.length]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses keys the limiter refuses, with the same rules', async () => {
    const code = `import sys, json
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'generated/python'))})
import redlimit_scripts as rl
out = []
for args, kw in [(("rpm", "a{b"), {}), (("rpm", ""), {}), (("r:m", "a"), {}), (("rpm", "a\\ud800"), {}), (("rpm", "x" * 513), {}), (("org", "a"), {"scope": "org"}), (("rpm", "a"), {"prefix": "p{"}), (("rpm", "a"), {"hash_tag": "t}"})]:
    try:
        out.append(rl.limit_key(*args, **kw))
    except rl.InvalidArgument as e:
        out.append("refused")
out.append(rl.limit_key("rpm", "\\U0001F600" * 256))
print(json.dumps(out))`;
    const { stdout } = await run(PYTHON, ['-c', code], { timeout: 30_000 });
    const out = JSON.parse(stdout) as string[];
    expect(out.slice(0, -1)).toEqual(Array(8).fill('refused'));
    // 256 astral characters are 512 UTF-16 units: the limit, as in TypeScript.
    expect(out.at(-1)).toBe(limitKey('rl', resolveSubject('\u{1F600}'.repeat(256)), 'rpm', null));
  });
});

interface KeySpec {
  limit?: string;
  block?: string;
  id?: string;
  hash_tag?: string;
  scope?: string;
  scopes?: Record<string, string>;
  prefix: string;
}
interface Step {
  script: string;
  keys: KeySpec[];
  args?: Record<string, unknown>;
  items?: Record<string, unknown>[];
  times: number;
}
type Reply = { allowed: boolean; remaining?: number; denied_index?: number };

async function python(mode: 'sync' | 'async', steps: Step[]): Promise<{ keys: string[][]; replies: Reply[][] }> {
  const { stdout } = await run(PYTHON, [join(repoRoot, 'test/python/shared_limit.py'), server.url, mode, JSON.stringify(steps)], { timeout: 30_000 });
  return JSON.parse(stdout);
}

const DAY = 86_400_000; // long periods: nothing refills between the two sides' calls, however slow the machine

describe.each(['sync', 'async'] as const)('a Python agent (%s) and a Node limiter share one limit', (mode) => {
  it('plain ids: the same key, exact counts from both sides', async () => {
    const prefix = uniquePrefix(`share-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, limits: { name: 'rpm', algo: 'gcra', limit: 10, periodMs: DAY } });
    for (let i = 0; i < 3; i++) expect((await node.limit('agent-1')).allowed).toBe(true);
    const py = await python(mode, [{ script: 'GCRA', keys: [{ limit: 'rpm', id: 'agent-1', prefix }], args: { limit: 10, period_ms: DAY }, times: 8 }]);
    expect(py.keys[0]).toEqual([limitKey(prefix, resolveSubject('agent-1'), 'rpm', null)]);
    expect(py.replies[0]!.map((r) => r.allowed)).toEqual([true, true, true, true, true, true, true, false]);
    expect(py.replies[0]!.map((r) => r.remaining)).toEqual([6, 5, 4, 3, 2, 1, 0, 0]);
    expect(await node.limit('agent-1')).toMatchObject({ allowed: false, source: 'redis' });
    expect((await node.peek('agent-1')).remaining).toBe(0);
    await node.close();
  });

  it('hash-tagged and scoped subjects: a user limit and an org limit, in one multi call from Python', async () => {
    const prefix = uniquePrefix(`scope-${mode}`).slice(0, -1);
    const limits = [
      { name: 'user', algo: 'gcra', limit: 6, periodMs: DAY },
      { name: 'org', algo: 'quota', limit: 8, unit: 'day', scope: 'org' },
    ] as const;
    const node = createRateLimiter({ redis, prefix, limits: [...limits] });
    const ann: Subject = { id: 'ann', hashTag: 'acme', scopes: { org: 'acme' } };
    for (let i = 0; i < 3; i++) expect((await node.limit(ann)).allowed).toBe(true);
    const bob = { hash_tag: 'acme', prefix };
    const py = await python(mode, [
      {
        script: 'MULTI',
        keys: [
          { limit: 'user', id: 'bob', ...bob },
          { limit: 'org', id: 'bob', scope: 'org', scopes: { org: 'acme' }, ...bob },
        ],
        items: [
          { algo: 'gcra', limit: 6, period_ms: DAY },
          { algo: 'quota', limit: 8, unit: 'day' },
        ],
        times: 6,
      },
    ]);
    const bobSubject = resolveSubject({ id: 'bob', hashTag: 'acme', scopes: { org: 'acme' } });
    expect(py.keys[0]).toEqual([limitKey(prefix, bobSubject, 'user', null), limitKey(prefix, bobSubject, 'org', 'org')]);
    // The org had 8, ann took 3: bob gets exactly 5 (his own limit has 6), the 6th is denied by the org limit (index 2).
    expect(py.replies[0]!.map((r) => r.allowed)).toEqual([true, true, true, true, true, false]);
    expect(py.replies[0]![5]!.denied_index).toBe(2);
    expect(await node.limit(ann)).toMatchObject({ allowed: false, deniedBy: 'org' });
    expect((await node.peek({ id: 'bob', hashTag: 'acme', scopes: { org: 'acme' } })).limits.map((l) => l.remaining)).toEqual([1, 0]);
    await node.close();
  });

  it("a block set by Node denies the Python agent's multi call", async () => {
    const prefix = uniquePrefix(`block-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, blocks: true, limits: { name: 'rpm', algo: 'gcra', limit: 10, periodMs: DAY } });
    const eve: Subject = { id: 'eve', hashTag: 'acme' };
    await node.block(eve, DAY);
    const py = await python(mode, [
      { script: 'MULTI', keys: [{ block: 'eve', hash_tag: 'acme', prefix }, { limit: 'rpm', id: 'eve', hash_tag: 'acme', prefix }], items: [{ algo: 'block' }, { algo: 'gcra', limit: 10, period_ms: DAY }], times: 1 },
      { script: 'MULTI', keys: [{ block: 'ivy', hash_tag: 'acme', prefix }, { limit: 'rpm', id: 'ivy', hash_tag: 'acme', prefix }], items: [{ algo: 'block' }, { algo: 'gcra', limit: 10, period_ms: DAY }], times: 1 },
    ]);
    expect(py.keys[0]).toEqual([blockKey(prefix, resolveSubject(eve)), limitKey(prefix, resolveSubject(eve), 'rpm', null)]);
    expect(py.replies[0]![0]).toMatchObject({ allowed: false, denied_index: 1 });
    expect(py.replies[1]![0]).toMatchObject({ allowed: true });
    expect((await node.peek({ id: 'ivy', hashTag: 'acme' })).remaining).toBe(9);
    await node.close();
  });
});

describe('the manifest key layout', () => {
  it('states the templates keys.ts builds', () => {
    const layout = JSON.parse(readFileSync(join(repoRoot, 'generated/manifest.json'), 'utf8')).keyLayout;
    const fill = (t: string, v: Record<string, string>) => t.replace(/\$\{(\w+)\}/g, (_, n: string) => v[n]!);
    const s = resolveSubject({ id: 'u1', hashTag: 't1', scopes: { org: 'o1' } });
    expect(fill(layout.templates.id.template, { prefix: 'p', id: 'u1', limit: 'l' })).toBe(limitKey('p', resolveSubject('u1'), 'l', null));
    expect(fill(layout.templates.taggedId.template, { prefix: 'p', tag: 't1', id: 'u1', limit: 'l' })).toBe(limitKey('p', s, 'l', null));
    expect(fill(layout.templates.scoped.template, { prefix: 'p', tag: 't1', scopeValue: 'o1', limit: 'l' })).toBe(limitKey('p', s, 'l', 'org'));
    expect(fill(layout.templates.block.template, { prefix: 'p', tag: 't1', id: 'u1' })).toBe(blockKey('p', s));
    expect(layout.defaultPrefix).toBe('rl');
  });
});
