import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { gcra, multi } from '../generated/index.js';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startLocalCluster } from '../devtools/local-cluster.js';
import { startLocalRedis, type LocalRedis } from '../devtools/local-redis.js';
import { createFairShare, createRateLimiter, tzRulesFor, type Subject } from '../src/index.js';
import { blockKey, limitKey, resolveSubject, subjectKey } from '../src/client/keys.js';
import { parseHandle } from '../src/client/reservations.js';
import { AdoptionSwitch, CLAIM_VALUE, FOUND_MS, FOUND_VALUE, NONE_MS, NONE_VALUE, SCAN_CLAIM_MS, scanMatch } from '../src/client/adoption.js';
import { TIERS_ALGOS } from '../src/runtime/checks.js';
import { hashSlot } from '../src/runtime/index.js';
import { UNHURRIED, uniquePrefix } from './support/redis.js';
import { repoRoot } from './support/temp-scripts.js';
import { PYTHON } from '../devtools/python.js';

const run = promisify(execFile);
// Debian's python3 with python3-redis (.ci/run installs it); a pyenv python3 would not see it.

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
typed = rl.GCRA.call(c, [k], limit=3, period_ms=86400000)
print(json.dumps([rl.GCRA(c, [k], limit=3, period_ms=86400000)["remaining"], len(rl.SCRIPTS), type(typed).__name__, typed.remaining]))`;
      const { stdout } = await run(PYTHON, ['-c', code], { cwd: dir, timeout: 30_000 });
      expect(JSON.parse(stdout)).toEqual([1, JSON.parse(readFileSync(join(repoRoot, 'generated/manifest.json'), 'utf8')).scripts.length, 'GcraResult', 2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a script of any number of keys gets every argument, an omitted optional one as empty (its count is exact)', async () => {
    const prefix = uniquePrefix('raw-tiers-reset').slice(0, -1);
    const key = subjectKey(prefix, resolveSubject('u1'), 'm+h');
    await redis.set(key, '|5:1');
    await redis.set(limitKey(prefix, resolveSubject('u1'), 'h', null), 'x');
    const code = `import sys, json, redis
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'generated/python'))})
import redlimit_scripts as rl
c = redis.Redis.from_url(${JSON.stringify(server.url)})
print(json.dumps(rl.TIERS_RESET(c, [${JSON.stringify(key)}], count=2, limits="2")))`;
    const { stdout } = await run(PYTHON, ['-c', code], { timeout: 30_000 });
    // adopt omitted: the state in the key is reset, the limit's own key left alone.
    expect(JSON.parse(stdout)).toEqual({ reset: 1 });
    expect(await redis.exists(key)).toBe(0);
    expect(await redis.get(limitKey(prefix, resolveSubject('u1'), 'h', null))).toBe('x');
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
    const limits = ['m', 'h', 'd'].join(layout.rules.limits.separator);
    expect(fill(layout.templates.subject.template, { prefix: 'p', id: 'u1', limits })).toBe(subjectKey('p', resolveSubject('u1'), 'm+h+d'));
    expect(fill(layout.templates.taggedSubject.template, { prefix: 'p', tag: 't1', id: 'u1', limits })).toBe(subjectKey('p', s, 'm+h+d'));
    expect(layout.defaultPrefix).toBe('rl');
  });

  it('states the adoption marker src/client/adoption.ts keeps: its key, values, lifetimes and what its scan matches', () => {
    const layout = JSON.parse(readFileSync(join(repoRoot, 'generated/manifest.json'), 'utf8')).keyLayout;
    const fill = (t: string, v: Record<string, string>) => t.replace(/\$\{(\w+)\}/g, (_, n: string) => v[n]!);
    const a = layout.adoption;
    expect(fill(a.marker, { prefix: 'p', limits: ['m', 'h', 'd'].join(layout.rules.limits.separator) })).toBe(new AdoptionSwitch(null, 'p', ['m', 'h', 'd']).marker);
    expect([a.claimMs, a.foundMs, a.noneMs]).toEqual([SCAN_CLAIM_MS, FOUND_MS, NONE_MS]);
    expect([a.claimValue, a.foundValue, a.noneValue]).toEqual([CLAIM_VALUE, FOUND_VALUE, NONE_VALUE]);
    expect(fill(a.scanMatch, { prefix: 'p' })).toBe(scanMatch('p'));
  });
});

// --- The typed API (Limiter, FairShare) against a Node limiter: test/python/agent.py ----------------

interface PyError {
  type: string;
  message: string;
  status: string | null;
}
type Answer<T> = { ok: T } | { error: PyError };
interface PyLimit {
  name: string;
  allowed: boolean;
  remaining: number;
  limit: number;
  reset_after_ms: number;
  retry_after_ms: number;
}
interface PyDecision {
  allowed: boolean;
  limit_name: string | null;
  remaining: number;
  retry_after_ms: number;
  denied_by: string | null;
  limits: PyLimit[];
  priority: { class_name: string; shares: Record<string, number> } | null;
  holder: string | null;
  handle?: string | null;
}
interface PySettlement {
  status: string;
  limits: { name: string; remaining: number; reset_after_ms: number }[];
}

/** A Python agent process: one JSON command a line in, one answer a line out. */
class Agent {
  private readonly child;
  private readonly waiting: ((line: string) => void)[] = [];
  private stderr = '';

  constructor(readonly mode: 'sync' | 'async') {
    this.child = spawn(PYTHON, [join(repoRoot, 'test/python/agent.py'), server.url, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.on('exit', () => {
      for (const w of this.waiting.splice(0)) w(JSON.stringify({ error: { type: 'exit', message: this.stderr, status: null } }));
    });
  }

  /** The answer to one command, as it came (ok or error). */
  send<T>(cmd: Record<string, unknown>): Promise<Answer<T>> {
    return new Promise((resolve) => {
      this.waiting.push((line) => resolve(JSON.parse(line) as Answer<T>));
      this.child.stdin.write(JSON.stringify(cmd) + '\n');
    });
  }

  /** The result of a command that must succeed. */
  async call<T>(cmd: Record<string, unknown>): Promise<T> {
    const a = await this.send<T>(cmd);
    if ('error' in a) throw new Error(`python ${String(cmd.op)}: ${a.error.type}: ${a.error.message}`);
    return a.ok;
  }

  /** The error of a command that must fail. */
  async refused(cmd: Record<string, unknown>): Promise<PyError> {
    const a = await this.send<unknown>(cmd);
    if (!('error' in a)) throw new Error(`python ${String(cmd.op)} answered ${JSON.stringify(a.ok)}, expected an error`);
    return a.error;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.on('exit', () => resolve());
      this.child.stdin.end();
    });
  }
}

async function withAgent(mode: 'sync' | 'async', fn: (py: Agent) => Promise<void>): Promise<void> {
  const py = new Agent(mode);
  try {
    await fn(py);
  } finally {
    await py.close();
  }
}

// Periods no test outlives: nothing refills (gcra: 1 unit per 8.8 h) and no window ends (the
// 366-day fixed windows are aligned to the epoch) between the two sides' calls.
const YEAR = 31_622_400_000;
const LLM_LIMITS = [
  { name: 'rpm', algo: 'gcra', limit: 1000, periodMs: YEAR },
  { name: 'tpm', algo: 'fixed_window', limit: 100_000, periodMs: YEAR },
] as const;
const PY_LLM_LIMITS = [
  { name: 'rpm', algo: 'gcra', limit: 1000, period_ms: YEAR },
  { name: 'tpm', algo: 'fixed_window', limit: 100_000, period_ms: YEAR },
];

/** Deterministic numbers in [lo, hi] (a test that fails can be replayed). */
function numbers(seed: number, count: number, lo: number, hi: number): number[] {
  let x = seed;
  return Array.from({ length: count }, () => {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
    return lo + (x % (hi - lo + 1));
  });
}

describe.each(['sync', 'async'] as const)('reserve → commit / cancel: a Python agent (%s) and a Node limiter', (mode) => {
  it('a handle made in Python settles in Node, one made in Node settles in Python, and both see one budget', async () => {
    const prefix = uniquePrefix(`rsv-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, limits: [...LLM_LIMITS], ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'L', prefix, limits: PY_LLM_LIMITS });
      const p1 = await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-1', cost: { tpm: 3000 } });
      expect(p1).toMatchObject({ allowed: true, limit_name: 'tpm', remaining: 97_000, denied_by: null });
      expect(p1.limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 999], ['tpm', 97_000]]);
      expect(p1.handle).toMatch(/^rsv1\./);
      // Node commits Python's handle: 1000 of the 3000 estimated tokens come back.
      expect(await node.commit(p1.handle!, { tpm: 2000 })).toMatchObject({ status: 'committed', limits: [{ name: 'rpm', remaining: -1 }, { name: 'tpm', remaining: 98_000 }] });

      // Python commits Node's handle, above its estimate: the overage is charged.
      const n1 = await node.reserve('agent-1', { cost: { tpm: 4000 } });
      expect(n1).toMatchObject({ allowed: true, remaining: 94_000 });
      const s1 = await py.call<PySettlement>({ op: 'commit', limiter: 'L', handle: n1.handle, actual: { tpm: 5000 } });
      expect(s1).toEqual({ status: 'committed', limits: [{ name: 'rpm', remaining: -1, reset_after_ms: -1 }, expect.objectContaining({ name: 'tpm', remaining: 93_000 })] });

      // Once: a second settle on either side changes nothing and says so.
      expect((await py.call<PySettlement>({ op: 'commit', limiter: 'L', handle: p1.handle, actual: 1 })).status).toBe('already-settled');
      expect((await node.cancel(n1.handle!)).status).toBe('already-settled');

      // Cancels, across: everything comes back, once.
      const p2 = await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-1', cost: { tpm: 1000 } });
      expect((await node.cancel(p2.handle!)).status).toBe('cancelled');
      expect((await py.call<PySettlement>({ op: 'cancel', limiter: 'L', handle: p2.handle })).status).toBe('already-settled');
      const n2 = await node.reserve('agent-1', { cost: { tpm: 500 } });
      expect((await py.call<PySettlement>({ op: 'cancel', limiter: 'L', handle: n2.handle })).status).toBe('cancelled');
      expect((await node.commit(n2.handle!, 1)).status).toBe('already-settled');

      // One budget: 2 requests (the committed ones: a commit naming only tpm keeps the request; a
      // cancel gives it back), 2000 + 5000 tokens.
      const seen = await node.peek('agent-1');
      expect(seen.limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 998], ['tpm', 93_000]]);
      const fromPy = await py.call<PyDecision>({ op: 'peek', limiter: 'L', subject: 'agent-1' });
      expect(fromPy.limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 998], ['tpm', 93_000]]);

      // An estimate that can never fit is refused at once and takes nothing.
      const never = await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-1', cost: { tpm: 100_001 } });
      expect(never).toMatchObject({ allowed: false, denied_by: 'tpm', retry_after_ms: -1, handle: null });
      expect((await node.peek('agent-1')).limits.map((l) => l.remaining)).toEqual([998, 93_000]);
    });
    await node.close();
  });

  it('many reservations at once on both sides, each settled by the other side: the totals are exact', async () => {
    const prefix = uniquePrefix(`rsv-many-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, limits: [...LLM_LIMITS], ...UNHURRIED });
    const n = 24;
    const pyEstimates = numbers(7, n, 100, 1500);
    const nodeEstimates = numbers(11, n, 100, 1500);
    const pyActuals = numbers(13, n, 0, 2000); // Node commits these on Python's handles (some above the estimate)
    const nodeActuals = numbers(17, n, 0, 2000); // Python commits these on Node's handles
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'L', prefix, limits: PY_LLM_LIMITS });
      const [fromPy, fromNode] = await Promise.all([
        py.call<PyDecision[]>({ op: 'reserve_many', limiter: 'L', subject: 'agent-2', costs: pyEstimates.map((tpm) => ({ tpm })) }),
        Promise.all(nodeEstimates.map((tpm) => node.reserve('agent-2', { cost: { tpm } }))),
      ]);
      expect([...fromPy, ...fromNode].every((r) => r.allowed && typeof r.handle === 'string')).toBe(true);
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      // Everything reserved is taken, from both sides, while it is unsettled.
      expect((await node.peek('agent-2')).limits.map((l) => l.remaining)).toEqual([1000 - 2 * n, 100_000 - sum(pyEstimates) - sum(nodeEstimates)]);

      const [pySettles, nodeSettles] = await Promise.all([
        py.call<PySettlement[]>({ op: 'commit_many', limiter: 'L', handles: fromNode.map((r) => r.handle), actuals: nodeActuals.map((tpm) => ({ tpm })) }),
        Promise.all(fromPy.map((r, i) => node.commit(r.handle!, { tpm: pyActuals[i]! }))),
      ]);
      expect([...pySettles, ...nodeSettles].map((s) => s.status)).toEqual(Array(2 * n).fill('committed'));
      const tokens = 100_000 - sum(pyActuals) - sum(nodeActuals);
      expect((await node.peek('agent-2')).limits.map((l) => l.remaining)).toEqual([1000 - 2 * n, tokens]);
      const fromPyView = await py.call<PyDecision>({ op: 'peek', limiter: 'L', subject: 'agent-2' });
      expect(fromPyView.limits.map((l) => l.remaining)).toEqual([1000 - 2 * n, tokens]);
    });
    await node.close();
  });

  it('a bad handle from Python gets a clear error before any round trip, and changes nothing', async () => {
    const prefix = uniquePrefix(`rsv-bad-${mode}`).slice(0, -1);
    // A key per limit on both sides: a handle of several keys (what 'reordered' edits). The subject
    // layout's refusals are the test of their own below.
    const node = createRateLimiter({ redis, prefix, layout: 'per-limit', limits: [...LLM_LIMITS], ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'L', prefix, layout: 'per-limit', limits: PY_LLM_LIMITS });
      const { handle } = await node.reserve('agent-3', { cost: { tpm: 2000 } });
      const bad = async (how: string) => py.call<string>({ op: 'tamper', handle, how });
      const commit = (h: unknown, actual: unknown = 1) => py.refused({ op: 'commit', limiter: 'L', handle: h, actual });
      expect(await commit(await bad('edited-keys'))).toEqual({ type: 'InvalidArgument', message: 'redlimit settle: the handle was altered (its check does not match)', status: null });
      expect((await commit(await bad('cut'))).message).toMatch(/^redlimit settle: not a reservation handle \(rsv1\.<rid>\.<keys>\.<check>\)/);
      expect((await commit('not a handle')).message).toMatch(/^redlimit settle: not a reservation handle/);
      expect((await commit(42)).message).toBe('redlimit settle: a reservation handle is a string, got int');
      expect(await commit(await bad('unknown'))).toMatchObject({ type: 'ReservationError', status: 'unknown', message: expect.stringMatching(/^redlimit settle: no live reservation for this handle/) });
      expect(await commit(await bad('reordered'))).toMatchObject({ type: 'ReservationError', status: 'mismatch', message: expect.stringMatching(/not made for these keys/) });
      expect(await py.refused({ op: 'commit', limiter: 'L', handle, actual: 1, subject: 'agent-33' })).toMatchObject({ type: 'ReservationError', status: 'mismatch' });
      expect((await commit(handle, -1)).message).toBe('redlimit settle: actual[0] must be between 0 and 1000000000000000, got -1');
      expect((await commit(handle, 1.5)).message).toMatch(/^redlimit limiter: actual must be an integer/);
      expect((await commit(handle, { tokens: 5 })).message).toBe('redlimit limiter: actual names limit tokens, which this limiter does not have');
      expect((await py.refused({ op: 'commit', limiter: 'L', handle, actual: 1, overage: 'forgive' })).message).toBe("redlimit settle: overage must be one of debt|cap, got 'forgive'");
      expect((await py.refused({ op: 'reserve', limiter: 'L', subject: 'agent-3', cost: { tpm: -5 } })).message).toBe('redlimit fixed_window: cost.tpm must be between 0 and 1000000000, got -5');
      expect((await py.refused({ op: 'reserve', limiter: 'L', subject: 'agent-3', ttl_ms: 0 })).message).toBe('redlimit reserve: ttl_ms must be between 1 and 86400000, got 0');
      // Nothing of it was written: the reservation is whole, and settles once.
      expect((await node.peek('agent-3')).limits.map((l) => l.remaining)).toEqual([999, 98_000]);
      expect(await py.call<PySettlement>({ op: 'commit', limiter: 'L', handle, actual: { tpm: 1500 }, subject: 'agent-3' })).toMatchObject({ status: 'committed' });
      expect((await node.peek('agent-3')).limits.map((l) => l.remaining)).toEqual([999, 98_500]);

      // Replayed after it expired: unknown, and it counted at its estimate.
      const short = await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-3', cost: { tpm: 700 }, ttl_ms: 1 });
      // Until Redis' clock is past its deadline (reserve's now + 1 ms <= what TIME said after it).
      const ms = async () => {
        const [sec, usec] = await redis.time();
        return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      };
      const after = await ms();
      while ((await ms()) <= after + 1);
      const late = await py.refused({ op: 'commit', limiter: 'L', handle: short.handle, actual: 0 });
      expect(late).toMatchObject({ type: 'ReservationError', status: 'unknown' });
      expect((await node.peek('agent-3')).limits.map((l) => l.remaining)).toEqual([998, 97_800]);
    });
    await node.close();
  });

  it('with blocks: a block set by Node denies a Python reservation; a handle holding the block key settles across', async () => {
    const prefix = uniquePrefix(`rsv-block-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, blocks: true, limits: [...LLM_LIMITS], ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'L', prefix, blocks: true, limits: PY_LLM_LIMITS });
      await node.block('agent-9', YEAR);
      expect(await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-9', cost: { tpm: 10 } })).toMatchObject({ allowed: false, denied_by: 'block', limit_name: null, handle: null });
      const r = await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-10', cost: { tpm: 900 } });
      const settled = await node.commit(r.handle!, { tpm: 100 });
      expect(settled).toMatchObject({ status: 'committed', limits: [{ name: 'rpm' }, { name: 'tpm', remaining: 99_900 }, { name: 'block', remaining: -1 }] });
      expect((await node.peek('agent-9')).limits.map((l) => l.remaining)).toEqual([1000, 100_000]);
    });
    await node.close();
  });

  it('priority classes: a Python batch call leaves what the classes above it need, as the Node limiter decides', async () => {
    const prefix = uniquePrefix(`prio-${mode}`).slice(0, -1);
    const priorities = { interactive: 1, batch: 0.5 };
    const node = createRateLimiter({ redis, prefix, priorities, limits: { name: 'rpm', algo: 'gcra', limit: 10, periodMs: YEAR }, ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'L', prefix, priorities, limits: [{ name: 'rpm', algo: 'gcra', limit: 10, period_ms: YEAR }] });
      for (let i = 0; i < 4; i++) expect((await node.limit('agent-4')).allowed).toBe(true);
      const batch = (subject = 'agent-4') => py.call<PyDecision>({ op: 'limit', limiter: 'L', subject, priority: 'batch' });
      // 6 left: batch may take one (5 stay free, half of 10), not a second.
      expect(await batch()).toMatchObject({ allowed: true, remaining: 5, priority: { class_name: 'batch', shares: { rpm: 0.5 } } });
      const denied = await batch();
      expect(denied).toMatchObject({ allowed: false, denied_by: 'rpm', remaining: 5, priority: { class_name: 'batch' } });
      expect(denied.retry_after_ms).toBeGreaterThan(0);
      expect(await node.limit('agent-4', { priority: 'batch' })).toMatchObject({ allowed: false, priority: { class: 'batch' } });
      expect(await py.call<PyDecision>({ op: 'peek', limiter: 'L', subject: 'agent-4', cost: 1, priority: 'batch' })).toMatchObject({ allowed: false, remaining: 5 });
      expect(await py.call<PyDecision>({ op: 'peek', limiter: 'L', subject: 'agent-4', cost: 1 })).toMatchObject({ allowed: true, remaining: 5 });
      // The classes above still get the rest, from either side.
      expect(await py.call<PyDecision>({ op: 'limit', limiter: 'L', subject: 'agent-4', priority: 'interactive' })).toMatchObject({ allowed: true, remaining: 4 });
      expect(await node.limit('agent-4', { priority: 'interactive' })).toMatchObject({ allowed: true, remaining: 3 });
      expect((await py.refused({ op: 'limit', limiter: 'L', subject: 'agent-4', priority: 'urgent' })).message).toBe('redlimit limiter: priority "urgent" is not a class of this limiter (interactive, batch)');
      // A reservation names its class too (reserve's group carries share_ppm).
      const r = await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-5', cost: 6, priority: 'batch' });
      expect(r).toMatchObject({ allowed: false, denied_by: 'rpm', handle: null, priority: { class_name: 'batch' } });
      expect(await py.call<PyDecision>({ op: 'reserve', limiter: 'L', subject: 'agent-5', cost: 5, priority: 'batch' })).toMatchObject({ allowed: true, remaining: 5 });
      expect((await node.peek('agent-5')).remaining).toBe(5);
      expect((await node.peek('agent-4')).remaining).toBe(3);
    });
    await node.close();
  });

  it('fair share: Python and Node tenants share one limit, each held to its share while it is contended', async () => {
    const prefix = uniquePrefix(`fair-${mode}`).slice(0, -1);
    const shared = { algo: 'fixed_window', limit: 100, periodMs: YEAR } as const;
    const node = createFairShare({ redis, prefix, name: 'provider', limit: shared });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'fair', id: 'F', name: 'provider', prefix, algo: 'fixed_window', limit: 100, period_ms: YEAR });
      const pyAsk = (cost: number) => py.call<Record<string, unknown>>({ op: 'fair_limit', fair: 'F', tenant: 'py-agent', cost });
      // Alone, the Python tenant may use the whole limit; it takes 10.
      expect(await pyAsk(10)).toMatchObject({ allowed: true, share: 100, used: 10, active_tenants: 1, reason_name: 'within-share', contended: false });
      // Two tenants active: 50 each. Node's takes its 50, and not one more while Python's is owed 40.
      expect(await node.limit('node-agent', { cost: 50 })).toMatchObject({ allowed: true, share: 50, used: 50, activeTenants: 2, reason: 'within-share' });
      expect(await node.limit('node-agent', { cost: 1 })).toMatchObject({ allowed: false, reason: 'owed', contended: true, remaining: 40 });
      // Python's share is there for it, to the unit; then the limit is spent.
      expect(await pyAsk(40)).toMatchObject({ allowed: true, used: 50, remaining: 0, reason_name: 'within-share' });
      expect(await pyAsk(1)).toMatchObject({ allowed: false, reason_name: 'exhausted', contended: true, remaining: 0 });
      expect(await node.limit('node-agent', { cost: 1 })).toMatchObject({ allowed: false, reason: 'exhausted' });
      expect((await py.refused({ op: 'fair_limit', fair: 'F', tenant: 'py-agent', cost: 0 })).message).toBe('redlimit fair_share: cost must be between 1 and 1000000000, got 0');
    });
  });
});

