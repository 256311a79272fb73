import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startLocalCluster } from '../devtools/local-cluster.js';
import { freePort, startLocalRedis, type LocalRedis } from '../devtools/local-redis.js';
import { uniquePrefix } from './support/redis.js';
import { repoRoot } from './support/temp-scripts.js';
import { PYTHON } from '../devtools/python.js';

const run = promisify(execFile);
const BINDING = join(repoRoot, 'generated/python');
// The breakers' reset timeout: long enough that a loaded machine makes the calls after an open
// within it (so they provably send nothing), short enough to wait out twice.
const RESET_MS = 1500;

// This file kills and restarts its own server.
let server: LocalRedis;
beforeAll(async () => {
  server = await startLocalRedis();
});
afterAll(async () => {
  await server.stop();
});

/** test/python/failure.py: one phase per line in, one JSON line out. */
class Driver {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly waiting: ((line: string) => void)[] = [];
  private stderr = '';

  constructor(mode: 'sync' | 'async', prefix: string) {
    this.child = spawn(PYTHON, [join(repoRoot, 'test/python/failure.py'), BINDING, String(server.port), mode, prefix, String(RESET_MS)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (b: Buffer) => (this.stderr += b.toString()));
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (line) => this.waiting.shift()?.(line));
  }

  phase(name: string): Promise<Record<string, any>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`python phase ${name}: no answer in 60 s; stderr: ${this.stderr}`)), 60_000);
      this.waiting.push((line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      });
      this.child.stdin.write(`${name}\n`);
      this.child.once('exit', (code) => reject(new Error(`python exited ${code} in phase ${name}: ${this.stderr}`)));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.on('exit', () => resolve());
      this.child.stdin.end();
    });
  }
}

