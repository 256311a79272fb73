import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, RedisUnavailableError, type Decision, type RateLimiterOptions } from '../../src/index.js';
import { freePort, startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';

/**
 * The client under real Redis faults: redis-server processes this file starts, kills, pauses and
 * fills up. For each: no exception reaches the caller, every decision says where it came from, the
 * breaker opens within its configured failures and closes after recovery, and latency stays
 * within timeoutMs plus a margin.
 */
const TIMEOUT_MS = 50;
const MARGIN_MS = 100; // event-loop slack on a shared 2-core machine (observed: under 10 ms)
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

async function server(args: string[] = []): Promise<LocalRedis> {
  let s = await startLocalRedis(args);
  cleanup.push(() => s.kill());
  return {
    ...s,
    restart: async () => {
      s = await s.restart();
      cleanup.push(() => s.kill());
      return s;
    },
  };
}

/** A client set up as the README recommends for limiters: never queue, never re-send, reconnect fast. */
function client(port: number): Redis {
  const c = new Redis({ port, host: '127.0.0.1', enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50, lazyConnect: false });
  c.on('error', () => {});
  cleanup.push(async () => c.disconnect());
  return c;
}

function limiter(redis: Redis, extra: Partial<RateLimiterOptions> = {}) {
  const rl = createRateLimiter({
    redis,
    prefix: `f${Math.random().toString(36).slice(2, 8)}`,
    limits: { name: 'rps', algo: 'gcra', limit: 100_000, periodMs: 1000 },
    timeoutMs: TIMEOUT_MS,
    breaker: { consecutiveFailures: 3, resetTimeoutMs: 100, maxResetTimeoutMs: 400, successesToClose: 2, jitter: 0.1 },
    denyCache: false,
    ...extra,
  });
  cleanup.push(() => rl.close());
  return rl;
}

interface Sample {
  at: number;
  ms: number;
  decision?: Decision;
  error?: unknown;
}

/** `callers` loops calling limit() until `untilMs`; every call is timed and recorded. */
async function load(rl: ReturnType<typeof limiter>, callers: number, durationMs: number, events: { at: number; fn: () => Promise<unknown> }[] = []): Promise<Sample[]> {
  const samples: Sample[] = [];
  const t0 = Date.now();
  const timeline = (async () => {
    for (const e of events.sort((a, b) => a.at - b.at)) {
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + e.at - Date.now())));
      await e.fn();
    }
  })();
  await Promise.all(
    Array.from({ length: callers }, async (_, i) => {
      while (Date.now() - t0 < durationMs) {
        const start = Date.now();
        try {
          const decision = await rl.limit(`caller-${i % 4}`);
          samples.push({ at: start - t0, ms: Date.now() - start, decision });
        } catch (error) {
          samples.push({ at: start - t0, ms: Date.now() - start, error });
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    }),
  );
  await timeline;
  return samples;
}

function expectHealthy(samples: Sample[]) {
  expect(samples.filter((s) => s.error).map((s) => String(s.error))).toEqual([]);
  expect(samples.every((s) => ['redis', 'fallback', 'fail-open', 'fail-closed', 'deny-cache', 'lease'].includes(s.decision!.source))).toBe(true);
  const worst = Math.max(...samples.map((s) => s.ms));
  if (process.env.REDLIMIT_SHOW_LATENCY) console.log(`worst latency ${worst} ms over ${samples.length} calls (deadline ${TIMEOUT_MS} ms)`);
  expect(worst).toBeLessThanOrEqual(TIMEOUT_MS + MARGIN_MS);
}

describe('faults', () => {
  it('SIGKILL under load, then restart: fallback during the outage, breaker opens within 3 failures and closes after recovery', async () => {
    const s = await server();
    const rl = limiter(client(s.port));
    const opened: number[] = [];
    rl.breaker!.on('open', () => opened.push(rl.breaker!.stats().totalFailures));
    // Times come from the events themselves, not from the schedule: a loaded machine may run late.
    const t0 = Date.now();
    const at = { killing: Infinity, killed: Infinity, restarting: Infinity, closed: Infinity };
    rl.breaker!.on('close', () => (at.closed = Date.now() - t0));
    const samples = await load(rl, 12, 3_000, [
      { at: 500, fn: async () => ((at.killing = Date.now() - t0), await s.kill(), (at.killed = Date.now() - t0)) },
      { at: 1_200, fn: async () => ((at.restarting = Date.now() - t0), await s.restart()) },
    ]);
    expectHealthy(samples);
    const sources = (from: number, to: number) => new Set(samples.filter((x) => x.at >= from && x.at < to).map((x) => x.decision!.source));
    expect(sources(0, at.killing - TIMEOUT_MS - MARGIN_MS)).toEqual(new Set(["redis"]));
    // Between the kill and the restart nothing can answer: every decision is the fallback's.
    expect(sources(at.killed + TIMEOUT_MS + MARGIN_MS, at.restarting)).toEqual(new Set(['fallback']));
    // Once the breaker has closed again, Redis decides.
    expect(at.closed).toBeLessThan(3_000);
    expect(sources(at.closed + 5, 3_000)).toEqual(new Set(['redis']));
    expect(opened[0]).toBe(3);
    expect(rl.stats().breaker!.state).toBe('closed');
    expect(rl.stats().fallbackKeys).toBe(0); // Redis is authoritative again; local counts dropped
  }, 20_000);

  it('a slow Redis (CLIENT PAUSE) never holds a caller past the deadline', async () => {
    const s = await server();
    const rl = limiter(client(s.port));
    const admin = client(s.port);
    const t0 = Date.now();
    let closedAt = Infinity;
    rl.breaker!.on('close', () => (closedAt = Date.now() - t0));
    const samples = await load(rl, 8, 1_700, [{ at: 300, fn: () => admin.call('CLIENT', 'PAUSE', '600', 'ALL') }]);
    expectHealthy(samples);
    expect(samples.filter((x) => x.at > 350 && x.at < 800).every((x) => x.decision!.source === 'fallback')).toBe(true);
    // Once the breaker has closed again (after the pause, within its backoff), Redis decides.
    expect(closedAt).toBeGreaterThan(900);
    expect(closedAt).toBeLessThan(1_700);
    expect(samples.filter((x) => x.at > closedAt + 5).every((x) => x.decision!.source === 'redis')).toBe(true);
  }, 20_000);

  it('a busy Redis (DEBUG SLEEP) is a timeout like any other', async () => {
    const s = await server(['--enable-debug-command', 'yes']);
    const rl = limiter(client(s.port), { onRedisFailure: 'open' });
    const admin = client(s.port);
    const samples = await load(rl, 6, 1_200, [{ at: 200, fn: () => admin.call('DEBUG', 'SLEEP', '0.5').catch(() => {}) }]);
    expectHealthy(samples);
    expect(samples.some((x) => x.decision!.source === 'fail-open')).toBe(true);
    expect(samples.at(-1)!.decision!.source).toBe('redis');
  }, 20_000);

  it('SCRIPT FLUSH mid-traffic is invisible: every decision still comes from Redis', async () => {
    const s = await server();
    const r = client(s.port);
    const rl = limiter(r);
    const samples = await load(rl, 6, 600, [
      { at: 100, fn: () => r.script('FLUSH') },
      { at: 300, fn: () => r.script('FLUSH') },
    ]);
    expectHealthy(samples);
    expect(new Set(samples.map((x) => x.decision!.source))).toEqual(new Set(['redis']));
    expect(rl.stats().breaker!.totalFailures).toBe(0);
  }, 20_000);

  it('a replica answers READONLY to consumes (labelled fail-open, counted as readonly) but serves peeks', async () => {
    const primary = await server();
    const replica = await server(['--replicaof', '127.0.0.1', String(primary.port)]);
    const errors: string[] = [];
    const rl = limiter(client(replica.port), { onRedisFailure: 'open', metrics: { redisError: (e) => errors.push(e.reason) } });
    const d = await rl.limit('x');
    expect(d).toMatchObject({ allowed: true, source: 'fail-open' });
    expect(errors).toEqual(['readonly']);
    expect(await rl.peek('x')).toMatchObject({ allowed: true, source: 'redis' });
  }, 20_000);

  it('maxmemory reached (OOM on write) falls back, and recovers when memory is freed', async () => {
    const s = await server(['--maxmemory-policy', 'noeviction']);
    const r = client(s.port);
    const errors: string[] = [];
    const rl = limiter(r, { metrics: { redisError: (e) => errors.push(e.reason) } });
    expect((await rl.limit('x')).source).toBe('redis');
    await r.config('SET', 'maxmemory', '1');
    const d = await rl.limit('y');
    expect(d).toMatchObject({ allowed: true, source: 'fallback' });
    expect(errors).toContain('oom');
    await r.config('SET', 'maxmemory', '0');
    await new Promise((res) => setTimeout(res, 600));
    for (let i = 0; i < 3; i++) await rl.limit('z');
    expect((await rl.limit('z')).source).toBe('redis');
  }, 20_000);

  async function outageReplay(options: Record<string, unknown>): Promise<{ remaining: number; warnings: string[] }> {
    const s = await server();
    const r = new Redis({ port: s.port, host: '127.0.0.1', retryStrategy: () => 50, ...options });
    r.on('error', () => {});
    cleanup.push(async () => r.disconnect());
    const rl = limiter(r, { limits: { name: 'n', algo: 'fixed_window', limit: 1_000, periodMs: 3_600_000 } });
    for (let i = 0; i < 5; i++) expect((await rl.limit('id')).source).toBe('redis');
    await s.kill();
    const during = [];
    for (let i = 0; i < 40; i++) during.push((await rl.limit('id')).source);
    expect(during.filter((x) => x !== 'fallback').length).toBeLessThanOrEqual(1); // the one racing the crash
    await s.restart();
    await new Promise((res) => (r.status === 'ready' ? res(undefined) : r.once('ready', res)));
    await new Promise((res) => setTimeout(res, 300)); // let anything queued drain, if anything were queued
    // The server restarted empty: whatever it holds now arrived after the crash.
    const after = await rl.peek('id');
    expect(after.source).toBe('redis');
    return { remaining: after.remaining, warnings: rl.stats().warnings };
  }

  it('with ioredis defaults nothing queued during an outage is replayed; at most the call racing the crash is re-sent', async () => {
    const { remaining, warnings } = await outageReplay({});
    expect(remaining).toBeGreaterThanOrEqual(999); // 40 fallback decisions, none of them reached Redis
    expect(warnings.join(' ')).toMatch(/autoResendUnfulfilledCommands/);
  }, 20_000);

  it('with the recommended client options nothing at all is replayed', async () => {
    const { remaining, warnings } = await outageReplay({ enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
    expect(remaining).toBe(1_000);
    expect(warnings).toEqual([]);
  }, 20_000);

  it('fails closed when told to, with or without throwing; management calls say they did not land', async () => {
    const port = await freePort(); // nothing listens here
    const rl = limiter(client(port), { onRedisFailure: 'closed', blocks: true });
    expect(await rl.limit('x')).toMatchObject({ allowed: false, source: 'fail-closed' });
    await expect(rl.reset('x')).rejects.toBeInstanceOf(RedisUnavailableError);
    await expect(rl.block('x', 1000)).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(await rl.peek('x')).toMatchObject({ source: 'fail-closed' });
    const strict = limiter(client(port), { onRedisFailure: 'closed', throwWhenFailedClosed: true });
    await expect(strict.limit('x')).rejects.toBeInstanceOf(RedisUnavailableError);
  }, 20_000);

  it('the fallback enforces limit / fallbackShare per instance, and never more', async () => {
    const port = await freePort();
    const rl = limiter(client(port), { limits: { name: 'burst', algo: 'gcra', limit: 1, periodMs: 3_600_000, burst: 100 }, fallbackShare: 4 });
    let admitted = 0;
    for (let i = 0; i < 200; i++) {
      const d = await rl.limit('shared');
      expect(d.source).toBe('fallback');
      if (d.allowed) admitted++;
    }
    expect(admitted).toBe(25);
  }, 20_000);
});