describe.each(['sync', 'async'] as const)('concurrency (%s): hold() is a with / async with', (mode) => {
  it('holds the slot inside, refuses a second one, and gives it back on leaving', async () => {
    const prefix = uniquePrefix(`hold-${mode}`).slice(0, -1);
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'C', prefix, limits: [{ name: 'inflight', algo: 'concurrency', limit: 1, period_ms: 600_000 }] });
      expect(await py.call({ op: 'nested_hold', limiter: 'C', subject: 'agent-7' })).toEqual({ outer: true, inner: 'inflight', again: true });
      expect(await redis.zcard(limitKey(prefix, resolveSubject('agent-7'), 'inflight', null))).toBe(0);
    });
  });
});

describe('the Python Limiter', () => {
  it("builds the Node limiter's keys: hash tags, scopes, the block key last", async () => {
    const prefix = uniquePrefix('pykeys').slice(0, -1);
    await withAgent('sync', async (py) => {
      await py.call({
        op: 'limiter',
        id: 'K',
        prefix,
        blocks: true,
        limits: [
          { name: 'rpm', algo: 'gcra', limit: 10, period_ms: 60_000 },
          { name: 'org-tpd', algo: 'quota', limit: 1_000_000, unit: 'day', scope: 'org' },
        ],
      });
      const subject = { id: 'ann', hashTag: 'acme', scopes: { org: 'acme-org' } };
      const s = resolveSubject(subject);
      expect(await py.call({ op: 'keys', limiter: 'K', subject: { id: 'ann', hash_tag: 'acme', scopes: { org: 'acme-org' } } })).toEqual([
        limitKey(prefix, s, 'rpm', null),
        limitKey(prefix, s, 'org-tpd', 'org'),
        blockKey(prefix, s),
      ]);
      expect((await py.refused({ op: 'keys', limiter: 'K', subject: 'ann' })).message).toMatch(/^redlimit keys: limit org-tpd is scoped by org/);
      const bad = (limits: unknown[], extra: Record<string, unknown> = {}) => py.refused({ op: 'limiter', id: 'X', prefix, limits, ...extra }).then((e) => e.message);
      expect(await bad([{ name: 'rpm', algo: 'gcra', limit: 0, period_ms: 1000 }])).toBe('redlimit limiter: limit rpm: limit must be between 1 and 1000000000, got 0');
      expect(await bad([{ name: 'rpm', algo: 'gcra', limit: 5 }])).toBe('redlimit limiter: limit rpm: period_ms is required');
      expect(await bad([{ name: 'rpm', algo: 'gcra', limit: 5, period_ms: 1000, unit: 'day' }])).toBe('redlimit limiter: limit rpm: gcra takes no unit (it takes limit, period_ms, burst)');
      expect(await bad([{ name: 'rpm', algo: 'leaky', limit: 5 }])).toMatch(/^redlimit limiter: limit rpm: algo must be one of gcra\|token_bucket\|.*\|concurrency, got 'leaky'$/);
      expect(await bad([{ name: 'r', algo: 'gcra', limit: 5, period_ms: 1 }, { name: 'r', algo: 'gcra', limit: 5, period_ms: 1 }])).toBe('redlimit limiter: limit name r is used twice');
      expect(await bad([{ name: 'r', algo: 'gcra', limit: 5, period_ms: 1 }], { priorities: { batch: 1.5 } })).toBe('redlimit limiter: priorities.batch must be a share of the capacity, 0 < share <= 1, got 1.5');
    });
  });
});