describe('the Python Limiter when Redis fails: no redis-py error reaches the caller', () => {
  for (const mode of ['sync', 'async'] as const) {
    it(`${mode}: each on_redis_failure answers, the breaker opens after 3 failures and then sends nothing, a failed probe waits twice as long, and a restart closes it again`, async () => {
      const py = new Driver(mode, uniquePrefix(`py-fail-${mode}`).slice(0, -1));
      try {
        const up = await py.phase('up');
        // Redis up: every limiter decides on Redis, exactly.
        for (const key of ['raise', 'open', 'closed', 'tiers-open']) {
          expect(up[key].map((d: any) => [d.allowed, d.source])).toEqual([[true, 'redis'], [true, 'redis']]);
        }
        expect(up.raise.map((d: any) => d.remaining)).toEqual([4, 3]);
        expect(up['raise-too'].map((d: any) => d.remaining)).toEqual([2, 1]); // the same keys as "raise"
        expect(Object.values(up.breakers)).toEqual(Array(7).fill('closed'));

        await server.kill();
        const down = await py.phase('down');
        const policy = { raise: { error: 'RedisUnavailable', redis_error: true }, open: { allowed: true, source: 'fail-open', limits: 0 }, closed: { allowed: false, source: 'fail-closed', limits: 0 } } as const;
        for (const [key, answer] of Object.entries({ ...policy, 'tiers-open': policy.open, 'slots-open': policy.open })) {
          const calls = down[key] as any[];
          for (const c of calls) expect(c).toMatchObject(answer);
          // Three calls reached for Redis (redis-py's error kept as the cause), then the breaker
          // opened and the other five made no connection at all.
          expect(calls.slice(0, 3).every((c) => c.connects >= 1), JSON.stringify(calls)).toBe(true);
          expect(calls.slice(3).map((c) => c.connects)).toEqual([0, 0, 0, 0, 0]);
          expect(calls.map((c) => c.state)).toEqual(['closed', 'closed', 'open', 'open', 'open', 'open', 'open', 'open']);
          if (key === 'raise') expect(calls.map((c) => c.cause)).toEqual(['ConnectionError', 'ConnectionError', 'ConnectionError', null, null, null, null, null]);
        }
        // Fail-closed says how long to wait: a reset timeout before the breaker opened, then until
        // its probe (at most a reset timeout: jitter 0).
        expect(down.closed[0].retry).toBe(RESET_MS);
        for (const c of down.closed.slice(2)) expect(c.retry).toBeGreaterThanOrEqual(1), expect(c.retry).toBeLessThanOrEqual(RESET_MS);
        // A breaker shared by two limiters: opened by one, it refuses the other without a round trip.
        expect(down['raise-too']).toMatchObject({ error: 'RedisUnavailable', cause: null, connects: 0 });
        // Peek and reserve are decisions: fail-open (reserve with no handle: nothing to settle).
        expect(down.peek).toMatchObject({ allowed: true, source: 'fail-open' });
        expect(down.reserve).toMatchObject({ allowed: true, source: 'fail-open', handle: null });
        // hold() fail-open: admitted, one connection tried for the decision and none for a release.
        expect(down['hold-open']).toMatchObject({ allowed: true, source: 'fail-open', connects: 1 });
        // hold() fail-closed: RateLimited, saying Redis is unavailable.
        expect(down['hold-closed']).toMatchObject({ error: 'RateLimited', source: 'fail-closed' });
        expect(down['hold-closed'].message).toContain('Redis unavailable');
        // What must land says it did not, as RedisUnavailable (a redis-py RedisError).
        for (const op of ['refund', 'reset', 'commit']) expect(down[op], op).toMatchObject({ error: 'RedisUnavailable', redis_error: true });
        // The wait over, the breaker lets one probe through; it fails: open again, twice as long.
        expect(down['probe-state']).toBe('half-open');
        expect(down.probe).toMatchObject({ allowed: false, source: 'fail-closed' });
        expect(down['after-probe']).toMatchObject({ state: 'open', opens: 2 });
        expect(down['after-probe'].retry_after_ms).toBeGreaterThan(RESET_MS);
        expect(down['after-probe'].retry_after_ms).toBeLessThanOrEqual(2 * RESET_MS);
        expect(down['after-probe'].last_error).toMatch(/^ConnectionError/);

        server = await server.restart();
        const back = await py.phase('recover');
        // Two successful probes close each breaker; decisions come from Redis again, exact (the
        // restarted server kept nothing: a fresh subject's budget).
        for (const key of ['raise', 'open', 'closed']) {
          expect(back[key].map((d: any) => [d.source, d.remaining]), key).toEqual([['redis', 4], ['redis', 3], ['redis', 2]]);
          expect(back[key].map((d: any) => d.state), key).toEqual(['half-open', 'closed', 'closed']);
        }
      } finally {
        await py.close();
        const probe = new Redis(server.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        probe.on('error', () => {});
        const alive = await probe.ping().then(() => true, () => false);
        probe.disconnect();
        if (!alive) server = await server.restart();
      }
    }, 120_000);
  }
});

describe('the Python Limiter: cancellation, hold() and the Cluster errors redis-py raises', () => {
  it('a cancelled asyncio probe frees its slot; a release that fails (a paused server) neither fails hold() nor hides its body\'s exception; redis-py\'s Cluster errors are classified as Node classifies them', async () => {
    const prefix = uniquePrefix('py-cancel').slice(0, -1);
    const code = `import asyncio, json, sys, time
sys.path.insert(0, ${JSON.stringify(BINDING)})
import redis, redis.asyncio, redis.exceptions as rx, redlimit_scripts as rl
url = ${JSON.stringify(server.url)}
admin = redis.Redis.from_url(url)
out = {}
async def cancelled_probe():
    client = redis.asyncio.Redis.from_url(url, socket_timeout=0.3)
    lim = rl.Limiter(client, rl.Limit("m", "gcra", limit=100, period_ms=60_000), prefix=${JSON.stringify(prefix)} + "a", on_redis_failure="open", breaker=rl.Breaker(consecutive_failures=1, reset_timeout_ms=100, jitter=0))
    assert (await lim.limit("x")).source == "redis"
    admin.execute_command("CLIENT", "PAUSE", 1500)
    paused_at = time.monotonic()
    first = await lim.limit("x")  # times out: a Redis failure, the breaker opens
    out["timed_out"] = [first.source, lim.breaker.state]
    await asyncio.sleep(0.2)
    out["before_probe"] = lim.breaker.state
    try:
        await asyncio.wait_for(lim.limit("x"), 0.05)  # the probe, cancelled by the caller's deadline
        out["probe"] = "answered"
    except asyncio.TimeoutError:
        out["probe"] = "cancelled"
    await asyncio.sleep(max(0, 1.6 - (time.monotonic() - paused_at)))  # the pause is over
    # The next call probes at once (not after max_reset_timeout_ms): Redis decides again.
    answers = [(await lim.limit("x")).source for _ in range(3)]
    out["after"] = [answers, lim.breaker.state]
    await client.close()
asyncio.run(cancelled_probe())
def held(body_raises):
    client = redis.Redis.from_url(url, socket_timeout=0.3)
    lim = rl.Limiter(client, rl.Limit("c", "concurrency", limit=2, period_ms=60_000), prefix=${JSON.stringify(prefix)} + "h", on_redis_failure="open")
    try:
        with lim.hold("x") as d:
            admin.execute_command("CLIENT", "PAUSE", 800)  # the release on the way out times out
            if body_raises:
                raise ValueError("the body's own")
        return ["ok", d.source, d.holder is not None]
    except Exception as e:
        return [type(e).__name__, str(e)]
    finally:
        time.sleep(0.9)
out["hold"] = [held(False), held(True)]
kinds = {}
for name, e in (("RedisClusterException", rx.RedisClusterException("Redis Cluster cannot be connected")), ("SlotNotCoveredError", rx.SlotNotCoveredError("slot 7 not covered")),
                ("ClusterError TTL", rx.ClusterError("TTL exhausted.")), ("ClusterDownError", rx.ClusterDownError("CLUSTERDOWN The cluster is down")),
                ("TryAgainError", rx.TryAgainError("TRYAGAIN")), ("MovedError", rx.MovedError("1 127.0.0.1:7000")), ("ConnectionError", rx.ConnectionError("x")),
                ("TimeoutError", rx.TimeoutError("x")), ("WRONGTYPE", rx.ResponseError("WRONGTYPE Operation against a key")), ("OOM", rx.ResponseError("OOM command not allowed")),
                ("KeyError", KeyError("not Redis's"))):
    kinds[name] = rl._failure_kind(e)
out["kinds"] = kinds
print(json.dumps(out))`;
    const { stdout } = await run(PYTHON, ['-c', code], { timeout: 60_000 });
    const out = JSON.parse(stdout);
    expect(out.timed_out).toEqual(['fail-open', 'open']);
    expect(out.before_probe).toBe('half-open');
    expect(out.probe).toBe('cancelled');
    // Before the fix the cancelled probe kept its slot for 30 s: every call answered fail-open.
    expect(out.after).toEqual([['redis', 'redis', 'redis'], 'closed']);
    expect(out.hold).toEqual([['ok', 'redis', true], ['ValueError', "the body's own"]]);
    expect(out.kinds).toEqual({
      RedisClusterException: 'redis', SlotNotCoveredError: 'redis', 'ClusterError TTL': 'moving', ClusterDownError: 'redis',
      TryAgainError: 'moving', MovedError: 'moving', ConnectionError: 'redis', TimeoutError: 'redis', WRONGTYPE: 'caller', OOM: 'redis', KeyError: null,
    });
  }, 60_000);
});

describe('the Python Limiter on a Redis Cluster whose every node is gone', () => {
  it("redis-py's RedisCluster (sync and asyncio) raises outside RedisError there: still the failure policy, and the breaker opens", async () => {
    const cluster = await startLocalCluster();
    try {
      const code = `import asyncio, json, sys, time
sys.path.insert(0, ${JSON.stringify(BINDING)})
import redis.cluster, redis.asyncio.cluster, redlimit_scripts as rl
host, port = ${JSON.stringify(cluster.nodes[0]!.host)}, ${cluster.nodes[0]!.port}
limits = [rl.Limit("m", "gcra", limit=100, period_ms=60_000)]
def breaker():
    return rl.Breaker(consecutive_failures=2, reset_timeout_ms=20_000)
sync = rl.Limiter(redis.cluster.RedisCluster(host=host, port=port, socket_connect_timeout=1), limits, on_redis_failure="open", breaker=breaker())
async def main():
    client = redis.asyncio.cluster.RedisCluster(host=host, port=port, socket_connect_timeout=1)
    lim = rl.Limiter(client, limits, on_redis_failure="closed", breaker=breaker())
    up = [sync.limit("a").source, (await lim.limit("a")).source]
    print(json.dumps(up), flush=True)
    sys.stdin.readline()  # every node is killed meanwhile
    out = {"up": up}
    for name, call, b in (("sync", lambda: sync.limit("a"), sync.breaker), ("async", lambda: lim.limit("a"), lim.breaker)):
        answers = []
        for _ in range(4):
            try:
                d = call()
                d = await d if asyncio.iscoroutine(d) else d
                answers.append(d.source)
            except Exception as e:
                answers.append(type(e).__name__)
        out[name] = [answers, b.stats()["state"], b.stats()["total_failures"], b.stats()["total_rejected"]]
    print(json.dumps(out), flush=True)
asyncio.run(main())`;
      const child = spawn(PYTHON, ['-c', code], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const lines = createInterface({ input: child.stdout });
      const next = () => new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`python: no answer in 60 s; stderr: ${stderr}`)), 60_000);
        lines.once('line', (line) => (clearTimeout(timer), resolve(line)));
        child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`python exited ${code}: ${stderr}`))));
      });
      expect(JSON.parse(await next())).toEqual(['redis', 'redis']);
      await Promise.all(cluster.servers.map((s) => s.kill()));
      child.stdin.write('go\n');
      const out = JSON.parse(await next());
      // Two failures open each breaker; the other calls make no round trip; no redis-py error reaches the caller.
      expect(out.sync).toEqual([['fail-open', 'fail-open', 'fail-open', 'fail-open'], 'open', 2, 2]);
      expect(out.async).toEqual([['fail-closed', 'fail-closed', 'fail-closed', 'fail-closed'], 'open', 2, 2]);
      child.stdin.end();
    } finally {
      await cluster.stop();
    }
  }, 120_000);
});