describe.each(['sync', 'async'] as const)('a calendar quota in a time zone (%s), shared with Node', (mode) => {
  it("Python builds the zone's rules as Node does, and both count one local day", async () => {
    const prefix = uniquePrefix(`tz-${mode}`).slice(0, -1);
    await withAgent(mode, async (py) => {
      for (const zone of ['Europe/Berlin', 'America/Los_Angeles', 'Australia/Lord_Howe', 'Asia/Kolkata']) {
        for (const now of [1_764_000_000_000, 1_790_000_000_000]) expect(await py.call({ op: 'tz_rules', time_zone: zone, now_ms: now }), `${zone} at ${now}`).toBe(tzRulesFor(zone, now).rules);
      }
      // Los Angeles' day never begins at UTC midnight: a key counted in UTC days would start afresh.
      const node = createRateLimiter({ redis, prefix, limits: { name: 'day', algo: 'quota', limit: 10, unit: 'day', timeZone: 'America/Los_Angeles' }, ...UNHURRIED });
      await py.call({ op: 'limiter', id: 'Q', prefix, limits: [{ name: 'day', algo: 'quota', limit: 10, unit: 'day', time_zone: 'America/Los_Angeles' }] });
      for (let i = 0; i < 3; i++) expect((await node.limit('team-1')).allowed).toBe(true);
      const fromPy = [];
      for (let i = 0; i < 8; i++) fromPy.push(await py.call<PyDecision>({ op: 'limit', limiter: 'Q', subject: 'team-1' }));
      expect(fromPy.map((d) => d.allowed)).toEqual([true, true, true, true, true, true, true, false]);
      expect(await node.limit('team-1')).toMatchObject({ allowed: false, remaining: 0 });
      expect((await py.refused({ op: 'limiter', id: 'X', prefix, limits: [{ name: 'day', algo: 'quota', limit: 10, unit: 'day', time_zone: 'Mars/Olympus' }] })).message).toBe(
        'redlimit quota: time_zone must be an IANA time zone name (e.g. "Europe/Berlin"), got \'Mars/Olympus\'',
      );
      await node.close();
    });
  });

  it.each(['per-limit', 'subject'] as const)('Python reserves on a day quota in a time zone (reserve v3 / tiers_reserve send its rules), Node commits: one local day (layout %s)', async (layout) => {
    const prefix = uniquePrefix(`tz-rsv-${mode}`).slice(0, -1);
    const node = createRateLimiter({
      redis,
      prefix,
      layout,
      limits: [
        { name: 'rpm', algo: 'gcra', limit: 1_000, periodMs: YEAR },
        { name: 'daily', algo: 'quota', limit: 10_000, unit: 'day', timeZone: 'America/Los_Angeles' },
      ],
      ...UNHURRIED,
    });
    await withAgent(mode, async (py) => {
      await py.call({
        op: 'limiter',
        id: 'Z',
        prefix,
        layout,
        limits: [
          { name: 'rpm', algo: 'gcra', limit: 1_000, period_ms: YEAR },
          { name: 'daily', algo: 'quota', limit: 10_000, unit: 'day', time_zone: 'America/Los_Angeles' },
        ],
      });
      const r = await py.call<PyDecision>({ op: 'reserve', limiter: 'Z', subject: 'team-1', cost: { rpm: 1, daily: 3_000 } });
      expect(r).toMatchObject({ allowed: true });
      const s = resolveSubject('team-1');
      expect(parseHandle(r.handle!).keys).toEqual(layout === 'subject' ? [subjectKey(prefix, s, 'rpm+daily')] : [limitKey(prefix, s, 'rpm', null), limitKey(prefix, s, 'daily', null)]);
      const daily = r.limits.find((l) => l.name === 'daily')!;
      expect(daily.remaining).toBe(7_000);
      // The reserved day is Los Angeles': it ends at local midnight there (not at UTC's).
      const ends = new Date(Date.now() + daily.reset_after_ms + 500);
      expect(new Intl.DateTimeFormat('en-GB', { timeZone: 'America/Los_Angeles', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ends)).toBe('00:00');
      // Node commits 1 200 of the 3 000: 1 800 come back to the same day.
      expect(await node.commit(r.handle!, { daily: 1_200 })).toMatchObject({ status: 'committed', limits: [{ name: 'rpm', remaining: -1 }, { name: 'daily', remaining: 8_800 }] });
      expect((await node.peek('team-1')).limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 999], ['daily', 8_800]]);
      const fromPy = await py.call<PyDecision>({ op: 'peek', limiter: 'Z', subject: 'team-1' });
      expect(fromPy.limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 999], ['daily', 8_800]]);
      // And back: a Python cancel of a Python reservation gives all of it back.
      const again = await py.call<PyDecision>({ op: 'reserve', limiter: 'Z', subject: 'team-1', cost: { rpm: 1, daily: 800 } });
      expect(again.limits.find((l) => l.name === 'daily')!.remaining).toBe(8_000);
      expect((await py.call<PySettlement>({ op: 'cancel', limiter: 'Z', handle: again.handle })).status).toBe('cancelled');
      expect((await node.peek('team-1')).limits.map((l) => [l.name, l.remaining])).toEqual([['rpm', 999], ['daily', 8_800]]);
    });
    await node.close();
  });
});

describe.each(['sync', 'async'] as const)('concurrency (%s): Python and Node hold the slots of one limit', (mode) => {
  it('slots taken on either side count on both, and either side releases a holder the other took', async () => {
    const prefix = uniquePrefix(`slots-${mode}`).slice(0, -1);
    const node = createRateLimiter({
      redis,
      prefix,
      limits: [
        { name: 'inflight', algo: 'concurrency', limit: 2, ttlMs: 600_000 },
        { name: 'rpm', algo: 'gcra', limit: 100, periodMs: YEAR },
      ],
      ...UNHURRIED,
    });
    await withAgent(mode, async (py) => {
      await py.call({
        op: 'limiter',
        id: 'C',
        prefix,
        limits: [
          { name: 'inflight', algo: 'concurrency', limit: 2, period_ms: 600_000 },
          { name: 'rpm', algo: 'gcra', limit: 100, period_ms: YEAR },
        ],
      });
      const fromNode = await node.limit('agent-8');
      expect(fromNode).toMatchObject({ allowed: true });
      const fromPy = await py.call<PyDecision>({ op: 'limit', limiter: 'C', subject: 'agent-8' });
      expect(fromPy).toMatchObject({ allowed: true, limits: [{ name: 'inflight', remaining: 0 }, { name: 'rpm', remaining: 98 }] });
      // Both slots are taken: a third call is denied on either side, and takes no request.
      expect(await py.call<PyDecision>({ op: 'limit', limiter: 'C', subject: 'agent-8' })).toMatchObject({ allowed: false, denied_by: 'inflight', holder: null });
      expect(await node.limit('agent-8')).toMatchObject({ allowed: false, deniedBy: 'inflight' });
      // Python releases Node's holder, Node releases Python's: once each.
      expect(await py.call({ op: 'release', limiter: 'C', subject: 'agent-8', holder: fromNode.holder })).toEqual([{ name: 'inflight', released: true, in_flight: 1 }]);
      expect(await node.release('agent-8', fromPy.holder!)).toBe(true);
      expect(await node.release('agent-8', fromPy.holder!)).toBe(false);
      expect(await py.call<PyDecision>({ op: 'peek', limiter: 'C', subject: 'agent-8' })).toMatchObject({ allowed: true, limits: [{ name: 'inflight', remaining: 2 }, { name: 'rpm', remaining: 98 }] });
      expect((await node.peek('agent-8')).limits.map((l) => l.remaining)).toEqual([2, 98]);
    });
    await node.close();
  });
});

describe('concurrency from asyncio: several tasks, one limit of slots and a rate limit in one call', () => {
  it('never more holders than slots; a denied call takes nothing; every slot comes back', async () => {
    const prefix = uniquePrefix('conc').slice(0, -1);
    const tasks = 10;
    await withAgent('async', async (py) => {
      await py.call({
        op: 'limiter',
        id: 'C',
        prefix,
        limits: [
          { name: 'inflight', algo: 'concurrency', limit: 3, period_ms: 600_000 },
          { name: 'rpm', algo: 'gcra', limit: 1000, period_ms: YEAR },
        ],
      });
      const out = await py.call<Record<string, unknown>>({ op: 'crowd', limiter: 'C', subject: 'agent-6', tasks });
      // Round one: exactly 3 of 10 at once; the other 7 denied by the slots, with a wait.
      expect(out).toMatchObject({ first_allowed: 3, first_denied_by: ['inflight'], first_retry_positive: true, holders_distinct: true, released: [true, true, true] });
      // Round two: every task held a slot once, never more than 3 at a time.
      expect(out.second_admitted).toBe(tasks);
      expect(out.most_held as number).toBeLessThanOrEqual(3);
      // Only admitted calls took a request (denied ones took nothing), and no slot is left held.
      const node = createRateLimiter({ redis, prefix, limits: { name: 'rpm', algo: 'gcra', limit: 1000, periodMs: YEAR }, ...UNHURRIED });
      expect((await node.peek('agent-6')).remaining).toBe(1000 - 3 - tasks);
      await node.close();
      expect(await redis.zcard(limitKey(prefix, resolveSubject('agent-6'), 'inflight', null))).toBe(0);
      // Misuse is refused before any round trip.
      expect((await py.refused({ op: 'limit', limiter: 'C', subject: 'agent-6', cost: { inflight: 2 } })).message).toBe('redlimit limiter: cost names limit inflight, which holds one slot per call: it takes no cost');
      expect((await py.refused({ op: 'reserve', limiter: 'C', subject: 'agent-6' })).message).toMatch(/^redlimit reserve: limit inflight uses concurrency, which cannot give units back/);
    });
  });
});

// --- layout 'subject': every limit of a subject in one key (the tiers scripts), from both sides ---------

const TIER_LIMITS = [
  { name: 'm', algo: 'gcra', limit: 6, periodMs: YEAR },
  { name: 'h', algo: 'sliding_window', limit: 40, periodMs: YEAR },
  { name: 'tok', algo: 'fixed_window', limit: 100_000, periodMs: YEAR, offsetMs: 86_400_000 },
  { name: 'd', algo: 'quota', limit: 50_000, unit: 'day' },
  { name: 'tb', algo: 'token_bucket', limit: 1_000, periodMs: YEAR, burst: 7 },
] as const;
const PY_TIER_LIMITS = [
  { name: 'm', algo: 'gcra', limit: 6, period_ms: YEAR },
  { name: 'h', algo: 'sliding_window', limit: 40, period_ms: YEAR },
  { name: 'tok', algo: 'fixed_window', limit: 100_000, period_ms: YEAR, offset_ms: 86_400_000 },
  { name: 'd', algo: 'quota', limit: 50_000, unit: 'day' },
  { name: 'tb', algo: 'token_bucket', limit: 1_000, period_ms: YEAR, burst: 7 },
];

/** What both sides' decisions must agree on (the clock-bound reset_after_ms aside). */
function node2(d: { allowed: boolean; limitName: string | null; remaining: number; deniedBy: string | null; limits: { name: string; allowed: boolean; remaining: number }[] }) {
  return { allowed: d.allowed, limit_name: d.limitName, remaining: d.remaining, denied_by: d.deniedBy, limits: d.limits.map((l) => [l.name, l.allowed, l.remaining]) };
}
function py2(d: PyDecision) {
  return { allowed: d.allowed, limit_name: d.limit_name, remaining: d.remaining, denied_by: d.denied_by, limits: d.limits.map((l) => [l.name, l.allowed, l.remaining]) };
}

describe.each(['sync', 'async'] as const)("layout 'subject' (%s): a Python Limiter and a Node limiter on one subject key", (mode) => {
  it('decision for decision: each side continues the count the other left, as Node alone would decide', async () => {
    const prefix = uniquePrefix(`subj-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, layout: 'subject', limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    // The oracle: the same calls, all from Node, on another subject.
    const alone = createRateLimiter({ redis, prefix, layout: 'subject', limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    const costs: (Record<string, number> | undefined)[] = [undefined, { tok: 2_000, d: 2_000 }, { tok: 30_000 }, undefined, { tok: 70_000 }, { tok: 500, d: 500 }, undefined, { d: 49_000 }, undefined, undefined];
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'S', prefix, layout: 'subject', limits: PY_TIER_LIMITS });
      const key = subjectKey(prefix, resolveSubject('agent-s'), 'm+h+tok+d+tb');
      expect(key).toBe(`${prefix}:{agent-s}:m+h+tok+d+tb`);
      expect(await py.call({ op: 'keys', limiter: 'S', subject: 'agent-s' })).toEqual([key]);
      const shared: unknown[] = [];
      const oracle: unknown[] = [];
      for (const [i, cost] of costs.entries()) {
        // Node takes the even calls, Python the odd ones.
        shared.push(i % 2 === 0 ? node2(await node.limit('agent-s', cost ? { cost } : {})) : py2(await py.call<PyDecision>({ op: 'limit', limiter: 'S', subject: 'agent-s', cost })));
        oracle.push(node2(await alone.limit('oracle', cost ? { cost } : {})));
      }
      expect(shared).toEqual(oracle);
      // Admitted and denied calls both happened (the sequence exercises the limits).
      expect(shared.map((d) => (d as { allowed: boolean }).allowed)).toEqual([true, true, true, true, false, true, true, false, false, false]);
      // One key holds every limit: no per-limit key was written, and it is a tiers state (| separated).
      // (Beside them, the Node limiters' adoption marker: src/client/adoption.ts.)
      expect((await redis.keys(`${prefix}:*`)).filter((k) => !k.includes(':!adopt:')).sort()).toEqual([`${prefix}:{agent-s}:m+h+tok+d+tb`, `${prefix}:{oracle}:m+h+tok+d+tb`]);
      expect((await redis.get(key))!.split('|')).toHaveLength(5);
      // peek from Python is Node's peek.
      expect(py2(await py.call<PyDecision>({ op: 'peek', limiter: 'S', subject: 'agent-s', cost: { d: 10 } }))).toEqual(node2(await node.peek('agent-s', { cost: { d: 10 } })));
      // A refund from Python (tiers_refund): the limits it names get it back, Node sees it.
      const refunded = await py.call<{ name: string; remaining: number }[]>({ op: 'refund', limiter: 'S', subject: 'agent-s', cost: { tok: 1_000, d: 700 } });
      await alone.refund('oracle', { cost: { tok: 1_000, d: 700 } });
      const after = await node.peek('agent-s');
      expect(refunded.map((l) => [l.name, l.remaining])).toEqual(after.limits.map((l) => [l.name, l.remaining]));
      expect(node2(after)).toEqual(node2(await alone.peek('oracle')));
      expect(await py.call({ op: 'refund', limiter: 'S', subject: 'agent-s', cost: 0 })).toEqual([]);
      // Resetting one limit from Python (tiers_reset) keeps the others, as Node's reset of it does.
      await py.call({ op: 'reset', limiter: 'S', subject: 'agent-s', limits: ['m'] });
      await alone.reset('oracle', { limits: ['m'] });
      const kept = await node.peek('agent-s');
      expect(kept.limits.find((l) => l.name === 'm')!.remaining).toBe(6);
      expect(node2(kept)).toEqual(node2(await alone.peek('oracle')));
      expect(py2(await py.call<PyDecision>({ op: 'limit', limiter: 'S', subject: 'agent-s', cost: { d: 1 } }))).toEqual(node2(await alone.limit('oracle', { cost: { d: 1 } })));
      // Resetting all of it deletes the key.
      await py.call({ op: 'reset', limiter: 'S', subject: 'agent-s' });
      expect(await redis.exists(key)).toBe(0);
      // A key holding something else: an error, as multi's WRONGTYPE on a key per limit, nothing
      // written. (The Node limiter with layout 'subject' answers a denial there for now.)
      await redis.hset(key, 'f', '1');
      const wrongType = await py.refused({ op: 'limit', limiter: 'S', subject: 'agent-s' });
      expect(wrongType).toMatchObject({ type: 'ResponseError', message: `WRONGTYPE redlimit tiers: key ${key} holds another Redis type` });
      await redis.set(key, 'not|a|tiers|state|x');
      expect((await py.refused({ op: 'peek', limiter: 'S', subject: 'agent-s' })).message).toMatch(/^WRONGSTATE redlimit tiers_peek: /);
      expect(await redis.get(key)).toBe('not|a|tiers|state|x');
      await redis.del(key);
      expect((await node.peek('agent-s')).limits.map((l) => l.remaining)).toEqual([6, 40, 100_000, 50_000, 7]);
    });
    await node.close();
    await alone.close();
  });

  it('hash-tagged subjects and priority classes: the same key and the same shares on both sides', async () => {
    const prefix = uniquePrefix(`subj-tag-${mode}`).slice(0, -1);
    const priorities = { interactive: 1, batch: 0.5 };
    const limits = [TIER_LIMITS[0], TIER_LIMITS[2]];
    const node = createRateLimiter({ redis, prefix, layout: 'subject', priorities, limits: [...limits], denyCache: false, ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'T', prefix, layout: 'subject', priorities, limits: [PY_TIER_LIMITS[0], PY_TIER_LIMITS[2]] });
      const who = { id: 'ann', hashTag: 'acme' };
      const pyWho = { id: 'ann', hash_tag: 'acme' };
      const key = subjectKey(prefix, resolveSubject(who), 'm+tok');
      expect(key).toBe(`${prefix}:{acme}:m+tok:ann`);
      expect(await py.call({ op: 'keys', limiter: 'T', subject: pyWho })).toEqual([key]);
      expect((await node.limit(who)).remaining).toBe(5);
      expect(await py.call<PyDecision>({ op: 'limit', limiter: 'T', subject: pyWho, priority: 'batch' })).toMatchObject({ allowed: true, limit_name: 'm', remaining: 4, priority: { class_name: 'batch', shares: { m: 0.5, tok: 0.5 } } });
      // batch must leave half of 6 free: it may take down to 3, not a fourth unit.
      expect(await py.call<PyDecision>({ op: 'limit', limiter: 'T', subject: pyWho, priority: 'batch' })).toMatchObject({ allowed: true, remaining: 3 });
      const denied = await py.call<PyDecision>({ op: 'limit', limiter: 'T', subject: pyWho, priority: 'batch' });
      expect(denied).toMatchObject({ allowed: false, denied_by: 'm', remaining: 3 });
      expect(denied.retry_after_ms).toBeGreaterThan(0);
      expect(await node.limit(who, { priority: 'batch' })).toMatchObject({ allowed: false, deniedBy: 'm', remaining: 3 });
      expect(await py.call<PyDecision>({ op: 'limit', limiter: 'T', subject: pyWho, priority: 'interactive' })).toMatchObject({ allowed: true, remaining: 2 });
      expect(await node.limit(who)).toMatchObject({ allowed: true, remaining: 1 });
      expect(await redis.exists(key)).toBe(1);
      expect(await redis.exists(limitKey(prefix, resolveSubject(who), 'm', null))).toBe(0);
    });
    await node.close();
  });
});

/** A settlement as both sides must agree on it (the clock-bound reset_after_ms aside). */
function nodeSettled(s: { status: string; limits: { name: string; remaining: number }[] }) {
  return [s.status, s.limits.map((l) => [l.name, l.remaining])];
}
function pySettled(s: PySettlement) {
  return [s.status, s.limits.map((l) => [l.name, l.remaining])];
}

describe.each(['sync', 'async'] as const)("layout 'subject' (%s): reserve → commit / cancel between a Python Limiter and a Node limiter", (mode) => {
  it('tiers_reserve / tiers_settle on the one key: each side settles the other\'s handles, and every state is what Node alone would leave', async () => {
    const prefix = uniquePrefix(`subj-rsv-${mode}`).slice(0, -1);
    const priorities = { interactive: 1, batch: 0.5 };
    const make = () => createRateLimiter({ redis, prefix, layout: 'subject', priorities, limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    const node = make();
    // The oracle: the same sequence, all from Node, on another subject.
    const alone = make();
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'S', prefix, layout: 'subject', priorities, limits: PY_TIER_LIMITS });
      const who = 'agent-r';
      const key = subjectKey(prefix, resolveSubject(who), 'm+h+tok+d+tb');
      const decisions: [unknown, unknown][] = [];
      const settlements: [unknown, unknown][] = [];
      const pyReserve = async (cost?: Record<string, number>, priority?: string) => {
        const r = await py.call<PyDecision>({ op: 'reserve', limiter: 'S', subject: who, cost, priority });
        const o = await alone.reserve('oracle', { cost, priority });
        decisions.push([py2(r), node2(o)]);
        return [r.handle ?? null, o.handle] as const;
      };
      const nodeReserve = async (cost?: Record<string, number>) => {
        const r = await node.reserve(who, { cost });
        const o = await alone.reserve('oracle', { cost });
        decisions.push([node2(r), node2(o)]);
        return [r.handle, o.handle] as const;
      };
      const pyCommit = async (h: readonly [string | null, string | null], actual: Record<string, number> | number) => {
        settlements.push([pySettled(await py.call<PySettlement>({ op: 'commit', limiter: 'S', handle: h[0], actual })), nodeSettled(await alone.commit(h[1]!, actual))]);
      };
      const nodeCommit = async (h: readonly [string | null, string | null], actual: Record<string, number> | number) => {
        settlements.push([nodeSettled(await node.commit(h[0]!, actual)), nodeSettled(await alone.commit(h[1]!, actual))]);
      };
      const pyCancel = async (h: readonly [string | null, string | null]) => {
        settlements.push([pySettled(await py.call<PySettlement>({ op: 'cancel', limiter: 'S', handle: h[0] })), nodeSettled(await alone.cancel(h[1]!))]);
      };
      const nodeCancel = async (h: readonly [string | null, string | null]) => {
        settlements.push([nodeSettled(await node.cancel(h[0]!)), nodeSettled(await alone.cancel(h[1]!))]);
      };

      // Node reserves, Python commits: below the estimate on tok, above it on d.
      const h1 = await nodeReserve({ tok: 3_000, d: 3_000 });
      // Python reserves (the handle names the subject's one key; its record beside it, as Node's).
      const h2 = await pyReserve({ tok: 5_000 });
      const r2 = parseHandle(h2[0]!);
      expect(r2.keys).toEqual([key]);
      expect(r2.recordKey).toBe(`${prefix}:{${who}}:!rsv:${r2.rid}`);
      expect(await redis.exists(r2.recordKey)).toBe(1);
      await pyCommit(h1, { tok: 1_000, d: 4_000 });
      // Python reserves, Node commits above the estimate.
      await nodeCommit(h2, { tok: 8_000 });
      // Cancels, across: everything comes back (the request too).
      const h3 = await pyReserve();
      await nodeCancel(h3);
      const h4 = await nodeReserve({ tok: 2_000, d: 100 });
      await pyCancel(h4);
      // An actual for every limit, from Python on its own handle; a batch-class reservation.
      const h5 = await pyReserve({ tok: 10_000, d: 10_000 }, 'batch');
      // Batch keeps half of m's 6 free: m is down to 3, so a second batch reservation is denied by m
      // (without the class it would fit).
      const h5b = await pyReserve(undefined, 'batch');
      await pyCommit(h5, 2);
      // Once: a second settle on either side changes nothing and says so.
      await pyCommit(h2, { tok: 1 });
      await nodeCancel(h1);
      await pyCancel(h3);
      await nodeCommit(h4, 1);
      await pyCancel(h5);
      // Denied: more tokens than are left (a wait), and more than the limit holds (never); no handle, nothing taken.
      const h6 = await pyReserve({ tok: 95_000 });
      const h7 = await pyReserve({ tok: 100_001 });
      // Python reserves into the debt an overage left, then commits at 0 (all of it back).
      const h8 = await pyReserve({ tok: 1_000, d: 1_000 });
      await pyCommit(h8, { tok: 0, d: 0 });
      // Node reserves, Python commits with the subject it expects.
      const h9 = await nodeReserve({ tok: 700 });
      settlements.push([
        pySettled(await py.call<PySettlement>({ op: 'commit', limiter: 'S', handle: h9[0], actual: { tok: 900 }, subject: who })),
        nodeSettled(await alone.commit(h9[1]!, { tok: 900 })),
      ]);

      for (const [i, [shared, oracle]] of decisions.entries()) expect(shared, `decision ${i}`).toEqual(oracle);
      for (const [i, [shared, oracle]] of settlements.entries()) expect(shared, `settlement ${i}`).toEqual(oracle);
      // The sequence did what it says: admitted and denied, committed, cancelled and settled twice.
      expect(decisions.map(([d]) => (d as { allowed: boolean }).allowed)).toEqual([true, true, true, true, true, false, false, false, true, true]);
      expect(decisions[5]![0]).toMatchObject({ denied_by: 'm', remaining: 3 });
      expect(decisions[6]![0]).toMatchObject({ denied_by: 'tok' });
      expect(h5b[0]).toBeNull();
      expect(h6[0]).toBeNull();
      expect(h7[0]).toBeNull();
      expect(settlements.map(([s]) => (s as [string])[0])).toEqual([
        'committed', 'committed', 'cancelled', 'cancelled', 'committed',
        'already-settled', 'already-settled', 'already-settled', 'already-settled', 'already-settled',
        'committed', 'committed',
      ]);
      // One budget, as Node alone: what was committed (a limit an actual does not name keeps its
      // estimate, 1 unless named: h1, h2, h8, h9 take 1 request each, h5 commits 2 on every limit).
      const seen = await node.peek(who);
      expect(node2(seen)).toEqual(node2(await alone.peek('oracle')));
      expect(py2(await py.call<PyDecision>({ op: 'peek', limiter: 'S', subject: who }))).toEqual(node2(seen));
      expect(seen.limits.map((l) => l.remaining)).toEqual([6 - 6, 40 - 6, 100_000 - 1_000 - 8_000 - 2 - 0 - 900, 50_000 - 4_000 - 1 - 2 - 0 - 1, 7 - 6]);
      // One state key and the records (settled: tombstones until their deadline); no per-limit key.
      const stored = (await redis.keys(`${prefix}:{${who}}:*`)).sort();
      expect(stored.filter((k) => !k.includes(':!rsv:'))).toEqual([key]);
      expect(stored.filter((k) => k.includes(':!rsv:'))).toHaveLength(7);

      // Python's denied reservations wrote no record, and the key is one tiers state.
      expect((await redis.get(key))!.split('|')).toHaveLength(5);

      // A hash-tagged subject: the record shares the tag, Node settles it.
      const tagged = await py.call<PyDecision>({ op: 'reserve', limiter: 'S', subject: { id: 'ann', hash_tag: 'acme' }, cost: { tok: 50 } });
      const rt = parseHandle(tagged.handle!);
      expect(rt.keys).toEqual([subjectKey(prefix, resolveSubject({ id: 'ann', hashTag: 'acme' }), 'm+h+tok+d+tb')]);
      expect(rt.recordKey).toBe(`${prefix}:{acme}:!rsv:${rt.rid}`);
      expect(await redis.exists(rt.recordKey)).toBe(1);
      expect(nodeSettled(await node.commit(tagged.handle!, { tok: 10 }))).toEqual(['committed', [['m', -1], ['h', -1], ['tok', 99_990], ['d', -1], ['tb', -1]]]);
      expect((await node.peek({ id: 'ann', hashTag: 'acme' })).limits.map((l) => l.remaining)).toEqual([5, 39, 99_990, 49_999, 6]);
    });
    await node.close();
    await alone.close();
  });

  it('refusals: bad, foreign, other-layout and expired handles, bad actuals and estimates, a key holding something else; nothing changed', async () => {
    const prefix = uniquePrefix(`subj-rsv-bad-${mode}`).slice(0, -1);
    const limits = [...LLM_LIMITS];
    const node = createRateLimiter({ redis, prefix, layout: 'subject', limits, denyCache: false, ...UNHURRIED });
    const perLimit = createRateLimiter({ redis, prefix, layout: 'per-limit', limits, denyCache: false, ...UNHURRIED });
    // Node's message, without where Redis raised it (Node runs the scripts as Functions and keeps that tail).
    const nodeRefusal = (p: Promise<unknown>) => p.then(
      () => expect.unreachable('Node accepted it'),
      (e: Error) => e.message.replace(/ script: \S+, on @user_\w+:\d+\.$/, ''),
    );
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'S', prefix, layout: 'subject', limits: PY_LLM_LIMITS });
      await py.call({ op: 'limiter', id: 'P', prefix, layout: 'per-limit', limits: PY_LLM_LIMITS });
      const { handle } = await node.reserve('agent-x', { cost: { tpm: 2000 } });
      const bad = async (how: string) => py.call<string>({ op: 'tamper', handle, how });
      const commit = (h: unknown, actual: unknown = 1, extra: Record<string, unknown> = {}) => py.refused({ op: 'commit', limiter: 'S', handle: h, actual, ...extra });
      expect(await commit(await bad('edited-keys'))).toEqual({ type: 'InvalidArgument', message: 'redlimit settle: the handle was altered (its check does not match)', status: null });
      expect((await commit(await bad('cut'))).message).toMatch(/^redlimit settle: not a reservation handle \(rsv1\.<rid>\.<keys>\.<check>\)/);
      expect(await commit(await bad('unknown'))).toMatchObject({ type: 'ReservationError', status: 'unknown', message: expect.stringMatching(/^redlimit settle: no live reservation for this handle/) });
      expect(await py.refused({ op: 'cancel', limiter: 'S', handle: await bad('unknown') })).toMatchObject({ type: 'ReservationError', status: 'unknown' });
      // Another subject's handle: a mismatch before any round trip.
      expect(await commit(handle, 1, { subject: 'agent-y' })).toMatchObject({ type: 'ReservationError', status: 'mismatch' });
      expect((await commit(handle, -1)).message).toBe('redlimit settle: actual[0] must be between 0 and 1000000000000000, got -1');
      expect((await commit(handle, { tpm: 2 ** 60 })).message).toBe(`redlimit settle: actual[1] must be between 0 and 1000000000000000, got ${2 ** 60}`);
      expect((await commit(handle, 1.5)).message).toMatch(/^redlimit limiter: actual must be an integer/);
      expect((await commit(handle, { tokens: 5 })).message).toBe('redlimit limiter: actual names limit tokens, which this limiter does not have');
      // tiers_settle's own ranges.
      expect((await commit(handle, 1, { overage: 'forgive' })).message).toBe("redlimit tiers_settle: overage must be one of debt|cap, got 'forgive'");
      expect((await py.refused({ op: 'reserve', limiter: 'S', subject: 'agent-x', cost: { tpm: -5 } })).message).toBe('redlimit fixed_window: cost.tpm must be between 0 and 1000000000, got -5');
      expect((await py.refused({ op: 'reserve', limiter: 'S', subject: 'agent-x', ttl_ms: 0 })).message).toBe('redlimit tiers_reserve: ttl_ms must be between 1 and 86400000, got 0');
      expect((await py.refused({ op: 'reserve', limiter: 'S', subject: 'agent-x', priority: 'batch' })).message).toBe('redlimit limiter: priority "batch" is not a class of this limiter: it has no priorities');
      // A handle of a key per limit (settled on the subject's key: the upgrade test below) for
      // another subject than the caller names: a mismatch, before any round trip.
      const perHandle = (await perLimit.reserve('agent-x', { cost: { tpm: 10 } })).handle!;
      const other = await commit(perHandle, 1, { subject: 'agent-y' });
      expect(other.type).toBe('ReservationError');
      expect(other.message).toMatch(/not made for these keys/);
      // A subject layout's handle on a per-limit limiter: refused as the Node limiter refuses it.
      const pySubjectHandle = (await py.call<PyDecision>({ op: 'reserve', limiter: 'S', subject: 'agent-x', cost: { tpm: 10 } })).handle;
      expect((await py.refused({ op: 'commit', limiter: 'P', handle: pySubjectHandle, actual: 1 })).message).toBe(await nodeRefusal(perLimit.commit(pySubjectHandle!, 1)));
      // settle reads a tiers_reserve record as a value that is not its state: WRONGSTATE on both sides
      // (redis-py's ResponseError in Python, as settle's other key errors), nothing settled.
      const record = parseHandle(pySubjectHandle!).recordKey;
      expect(await py.refused({ op: 'cancel', limiter: 'P', handle: pySubjectHandle })).toMatchObject({ type: 'ResponseError', message: expect.stringMatching(new RegExp(`^WRONGSTATE redlimit settle: key ${record.replace(/[{}]/g, '\\$&')} `)) });
      expect(await nodeRefusal(perLimit.cancel(pySubjectHandle!))).toMatch(/WRONGSTATE/);
      // Both are still whole (nothing of the refusals was written): each settles once, on its own layout.
      expect((await node.peek('agent-x')).limits.map((l) => l.remaining)).toEqual([998, 97_990]);
      expect(await py.call<PySettlement>({ op: 'commit', limiter: 'S', handle, actual: { tpm: 1500 }, subject: 'agent-x' })).toMatchObject({ status: 'committed', limits: [{ name: 'rpm', remaining: -1 }, { name: 'tpm', remaining: 98_490 }] });
      expect((await py.call<PySettlement>({ op: 'cancel', limiter: 'S', handle: pySubjectHandle })).status).toBe('cancelled');
      expect((await py.call<PySettlement>({ op: 'cancel', limiter: 'P', handle: perHandle })).status).toBe('cancelled');
      expect((await node.peek('agent-x')).limits.map((l) => l.remaining)).toEqual([999, 98_500]);

      // A subject's key holding another Redis type or foreign state: redis-py's error, as a key per
      // limit's reserve raises it; no record written, the key untouched.
      const key = (id: string) => subjectKey(prefix, resolveSubject(id), 'rpm+tpm');
      await redis.hset(key('hash'), 'f', '1');
      await redis.set(key('garbage'), 'not|a-state');
      expect(await py.refused({ op: 'reserve', limiter: 'S', subject: 'hash' })).toMatchObject({ type: 'ResponseError', message: expect.stringMatching(/^WRONGTYPE /) });
      expect(await py.refused({ op: 'reserve', limiter: 'S', subject: 'garbage' })).toMatchObject({ type: 'ResponseError', message: expect.stringMatching(/^WRONGSTATE /) });
      expect(await redis.keys(`${prefix}:{hash}:*`)).toEqual([key('hash')]);
      expect(await redis.keys(`${prefix}:{garbage}:*`)).toEqual([key('garbage')]);
      expect(await redis.get(key('garbage'))).toBe('not|a-state');
      // A live reservation whose key became something else: the settle fails whole and can be retried.
      const live = await py.call<PyDecision>({ op: 'reserve', limiter: 'S', subject: 'agent-w', cost: { tpm: 300 } });
      const saved = await redis.get(key('agent-w'));
      await redis.del(key('agent-w'));
      await redis.hset(key('agent-w'), 'f', '1');
      expect(await py.refused({ op: 'commit', limiter: 'S', handle: live.handle, actual: 100 })).toMatchObject({ type: 'ResponseError', message: expect.stringMatching(/^WRONGTYPE /) });
      await redis.del(key('agent-w'));
      await redis.set(key('agent-w'), saved!);
      expect(await py.call<PySettlement>({ op: 'commit', limiter: 'S', handle: live.handle, actual: { tpm: 100 } })).toMatchObject({ status: 'committed', limits: [{ remaining: -1 }, { remaining: 99_900 }] });

      // Expired before it was settled: unknown, and it counted at its estimate.
      const short = await py.call<PyDecision>({ op: 'reserve', limiter: 'S', subject: 'agent-x', cost: { tpm: 700 }, ttl_ms: 1 });
      const ms = async () => {
        const [sec, usec] = await redis.time();
        return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      };
      const after = await ms();
      while ((await ms()) <= after + 1);
      expect(await py.refused({ op: 'commit', limiter: 'S', handle: short.handle, actual: 0 })).toMatchObject({ type: 'ReservationError', status: 'unknown' });
      expect((await node.peek('agent-x')).limits.map((l) => l.remaining)).toEqual([998, 97_800]);
    });
    await node.close();
    await perLimit.close();
  });
});

describe("layout 'subject' in Python: subject_key and the refusals", () => {
  it('subject_key builds the key keys.ts builds: plain, tagged and odd ids; one limit is its limit_key', async () => {
    const prefix = 'p-1';
    const ids = ['u1', 'user:42', 'a+b', 'with space', 'ünï', '\u{1F600}x', '\u{1F600}'.repeat(256), 'x'.repeat(512), '!block', '-'];
    const cases: { limits: string[]; id: string; hash_tag?: string }[] = [];
    for (const id of ids) {
      cases.push({ limits: ['m', 'h', 'd'], id });
      cases.push({ limits: ['m', 'h', 'd'], id, hash_tag: 'org-7' });
      cases.push({ limits: ['m', 'h', 'd'], id, hash_tag: id });
      cases.push({ limits: ['rpm'], id });
    }
    await withAgent('sync', async (py) => {
      for (const c of cases) {
        const s = resolveSubject(c.hash_tag === undefined ? c.id : { id: c.id, hashTag: c.hash_tag });
        const expected = c.limits.length === 1 ? limitKey(prefix, s, c.limits[0]!, null) : subjectKey(prefix, s, c.limits.join('+'));
        expect(await py.call({ op: 'subject_key', prefix, ...c })).toBe(expected);
      }
      // The default prefix, as the limiter's.
      expect(await py.call({ op: 'subject_key', limits: ['m', 'd'], id: 'u1' })).toBe(subjectKey('rl', resolveSubject('u1'), 'm+d'));
      // A Limiter with layout "subject" and one limit keeps the limit's own key (as Node).
      await py.call({ op: 'limiter', id: 'one', prefix, layout: 'subject', limits: [{ name: 'rpm', algo: 'sliding_log', limit: 3, period_ms: 60_000 }] });
      expect(await py.call({ op: 'keys', limiter: 'one', subject: 'u1' })).toEqual([limitKey(prefix, resolveSubject('u1'), 'rpm', null)]);
      // What keys refuse, subject_key refuses.
      const refused = (cmd: Record<string, unknown>) => py.refused({ op: 'subject_key', ...cmd }).then((e) => e.message);
      expect(await refused({ limits: ['m', 'd'], id: 'a{b' })).toMatch(/^redlimit keys: id must be a non-empty, well-formed string/);
      expect(await refused({ limits: ['m', 'd'], id: 'x'.repeat(513) })).toMatch(/^redlimit keys: id must be/);
      expect(await refused({ limits: ['m', 'd'], id: 'a', hash_tag: 't}' })).toMatch(/^redlimit keys: hash_tag must be/);
      expect(await refused({ limits: ['m', 'd'], id: 'a', prefix: 'p{' })).toMatch(/^redlimit keys: prefix must be/);
      expect(await refused({ limits: ['m+h'], id: 'a' })).toMatch(/^redlimit keys: limits\[0\] must be a limit name/);
      expect(await refused({ limits: [], id: 'a' })).toMatch(/^redlimit keys: limits must be a non-empty list/);
      expect(await refused({ limits: 'mhd', id: 'a' })).toMatch(/^redlimit keys: limits must be a non-empty list/);
      expect(await refused({ limits: ['m', 'm'], id: 'a' })).toBe('redlimit keys: limit name m is given twice');
    });
  });

  it("refuses what Node's layout 'subject' refuses: sliding_log, concurrency, scoped limits, blocks", async () => {
    const prefix = uniquePrefix('subj-refuse').slice(0, -1);
    const rate = { name: 'm', algo: 'gcra', limit: 5, periodMs: YEAR } as const;
    const pyRate = { name: 'm', algo: 'gcra', limit: 5, period_ms: YEAR };
    const cases: { ts: Record<string, unknown>[]; py: Record<string, unknown>[]; blocks?: boolean; pyMessage: string; tsMessage: RegExp }[] = [
      {
        ts: [rate, { name: 'log', algo: 'sliding_log', limit: 5, periodMs: YEAR }],
        py: [pyRate, { name: 'log', algo: 'sliding_log', limit: 5, period_ms: YEAR }],
        pyMessage: `redlimit limiter: layout "subject" holds limits of algo ${[...TIERS_ALGOS].join(', ')}; limit log is sliding_log: use layout="per-limit"`,
        tsMessage: /limit log is sliding_log/,
      },
      {
        ts: [rate, { name: 'inflight', algo: 'concurrency', limit: 2 }],
        py: [pyRate, { name: 'inflight', algo: 'concurrency', limit: 2, period_ms: 60_000 }],
        pyMessage: `redlimit limiter: layout "subject" holds limits of algo ${[...TIERS_ALGOS].join(', ')}; limit inflight is concurrency: use layout="per-limit"`,
        tsMessage: /limit inflight is concurrency/,
      },
      {
        ts: [rate, { name: 'org', algo: 'quota', limit: 5, unit: 'day', scope: 'org' }],
        py: [pyRate, { name: 'org', algo: 'quota', limit: 5, unit: 'day', scope: 'org' }],
        pyMessage: 'redlimit limiter: layout "subject" holds limits keyed by the id; limit org is keyed by scope org: use layout="per-limit"',
        tsMessage: /limit org is keyed by scope org/,
      },
      {
        ts: [rate, { name: 'h', algo: 'fixed_window', limit: 5, periodMs: YEAR }],
        py: [pyRate, { name: 'h', algo: 'fixed_window', limit: 5, period_ms: YEAR }],
        blocks: true,
        pyMessage: 'redlimit limiter: layout "subject" does not take blocks=True (the penalty box has a key of its own); use layout="per-limit"',
        tsMessage: /does not take blocks/,
      },
    ];
    await withAgent('sync', async (py) => {
      for (const c of cases) {
        expect(() => createRateLimiter({ redis, prefix, layout: 'subject', blocks: c.blocks, limits: c.ts as never })).toThrow(c.tsMessage);
        expect((await py.refused({ op: 'limiter', id: 'X', prefix, layout: 'subject', blocks: c.blocks ?? false, limits: c.py })).message).toBe(c.pyMessage);
        // By default (auto) the same limits take a key per limit, on both sides alike.
        await createRateLimiter({ redis, prefix, blocks: c.blocks, limits: c.ts as never }).close();
        await py.call({ op: 'limiter', id: 'X', prefix, blocks: c.blocks ?? false, limits: c.py });
      }
      expect((await py.refused({ op: 'limiter', id: 'X', prefix, layout: 'tiers', limits: [pyRate] })).message).toBe("redlimit limiter: layout must be auto, per-limit or subject, got 'tiers'");
      // One limit of any algo: its own key, whatever the layout (Node takes it too).
      await createRateLimiter({ redis, prefix, layout: 'subject', limits: { name: 'log', algo: 'sliding_log', limit: 5, periodMs: YEAR } }).close();
      await py.call({ op: 'limiter', id: 'one', prefix, layout: 'subject', limits: [{ name: 'log', algo: 'sliding_log', limit: 5, period_ms: YEAR }] });
    });
  });
});

describe.each(['sync', 'async'] as const)('refund and reset from Python, a key per limit (%s)', (mode) => {
  it("each limit's refund script and reset, as the Node limiter's refund and reset", async () => {
    const prefix = uniquePrefix(`refund-${mode}`).slice(0, -1);
    const limits = [...TIER_LIMITS, { name: 'log', algo: 'sliding_log', limit: 10, periodMs: YEAR }] as const;
    const node = createRateLimiter({ redis, prefix, limits: [...limits], denyCache: false, ...UNHURRIED });
    const alone = createRateLimiter({ redis, prefix, limits: [...limits], denyCache: false, ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'P', prefix, limits: [...PY_TIER_LIMITS, { name: 'log', algo: 'sliding_log', limit: 10, period_ms: YEAR }] });
      for (let i = 0; i < 4; i++) {
        await node.limit('agent-p', { cost: { tok: 5_000, d: 1_000 } });
        await alone.limit('oracle', { cost: { tok: 5_000, d: 1_000 } });
      }
      const refunded = await py.call<{ name: string; remaining: number }[]>({ op: 'refund', limiter: 'P', subject: 'agent-p', cost: 2 });
      await alone.refund('oracle', { cost: 2 });
      // sliding_log cannot give units back: left out, as Node leaves it.
      expect(refunded.map((l) => l.name)).toEqual(['m', 'h', 'tok', 'd', 'tb']);
      expect(node2(await node.peek('agent-p'))).toEqual(node2(await alone.peek('oracle')));
      expect((await node.peek('agent-p')).limits.map((l) => l.remaining)).toEqual([4, 38, 80_002, 46_002, 5, 6]);
      // Named limits only: the others are not sent anything.
      expect((await py.call<{ name: string; remaining: number }[]>({ op: 'refund', limiter: 'P', subject: 'agent-p', cost: { tok: 1_000 } })).map((l) => [l.name, l.remaining])).toEqual([['tok', 81_002]]);
      await alone.refund('oracle', { cost: { tok: 1_000 } });
      expect(node2(await node.peek('agent-p'))).toEqual(node2(await alone.peek('oracle')));
      await py.call({ op: 'reset', limiter: 'P', subject: 'agent-p', limits: ['d', 'log'] });
      await alone.reset('oracle', { limits: ['d', 'log'] });
      expect(node2(await node.peek('agent-p'))).toEqual(node2(await alone.peek('oracle')));
      expect((await node.peek('agent-p')).limits.map((l) => l.remaining)).toEqual([4, 38, 81_002, 50_000, 5, 10]);
      expect((await py.refused({ op: 'reset', limiter: 'P', subject: 'agent-p', limits: ['nope'] })).message).toBe('redlimit limiter: reset names limit "nope", which no limit of this limiter has');
      await py.call({ op: 'reset', limiter: 'P', subject: 'agent-p' });
      expect(await redis.keys(`${prefix}:{agent-p}:*`)).toEqual([]);
      // With blocks: naming limits leaves the block; the default reset lifts it, as Node's.
      const guarded = createRateLimiter({ redis, prefix: `${prefix}-b`, blocks: true, limits: [TIER_LIMITS[0]], denyCache: false, ...UNHURRIED });
      await py.call({ op: 'limiter', id: 'B', prefix: `${prefix}-b`, blocks: true, limits: [PY_TIER_LIMITS[0]] });
      await guarded.limit('agent-b');
      await guarded.block('agent-b', YEAR);
      await py.call({ op: 'reset', limiter: 'B', subject: 'agent-b', limits: ['m'] });
      expect(await guarded.peek('agent-b')).toMatchObject({ allowed: false, deniedBy: 'block' });
      expect(await py.call<PyDecision>({ op: 'peek', limiter: 'B', subject: 'agent-b' })).toMatchObject({ allowed: false, denied_by: 'block' });
      await py.call({ op: 'reset', limiter: 'B', subject: 'agent-b' });
      expect(await guarded.peek('agent-b')).toMatchObject({ allowed: true, remaining: 6 });
      await guarded.close();
    });
    await node.close();
    await alone.close();
  });
});

// --- layout 'auto' (the default on both sides): the same layout, and the upgrade from a key per limit ---

describe.each(['sync', 'async'] as const)("layout 'auto' (%s): a default Python Limiter picks the layout a default Node limiter picks", (mode) => {
  it('the subject layout for limits one key can hold, a key per limit for the others; call for call as Node decides', async () => {
    const m = TIER_LIMITS[0];
    const h = TIER_LIMITS[1];
    const cases: { what: string; ts: readonly Record<string, unknown>[]; py: Record<string, unknown>[]; blocks?: boolean; scopes?: Record<string, string>; subject: boolean }[] = [
      { what: 'five tiers', ts: TIER_LIMITS, py: PY_TIER_LIMITS, subject: true },
      { what: 'rpm + tpm', ts: LLM_LIMITS, py: PY_LLM_LIMITS, subject: true },
      { what: 'with a sliding_log', ts: [m, h, { name: 'log', algo: 'sliding_log', limit: 10, periodMs: YEAR }], py: [PY_TIER_LIMITS[0]!, PY_TIER_LIMITS[1]!, { name: 'log', algo: 'sliding_log', limit: 10, period_ms: YEAR }], subject: false },
      {
        what: 'with a scoped limit',
        ts: [m, { name: 'org', algo: 'quota', limit: 50_000, unit: 'day', scope: 'org' }],
        py: [PY_TIER_LIMITS[0]!, { name: 'org', algo: 'quota', limit: 50_000, unit: 'day', scope: 'org' }],
        scopes: { org: 'acme' },
        subject: false,
      },
      { what: 'with blocks', ts: [m, h], py: [PY_TIER_LIMITS[0]!, PY_TIER_LIMITS[1]!], blocks: true, subject: false },
    ];
    await withAgent(mode, async (py) => {
      for (const [n, c] of cases.entries()) {
        const prefix = uniquePrefix(`auto-${mode}-${n}`).slice(0, -1);
        const make = () => createRateLimiter({ redis, prefix, blocks: c.blocks, limits: [...c.ts] as never, denyCache: false, ...UNHURRIED });
        const node = make();
        const alone = make(); // the oracle: every call from Node, on another subject
        await py.call({ op: 'limiter', id: 'A', prefix, blocks: c.blocks ?? false, limits: c.py });
        const who = { id: 'agent-a', ...(c.scopes ? { scopes: c.scopes } : {}) };
        const oracleWho = { id: 'oracle', ...(c.scopes ? { scopes: c.scopes } : {}) };
        const s = resolveSubject(who);
        const names = c.ts.map((l) => l.name as string);
        const stateKeys = c.subject ? [subjectKey(prefix, s, names.join('+'))] : c.ts.map((l) => limitKey(prefix, s, l.name as string, (l.scope as string | undefined) ?? null));
        expect(await py.call({ op: 'keys', limiter: 'A', subject: who }), c.what).toEqual(c.blocks ? [...stateKeys, blockKey(prefix, s)] : stateKeys);
        // Node takes the even calls, Python the odd ones: 8 requests where the first limit holds 6.
        const costs = [undefined, { [names[1]!]: 3 }, undefined, undefined, { [names[1]!]: 2 }, undefined, undefined, undefined];
        const shared: unknown[] = [];
        const oracle: unknown[] = [];
        for (const [i, cost] of costs.entries()) {
          shared.push(i % 2 === 0 ? node2(await node.limit(who, cost ? { cost } : {})) : py2(await py.call<PyDecision>({ op: 'limit', limiter: 'A', subject: who, cost })));
          oracle.push(node2(await alone.limit(oracleWho, cost ? { cost } : {})));
        }
        expect(shared, c.what).toEqual(oracle);
        expect(shared.map((d) => (d as { allowed: boolean }).allowed), c.what).toEqual(names[0] === 'rpm' ? Array(8).fill(true) : [true, true, true, true, true, true, false, false]);
        // Both sides wrote the same keys, and only those.
        expect((await redis.keys(`${prefix}:{agent-a}:*`)).sort(), c.what).toEqual([...stateKeys].sort());
        expect(py2(await py.call<PyDecision>({ op: 'peek', limiter: 'A', subject: who }))).toEqual(node2(await node.peek(who)));
        await node.close();
        await alone.close();
      }
    });
  });
});

describe.each(['sync', 'async'] as const)("layout 'auto' (%s): the upgrade from a key per limit, in Python", (mode) => {
  it('a default Limiter takes over the states a per-limit Limiter left: the counts continue exactly, the per-limit keys go', async () => {
    const prefix = uniquePrefix(`adopt-${mode}`).slice(0, -1);
    // The oracle: the same calls from Node with a key per limit throughout, on another subject.
    const alone = createRateLimiter({ redis, prefix, layout: 'per-limit', limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    const node = createRateLimiter({ redis, prefix, limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'Old', prefix, layout: 'per-limit', limits: PY_TIER_LIMITS });
      await py.call({ op: 'limiter', id: 'New', prefix, limits: PY_TIER_LIMITS });
      const ownKeys = (id: string) => TIER_LIMITS.map((l) => limitKey(prefix, resolveSubject(id), l.name, null));
      const oneKey = (id: string) => subjectKey(prefix, resolveSubject(id), 'm+h+tok+d+tb');
      const stored = async (id: string) => (await redis.keys(`${prefix}:{${id}}:*`)).sort();
      const both = async (id: string, limiter: string, cost?: Record<string, number>) => {
        const d = py2(await py.call<PyDecision>({ op: 'limit', limiter, subject: id, cost }));
        expect(d).toEqual(node2(await alone.limit('oracle', cost ? { cost } : {})));
        return d;
      };

      // Before the upgrade: some units taken on every tier, each limit in its own key.
      await both('agent-u', 'Old', { tok: 2_000, d: 3_000 });
      await both('agent-u', 'Old', { h: 4, tok: 500, tb: 2 });
      expect(await stored('agent-u')).toEqual(ownKeys('agent-u').sort());
      const before = (await alone.peek('oracle')).limits.map((l) => l.remaining);
      expect(before).toEqual([4, 35, 97_500, 46_999, 4]);
      // A peek takes them over without writing anything: the per-limit keys stay.
      expect(py2(await py.call<PyDecision>({ op: 'peek', limiter: 'New', subject: 'agent-u' }))).toEqual(node2(await alone.peek('oracle')));
      expect(await stored('agent-u')).toEqual(ownKeys('agent-u').sort());
      // The first admitted decision of the default limiter continues every count, and moves the
      // states into the subject's one key.
      const first = await both('agent-u', 'New', { tok: 1_000 });
      expect(first.limits.map((l) => l[2])).toEqual([3, 34, 96_500, 46_998, 3]);
      expect(await stored('agent-u')).toEqual([oneKey('agent-u')]);
      // And on: as a key per limit would have decided, to the denial.
      for (const cost of [undefined, { d: 40_000 }, undefined, { d: 10_000 }, undefined, undefined]) await both('agent-u', 'New', cost);
      expect((await node.peek('agent-u')).limits.map((l) => l.remaining)).toEqual((await alone.peek('oracle')).limits.map((l) => l.remaining));
      expect((await node.peek('agent-u')).limits[0]!.remaining).toBe(0);
      expect(await stored('agent-u')).toEqual([oneKey('agent-u')]);

      // reserve / commit and refund take the states over as well.
      await py.call({ op: 'limit', limiter: 'Old', subject: 'agent-v', cost: { tok: 3_000 } });
      const r = await py.call<PyDecision>({ op: 'reserve', limiter: 'New', subject: 'agent-v', cost: { tok: 1_000 } });
      expect(r.limits.map((l) => [l.name, l.remaining])).toEqual([['m', 4], ['h', 38], ['tok', 96_000], ['d', 49_998], ['tb', 5]]);
      expect(await stored('agent-v')).toEqual([oneKey('agent-v'), parseHandle(r.handle!).recordKey].sort());
      expect((await py.call<PySettlement>({ op: 'commit', limiter: 'New', handle: r.handle, actual: { tok: 400 } })).limits.map((l) => [l.name, l.remaining])).toEqual([['m', -1], ['h', -1], ['tok', 96_600], ['d', -1], ['tb', -1]]);
      await py.call({ op: 'limit', limiter: 'Old', subject: 'agent-f', cost: { tok: 3_000 } });
      const refunded = await py.call<{ name: string; remaining: number }[]>({ op: 'refund', limiter: 'New', subject: 'agent-f', cost: { tok: 1_000 } });
      expect(refunded.map((l) => [l.name, l.remaining])).toEqual([['m', 5], ['h', 39], ['tok', 98_000], ['d', 49_999], ['tb', 6]]);
      expect(await stored('agent-f')).toEqual([oneKey('agent-f')]);
      expect((await node.peek('agent-f')).limits.map((l) => l.remaining)).toEqual([5, 39, 98_000, 49_999, 6]);
    });
    await node.close();
    await alone.close();
  });

  it("a reservation a per-limit Limiter made (in flight across the upgrade) is committed or cancelled by a default Limiter (or Node's) on the subject's key, which takes the own keys over; another subject's handle: a mismatch before any round trip", async () => {
    const prefix = uniquePrefix(`adopt-rsv-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'Old', prefix, layout: 'per-limit', limits: PY_TIER_LIMITS });
      await py.call({ op: 'limiter', id: 'New', prefix, limits: PY_TIER_LIMITS });
      const ownKeys = (id: string) => TIER_LIMITS.map((l) => limitKey(prefix, resolveSubject(id), l.name, null));
      const oneKey = (id: string) => subjectKey(prefix, resolveSubject(id), 'm+h+tok+d+tb');
      const stored = async (id: string) => (await redis.keys(`${prefix}:{${id}}:*`)).sort();
      const remaining = async (id: string) => (await node.peek(id)).limits.map((l) => l.remaining);

      // Commit above the estimate: the overage charged on the subject's key.
      const r = await py.call<PyDecision>({ op: 'reserve', limiter: 'Old', subject: 'agent-p', cost: { tok: 1_000 } });
      expect(parseHandle(r.handle!).keys).toEqual(ownKeys('agent-p'));
      const committed = await py.call<PySettlement>({ op: 'commit', limiter: 'New', handle: r.handle, actual: { tok: 1_500 }, subject: 'agent-p' });
      expect(committed.status).toBe('committed');
      expect(committed.limits.map((l) => [l.name, l.remaining])).toEqual([['m', -1], ['h', -1], ['tok', 98_500], ['d', -1], ['tb', -1]]);
      expect(await stored('agent-p')).toEqual([oneKey('agent-p'), parseHandle(r.handle!).recordKey].sort());
      expect(await remaining('agent-p')).toEqual([5, 39, 98_500, 49_999, 6]);
      expect((await py.call<PySettlement>({ op: 'cancel', limiter: 'New', handle: r.handle })).status).toBe('already-settled');

      // Another subject's handle (the caller names agent-p): a mismatch, nothing changed; then cancelled.
      const q = await py.call<PyDecision>({ op: 'reserve', limiter: 'Old', subject: 'agent-q', cost: { tok: 1_000 } });
      expect(await py.refused({ op: 'commit', limiter: 'New', handle: q.handle, actual: 1, subject: 'agent-p' })).toMatchObject({ type: 'ReservationError', status: 'mismatch' });
      expect(await stored('agent-q')).toEqual([...ownKeys('agent-q'), parseHandle(q.handle!).recordKey].sort());
      expect((await py.call<PySettlement>({ op: 'cancel', limiter: 'New', handle: q.handle })).status).toBe('cancelled');
      expect(await stored('agent-q')).toEqual([parseHandle(q.handle!).recordKey]);
      expect(await remaining('agent-q')).toEqual([6, 40, 100_000, 50_000, 7]);

      // Python's per-limit handle committed by Node's default limiter, below the estimate.
      const n = await py.call<PyDecision>({ op: 'reserve', limiter: 'Old', subject: 'agent-n', cost: { tok: 1_000 } });
      expect((await node.commit(n.handle!, { tok: 250 })).status).toBe('committed');
      expect(await remaining('agent-n')).toEqual([5, 39, 99_750, 49_999, 6]);
      expect(await stored('agent-n')).toEqual([oneKey('agent-n'), parseHandle(n.handle!).recordKey].sort());
    });
    await node.close();
  });

  it('a reset on the subject layout deletes the per-limit keys of the limits it names too', async () => {
    const prefix = uniquePrefix(`adopt-reset-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix, limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'Old', prefix, layout: 'per-limit', limits: PY_TIER_LIMITS });
      await py.call({ op: 'limiter', id: 'New', prefix, limits: PY_TIER_LIMITS });
      const own = (name: string) => limitKey(prefix, resolveSubject('agent-r'), name, null);
      const oneKey = subjectKey(prefix, resolveSubject('agent-r'), 'm+h+tok+d+tb');
      const stored = async () => (await redis.keys(`${prefix}:{agent-r}:*`)).sort();
      const remaining = async () => (await py.call<PyDecision>({ op: 'peek', limiter: 'New', subject: 'agent-r' })).limits.map((l) => l.remaining);
      await py.call({ op: 'limit', limiter: 'Old', subject: 'agent-r', cost: { tok: 2_000, d: 3_000 } });
      // Some limits, before the subject's key holds anything: exactly their own keys go (the
      // others are still there to be taken over).
      await py.call({ op: 'reset', limiter: 'New', subject: 'agent-r', limits: ['tok', 'd'] });
      expect(await stored()).toEqual([own('m'), own('h'), own('tb')].sort());
      expect(await remaining()).toEqual([5, 39, 100_000, 50_000, 6]);
      // The whole subject: every own key goes, nothing comes back to be adopted.
      await py.call({ op: 'reset', limiter: 'New', subject: 'agent-r' });
      expect(await stored()).toEqual([]);
      expect(await remaining()).toEqual([6, 40, 100_000, 50_000, 7]);
      // A rolling deploy: an old process counts on the own keys while the new one counts on the
      // subject's key (each on its own keys). A reset from the new one clears both.
      await py.call({ op: 'limit', limiter: 'New', subject: 'agent-r', cost: { tok: 100 } });
      await py.call({ op: 'limit', limiter: 'Old', subject: 'agent-r', cost: { tok: 200 } });
      expect(await stored()).toEqual([oneKey, ...TIER_LIMITS.map((l) => own(l.name))].sort());
      expect((await node.peek('agent-r')).limits.map((l) => l.remaining)).toEqual([5, 39, 99_900, 49_999, 6]);
      await py.call({ op: 'reset', limiter: 'New', subject: 'agent-r' });
      expect(await stored()).toEqual([]);
      expect((await node.peek('agent-r')).limits.map((l) => l.remaining)).toEqual([6, 40, 100_000, 50_000, 7]);
    });
    await node.close();
  });
});

describe.each(['sync', 'async'] as const)('the adoption marker (%s): a Python Limiter looks for per-limit keys only while they may exist, as Node\'s', (mode) => {
  const NAMES = 'm+h+tok+d+tb';
  const markerOf = (prefix: string) => `${prefix}:!adopt:${NAMES}`;
  const own = (prefix: string, id: string, name: string) => limitKey(prefix, resolveSubject(id), name, null);
  // Limit m alone: its key is m's own key (what a key per limit kept), and it writes no marker.
  const single = (prefix: string) => createRateLimiter({ redis, prefix, limits: [TIER_LIMITS[0]], denyCache: false, ...UNHURRIED });

  it('a Python-only fleet: none on a prefix with no key per limit (its decisions stop adopting), found where one is kept (taken over)', async () => {
    const fresh = uniquePrefix(`py-none-${mode}`).slice(0, -1);
    const kept = uniquePrefix(`py-found-${mode}`).slice(0, -1);
    const m = single(fresh);
    const k = single(kept);
    await k.limit('agent-k', { cost: 4 }); // kept a key per limit before the fleet started
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'New', prefix: fresh, limits: PY_TIER_LIMITS });
      // The first decision finds no marker: it claims it and scans beside the calls (which adopt meanwhile).
      expect((await py.call<PyDecision>({ op: 'limit', limiter: 'New', subject: 'agent-a' })).allowed).toBe(true);
      expect(await py.call({ op: 'adopting', limiter: 'New' })).toBe(false);
      expect(await redis.get(markerOf(fresh))).toBe('none');
      const pttl = await redis.pttl(markerOf(fresh));
      expect(pttl).toBeGreaterThan(NONE_MS - 60_000);
      expect(pttl).toBeLessThanOrEqual(NONE_MS);
      // From now on no adopt: a key per limit written after the scan is neither read nor taken.
      await m.limit('agent-b', { cost: 4 });
      expect((await py.call<PyDecision>({ op: 'limit', limiter: 'New', subject: 'agent-b' })).limits[0]!.remaining).toBe(5);
      expect(await redis.exists(own(fresh, 'agent-b', 'm'))).toBe(1);

      // A key per limit was there: found for the hour, and the subject's count continues from it.
      await py.call({ op: 'limiter', id: 'Kept', prefix: kept, limits: PY_TIER_LIMITS });
      expect((await py.call<PyDecision>({ op: 'limit', limiter: 'Kept', subject: 'agent-c' })).limits[0]!.remaining).toBe(5);
      expect(await py.call({ op: 'adopting', limiter: 'Kept' })).toBe(true);
      expect(await redis.get(markerOf(kept))).toBe('found');
      const window = await redis.pttl(markerOf(kept));
      expect(window).toBeGreaterThan(FOUND_MS - 60_000);
      expect(window).toBeLessThanOrEqual(FOUND_MS);
      expect((await py.call<PyDecision>({ op: 'limit', limiter: 'Kept', subject: 'agent-k' })).limits[0]!.remaining).toBe(1);
      expect(await redis.exists(own(kept, 'agent-k', 'm'))).toBe(0);
    });
    await m.close();
    await k.close();
  });

  it("Node and Python follow each other's marker; an operator's none is believed; a Python limiter pinned to a key per limit keeps it at found", async () => {
    // Node scanned first: Python reads its none and does not scan again (the marker is not rewritten).
    const byNode = uniquePrefix(`py-node-${mode}`).slice(0, -1);
    const node = createRateLimiter({ redis, prefix: byNode, limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
    await node.ready();
    for (let i = 0; i < 300 && !['none', 'found'].includes((await redis.get(markerOf(byNode))) ?? ''); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await redis.get(markerOf(byNode))).toBe('none');
    // Python scanned first: a Node limiter started afterwards follows it.
    const byPython = uniquePrefix(`py-first-${mode}`).slice(0, -1);
    // An operator's none, on a prefix where a key per limit is kept: believed (not taken over).
    const told = uniquePrefix(`py-told-${mode}`).slice(0, -1);
    const m = single(told);
    await m.limit('agent-t', { cost: 4 });
    await redis.set(markerOf(told), 'none', 'PX', 600_000);
    // Pinned to a key per limit where the default would take one key: found on its first call.
    const pinned = uniquePrefix(`py-pinned-${mode}`).slice(0, -1);
    await redis.set(markerOf(pinned), 'none', 'PX', 600_000);
    await withAgent(mode, async (py) => {
      await py.call({ op: 'limiter', id: 'FromNode', prefix: byNode, limits: PY_TIER_LIMITS });
      await redis.pexpire(markerOf(byNode), 500_000);
      await py.call({ op: 'limit', limiter: 'FromNode', subject: 'agent-n' });
      expect(await py.call({ op: 'adopting', limiter: 'FromNode' })).toBe(false);
      expect(await redis.pttl(markerOf(byNode))).toBeLessThanOrEqual(500_000);

      await py.call({ op: 'limiter', id: 'First', prefix: byPython, limits: PY_TIER_LIMITS });
      await py.call({ op: 'limit', limiter: 'First', subject: 'agent-p' });
      expect(await py.call({ op: 'adopting', limiter: 'First' })).toBe(false);
      const later = createRateLimiter({ redis, prefix: byPython, limits: [...TIER_LIMITS], denyCache: false, ...UNHURRIED });
      await later.ready();
      for (let i = 0; i < 300 && later.stats().adopting !== false; i++) await new Promise((r) => setTimeout(r, 10));
      expect(later.stats().adopting).toBe(false);
      expect(await redis.get(markerOf(byPython))).toBe('none');
      await later.close();

      await py.call({ op: 'limiter', id: 'Told', prefix: told, limits: PY_TIER_LIMITS });
      expect((await py.call<PyDecision>({ op: 'limit', limiter: 'Told', subject: 'agent-t' })).limits[0]!.remaining).toBe(5);
      expect(await py.call({ op: 'adopting', limiter: 'Told' })).toBe(false);
      expect(await redis.exists(own(told, 'agent-t', 'm'))).toBe(1);

      await py.call({ op: 'limiter', id: 'Pinned', prefix: pinned, layout: 'per-limit', limits: PY_TIER_LIMITS });
      expect(await py.call({ op: 'adopting', limiter: 'Pinned' })).toBe(null);
      await py.call({ op: 'limit', limiter: 'Pinned', subject: 'agent-q' });
      expect(await redis.get(markerOf(pinned))).toBe('found');
      expect(await redis.pttl(markerOf(pinned))).toBeGreaterThan(FOUND_MS - 60_000);
      // And a default limiter of the prefix now takes the pinned one's keys over.
      await py.call({ op: 'limiter', id: 'After', prefix: pinned, limits: PY_TIER_LIMITS });
      expect((await py.call<PyDecision>({ op: 'limit', limiter: 'After', subject: 'agent-q' })).limits[0]!.remaining).toBe(4);
      expect(await py.call({ op: 'adopting', limiter: 'After' })).toBe(true);
    });
    await node.close();
    await m.close();
  });
});

describe('the adoption marker: a scan the server refuses', () => {
  it('an ACL without SCAN: the scan fails, the marker says found for the hour (sync and asyncio), and decisions keep adopting', async () => {
    const user = `py-noscan-${Date.now()}`;
    await redis.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-scan');
    try {
      const prefixes = [uniquePrefix('py-acl-sync').slice(0, -1), uniquePrefix('py-acl-async').slice(0, -1)];
      const url = new URL(server.url);
      url.username = user;
      url.password = 'pw';
      const code = `import asyncio, json, sys
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'generated/python'))})
import redis, redis.asyncio, redlimit_scripts as rl
url = ${JSON.stringify(url.toString())}
limits = [rl.Limit(**l) for l in json.loads(${JSON.stringify(JSON.stringify(PY_TIER_LIMITS))})]
prefixes = json.loads(${JSON.stringify(JSON.stringify(prefixes))})
out = []
lim = rl.Limiter(redis.Redis.from_url(url), limits, prefix=prefixes[0])
lim.limit("agent-x")
lim._adoption.worker.join()
out.append(lim.adopting)
async def run():
    client = redis.asyncio.Redis.from_url(url)
    lim = rl.Limiter(client, limits, prefix=prefixes[1])
    await lim.limit("agent-x")
    await lim._adoption.worker
    out.append(lim.adopting)
    await client.close()