describe('the Python Limiter: what is not a Redis failure', () => {
  it("the caller's own errors are raised as they were and the breaker hears nothing; bad options are refused", async () => {
    const prefix = uniquePrefix('py-caller').slice(0, -1);
    const deadPort = await freePort(); // nothing listens there
    const redis = new Redis(server.url);
    try {
      await redis.hset(`${prefix}:{wt}:m`, 'x', '1');
      const code = `import json, sys
sys.path.insert(0, ${JSON.stringify(BINDING)})
import redis, redlimit_scripts as rl
client = redis.Redis.from_url(${JSON.stringify(server.url)})
lim = rl.Limiter(client, rl.Limit("m", "gcra", limit=5, period_ms=60_000), prefix=${JSON.stringify(prefix)}, on_redis_failure="open", breaker=rl.Breaker(consecutive_failures=2))
out = {}
errors = []
for _ in range(4):
    try:
        lim.limit("wt")
    except Exception as e:
        errors.append([type(e).__name__, str(e).split(" ")[0]])
for bad in (lambda: lim.limit("x", cost=-1), lambda: lim.limit("a{b}"), lambda: lim.commit("not-a-handle", 1)):
    try:
        bad()
    except Exception as e:
        errors.append([type(e).__name__, isinstance(e, rl.InvalidArgument)])
out["errors"] = errors
out["breaker"] = lim.breaker.stats()
out["after"] = lim.limit("fine").source
refused = []
for kwargs in ({"on_redis_failure": "fallback"}, {"breaker": "yes"}, {"breaker": True}):
    try:
        rl.Limiter(client, rl.Limit("m", "gcra", limit=5, period_ms=60_000), **kwargs)
    except rl.InvalidArgument as e:
        refused.append(str(e))
for kwargs in ({"consecutive_failures": 0}, {"reset_timeout_ms": 1.5}, {"jitter": 2}, {"reset_timeout_ms": 100, "max_reset_timeout_ms": 50}):
    try:
        rl.Breaker(**kwargs)
    except rl.InvalidArgument as e:
        refused.append(str(e))
out["refused"] = refused
out["none"] = rl.Limiter(client, rl.Limit("m", "gcra", limit=5, period_ms=60_000), breaker=False).breaker
import asyncio, redis.asyncio
def fair_error(run):
    try:
        run()
    except Exception as e:
        return [type(e).__name__, isinstance(e, redis.exceptions.RedisError), type(getattr(e, "cause", None)).__name__]
dead = ${JSON.stringify(deadPort)}
sync_fair = rl.FairShare(redis.Redis(port=dead), "f", algo="fixed_window", limit=10, period_ms=1_000)
async_fair = rl.FairShare(redis.asyncio.Redis(port=dead), "f", algo="fixed_window", limit=10, period_ms=1_000)
out["fair"] = [fair_error(lambda: sync_fair.limit("a")), fair_error(lambda: asyncio.run(async_fair.limit("a")))]
print(json.dumps(out))`;
      const { stdout } = await run(PYTHON, ['-c', code], { timeout: 30_000 });
      const out = JSON.parse(stdout);
      // WRONGTYPE: redis-py's ResponseError, as before, four times over a breaker that opens after two
      // failures: it never opened, nothing was counted, and the next decision is Redis's.
      expect(out.errors.slice(0, 4)).toEqual(Array(4).fill(['ResponseError', 'WRONGTYPE']));
      expect(out.errors.slice(4)).toEqual([['InvalidArgument', true], ['InvalidArgument', true], ['InvalidArgument', true]]);
      expect(out.breaker).toMatchObject({ state: 'closed', total_failures: 0, opens: 0 });
      expect(out.after).toBe('redis');
      expect(out.refused).toHaveLength(7);
      expect(out.refused[0]).toContain('on_redis_failure must be raise, open or closed');
      expect(out.refused[1]).toContain('breaker must be a Breaker');
      expect(out.refused[2]).toContain('breaker must be a Breaker');
      expect(out.refused[3]).toContain('consecutive_failures must be an integer of at least 1');
      expect(out.refused[4]).toContain('reset_timeout_ms must be an integer');
      expect(out.refused[5]).toContain('jitter must be a number from 0 to 1');
      expect(out.refused[6]).toContain('max_reset_timeout_ms (50) must be at least reset_timeout_ms (100)');
      expect(out.none).toBeNull();
      // FairShare (no failure policy, as Node's): a dead Redis is RedisUnavailable, sync and asyncio.
      expect(out.fair).toEqual([['RedisUnavailable', true, 'ConnectionError'], ['RedisUnavailable', true, 'ConnectionError']]);
    } finally {
      redis.disconnect();
    }
  }, 60_000);
});