asyncio.run(run())
print(json.dumps(out))`;
      const { stdout } = await run(PYTHON, ['-c', code], { timeout: 30_000 });
      expect(JSON.parse(stdout)).toEqual([true, true]);
      for (const prefix of prefixes) {
        expect(await redis.get(`${prefix}:!adopt:m+h+tok+d+tb`)).toBe('found');
        expect(await redis.pttl(`${prefix}:!adopt:m+h+tok+d+tb`)).toBeGreaterThan(FOUND_MS - 60_000);
      }
    } finally {
      await redis.call('ACL', 'DELUSER', user);
    }
  });
});

describe('the adoption marker: the states Node follows, followed alike', () => {
  it('a claim another process holds is waited out (then claimed and scanned); an operator\'s marker without TTL is believed; INFO refused is not a failed scan; a client of one connection scans beside its calls', async () => {
    const user = `py-noinfo-${Date.now()}`;
    await redis.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-info');
    const P = {
      claimed: uniquePrefix('py-claimed').slice(0, -1),
      forever: uniquePrefix('py-forever').slice(0, -1),
      noinfo: uniquePrefix('py-noinfo').slice(0, -1),
      single: uniquePrefix('py-single').slice(0, -1),
    };
    const markerOf = (prefix: string) => `${prefix}:!adopt:m+h+tok+d+tb`;
    await redis.set(markerOf(P.forever), 'none'); // an operator's, without TTL
    try {
      const url = new URL(server.url);
      const noInfo = new URL(server.url);
      noInfo.username = user;
      noInfo.password = 'pw';
      const code = `import json, sys, time
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'generated/python'))})
import redis, redlimit_scripts as rl
P = json.loads(${JSON.stringify(JSON.stringify(P))})
limits = [rl.Limit(**l) for l in json.loads(${JSON.stringify(JSON.stringify(PY_TIER_LIMITS))})]
out = {}
client = redis.Redis.from_url(${JSON.stringify(url.toString())})
lim = rl.Limiter(client, limits, prefix=P["claimed"])
client.set(lim._adoption.marker, "scanning", px=1_000)  # another process scanning (it will not finish)
looked = time.monotonic()
lim.limit("a")
out["claimed"] = [lim.adopting, lim._adoption.worker is None, client.get(lim._adoption.marker).decode()]
while client.exists(lim._adoption.marker):  # the claim lapses
    time.sleep(0.05)
time.sleep(max(0.0, 2.1 - (time.monotonic() - looked)))  # the next look is due 2 s after the last
lim.limit("b")
lim._adoption.worker.join()
out["claimed"] += [lim.adopting, client.get(lim._adoption.marker).decode()]
lim = rl.Limiter(client, limits, prefix=P["forever"])
lim.limit("a")
out["forever"] = [lim.adopting, lim._adoption.worker is None, client.pttl(lim._adoption.marker)]
lim = rl.Limiter(redis.Redis.from_url(${JSON.stringify(noInfo.toString())}), limits, prefix=P["noinfo"])
lim.limit("a")
lim._adoption.worker.join()
out["noinfo"] = [lim.adopting, client.get(lim._adoption.marker).decode()]
one = redis.Redis(host=${JSON.stringify(url.hostname)}, port=${url.port}, single_connection_client=True, socket_timeout=10)
lim = rl.Limiter(one, limits, prefix=P["single"])
out["single"] = [lim.limit("a").allowed and all(lim.limit(f"s{i}").allowed for i in range(200))]
lim._adoption.worker.join()
out["single"] += [lim.adopting, client.get(lim._adoption.marker).decode()]
print(json.dumps(out))`;
      const { stdout } = await run(PYTHON, ['-c', code], { timeout: 60_000 });
      expect(JSON.parse(stdout)).toEqual({
        // Held by another: adopting, no scan of its own, the claim left as it was; once lapsed: scanned, none.
        claimed: [true, true, 'scanning', false, 'none'],
        forever: [false, true, -1],
        noinfo: [false, 'none'],
        single: [true, false, 'none'],
      });
    } finally {
      await redis.call('ACL', 'DELUSER', user);
    }
  }, 90_000);
});

describe("layout 'auto' on a Redis Cluster: redis-py's RedisCluster keeps one key per subject, as Node's Cluster client does", () => {
  it('a default Python Limiter (sync and asyncio RedisCluster) and a default Node limiter count on the same subject key', async () => {
    const cluster = await startLocalCluster();
    const client = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
    client.on('error', () => {});
    try {
      const prefix = uniquePrefix('auto-cluster').slice(0, -1);
      const code = `import asyncio, json, sys
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'generated/python'))})
import redis.cluster, redis.asyncio.cluster, redlimit_scripts as rl
host, port = ${JSON.stringify(cluster.nodes[0]!.host)}, ${cluster.nodes[0]!.port}
limits = [rl.Limit(**l) for l in json.loads(${JSON.stringify(JSON.stringify([PY_TIER_LIMITS[0], PY_TIER_LIMITS[2]]))})]
out = {}
sync = rl.Limiter(redis.cluster.RedisCluster(host=host, port=port), limits, prefix=${JSON.stringify(prefix)})
out["sync"] = [sync.layout, sync.keys("agent-c"), [sync.limit("agent-c", cost={"tok": 100}).remaining for _ in range(2)]]
async def run():
    lim = rl.Limiter(redis.asyncio.cluster.RedisCluster(host=host, port=port), limits, prefix=${JSON.stringify(prefix)})
    out["async"] = [lim.layout, lim.keys("agent-c"), [(await lim.limit("agent-c", cost={"tok": 100})).remaining for _ in range(2)]]
    await lim.client.close()
asyncio.run(run())
print(json.dumps(out))`;
      const { stdout } = await run(PYTHON, ['-c', code], { timeout: 30_000 });
      const out = JSON.parse(stdout) as Record<string, [string, string[], number[]]>;
      const s = resolveSubject('agent-c');
      const own = [limitKey(prefix, s, 'm', null), limitKey(prefix, s, 'tok', null)];
      const one = [subjectKey(prefix, s, 'm+tok')];
      expect(out.sync).toEqual(['subject', one, [5, 4]]);
      expect(out.async).toEqual(['subject', one, [3, 2]]);
      const node = createRateLimiter({ redis: client, prefix, limits: [TIER_LIMITS[0], TIER_LIMITS[2]], denyCache: false, ...UNHURRIED });
      await node.ready();
      expect((await node.limit('agent-c', { cost: { tok: 100 } })).limits.map((l) => l.remaining)).toEqual([1, 99_500]);
      expect([await client.exists(own[0]!), await client.exists(own[1]!), await client.exists(one[0]!)]).toEqual([0, 0, 1]);
      await node.close();
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  }, 90_000);

  it('the adoption scan of a Python Limiter (sync and asyncio RedisCluster) visits every primary: a key per limit kept on any one of them is found', async () => {
    const cluster = await startLocalCluster();
    const client = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
    client.on('error', () => {});
    try {
      const ranges = (await client.cluster('SLOTS')) as unknown as [number, number, unknown][];
      expect(ranges.length).toBe(3);
      // For each primary, a prefix whose only key per limit lives there (an id whose slot it serves).
      const idOn = (r: [number, number, unknown]) => {
        for (let i = 0; ; i++) {
          const slot = hashSlot(`{kept-${i}}`);
          if (slot >= r[0] && slot <= r[1]) return `kept-${i}`;
        }
      };
      const cases: { prefix: string; id: string }[] = [];
      for (const mode of ['sync', 'async']) {
        for (const r of ranges) {
          const prefix = uniquePrefix(`py-cl-${mode}`).slice(0, -1);
          const id = idOn(r);
          const m = createRateLimiter({ redis: client, prefix, limits: [TIER_LIMITS[0]], denyCache: false, ...UNHURRIED });
          await m.limit(id, { cost: 4 });
          await m.close();
          cases.push({ prefix, id });
        }
        cases.push({ prefix: uniquePrefix(`py-cl-fresh-${mode}`).slice(0, -1), id: 'nobody' });
      }
      const code = `import asyncio, json, sys
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'generated/python'))})
import redis.cluster, redis.asyncio.cluster, redlimit_scripts as rl
host, port = ${JSON.stringify(cluster.nodes[0]!.host)}, ${cluster.nodes[0]!.port}
limits = [rl.Limit(**l) for l in json.loads(${JSON.stringify(JSON.stringify(PY_TIER_LIMITS))})]
cases = json.loads(${JSON.stringify(JSON.stringify(cases))})
out = []
sync = redis.cluster.RedisCluster(host=host, port=port)
for c in cases[:4]:
    lim = rl.Limiter(sync, limits, prefix=c["prefix"])
    lim.limit("agent-x")
    lim._adoption.worker.join()
    out.append([lim.adopting, lim.limit(c["id"]).limits[0].remaining])
async def run():
    client = redis.asyncio.cluster.RedisCluster(host=host, port=port)
    for c in cases[4:]:
        lim = rl.Limiter(client, limits, prefix=c["prefix"])
        await lim.limit("agent-x")
        await lim._adoption.worker
        out.append([lim.adopting, (await lim.limit(c["id"])).limits[0].remaining])
    await client.close()
asyncio.run(run())
print(json.dumps(out))`;
      const { stdout } = await run(PYTHON, ['-c', code], { timeout: 60_000 });
      // Found on every primary (the kept count continues: 2 left, 1 after this call); none on the fresh prefix.
      const kept: [boolean, number] = [true, 1];
      const none: [boolean, number] = [false, 5];
      expect(JSON.parse(stdout)).toEqual([kept, kept, kept, none, kept, kept, kept, none]);
      for (const c of cases) expect(await client.get(`${c.prefix}:!adopt:m+h+tok+d+tb`)).toBe(c.id === 'nobody' ? 'none' : 'found');
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  }, 120_000);
});
