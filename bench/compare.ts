/**
 * `npm run bench:compare`: redlimit against rate-limiter-flexible, @upstash/ratelimit and a
 * trivial `return 1` EVALSHA, on one local Redis, in one run, contenders interleaved round by
 * round (the machine is shared and noisy: compare ratios from the same run, not absolute numbers).
 *
 * Per contender: decisions/s from one process at a fixed number in flight over seeded ids (10k
 * uniform, or 1 hot id), Redis µs per decision (INFO commandstats), Redis calls per decision,
 * Node CPU µs per decision, latency p50/p99/p999 at a fixed offered load, memory per limited id
 * (MEMORY USAGE), a flood of already-denied ids, the in-memory path against RateLimiterMemory,
 * leases with one event-loop turn per decision, and (when valgrind is installed and BENCH_CALLGRIND
 * is not 0) Redis instructions per decision under callgrind.
 *
 * BENCH_MODE=ci runs a reduced pass (small counts, 1 round, no callgrind) so the bench cannot rot.
 *
 * @upstash/ratelimit 2.2 scripts open with `#!lua flags=allow-key-locking`, which stock Redis
 * refuses: the adapter below drops that line and maps upstash's SHA to the rewritten script's SHA.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { Ratelimit } from '@upstash/ratelimit';
import { nodeBatchScript } from '../generated/index.js';
import { createRateLimiter, gcra, type RateLimiter } from '../src/index.js';
import { runScript } from '../src/runtime/index.js';
import { startLocalRedis } from '../devtools/local-redis.js';
import { instructionsOf } from './callgrind.js';
import { featureRows } from './features.js';

const CI = process.env.BENCH_MODE === 'ci';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (CI ? 1 : 3));
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? (CI ? 3_000 : 60_000));
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 256);
const IDS = 10_000;
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? (CI ? 0.3 : 2));
const CALLGRIND = !CI && process.env.BENCH_CALLGRIND !== '0' && spawnSync('valgrind', ['--version']).status === 0;
/** Sections to run (comma list), default all: throughput,latency,memory,flood,in-memory,lease,callgrind. */
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'throughput,latency,memory,flood,in-memory,lease,callgrind').split(','));
/** Under callgrind Redis runs ~50x slower: the limiter's deadline must not be what is measured. */
let limiterTimeoutMs = 100;

/** One decision for id `id`; resolves whatever the outcome (a denial is not an error). */
type Decide = (id: string) => Promise<unknown>;
interface Contender {
  name: string;
  make(redis: Redis, tag: string): Promise<{ decide: Decide; close(): Promise<void>; keyPattern: string }>;
}

const TRIVIAL = 'return 1';
const LIMIT = 1_000_000; // large enough that uniform traffic is allowed throughout
const PERIOD_MS = 60_000;

// --- contenders --------------------------------------------------------------------------------

function upstashAdapter(redis: Redis) {
  const shaOf = (s: string) => createHash('sha1').update(s).digest('hex');
  const mapped = new Map<string, string>(); // upstash's sha -> sha of the rewritten script
  const rewrite = (script: string) => script.replace(/^#!lua flags=allow-key-locking\s*\n/, '');
  return {
    async evalsha(hash: string, keys: string[], args: unknown[]) {
      const sha = mapped.get(hash);
      if (!sha) throw new Error('NOSCRIPT not loaded yet');
      return redis.evalsha(sha, keys.length, ...keys, ...(args as string[]));
    },
    async eval(script: string, keys: string[], args: unknown[]) {
      const body = rewrite(script);
      mapped.set(shaOf(script), shaOf(body));
      return redis.eval(body, keys.length, ...keys, ...(args as string[]));
    },
  };
}

const allContenders: Contender[] = [
  {
    name: 'return 1 (EVALSHA ceiling)',
    async make(redis, tag) {
      const sha = (await redis.script('LOAD', TRIVIAL)) as string;
      return { decide: (id) => redis.evalsha(sha, 1, `${tag}:${id}`, '1'), close: async () => {}, keyPattern: `${tag}:*` };
    },
  },
  {
    name: 'rate-limiter-flexible RateLimiterRedis',
    async make(redis, tag) {
      const rl = new RateLimiterRedis({ storeClient: redis, keyPrefix: tag, points: LIMIT, duration: PERIOD_MS / 1000 });
      return { decide: (id) => rl.consume(id).catch((r: unknown) => r), close: async () => {}, keyPattern: `${tag}:*` };
    },
  },
  {
    name: '@upstash/ratelimit tokenBucket',
    async make(redis, tag) {
      const rl = new Ratelimit({ redis: upstashAdapter(redis) as never, prefix: tag, limiter: Ratelimit.tokenBucket(LIMIT, '60 s', LIMIT), ephemeralCache: false });
      return { decide: (id) => rl.limit(id), close: async () => {}, keyPattern: `${tag}:*` };
    },
  },
  {
    name: 'redlimit gcra binding',
    async make(redis, tag) {
      return { decide: (id) => gcra(redis, { key: `${tag}:${id}`, limit: LIMIT, periodMs: PERIOD_MS }), close: async () => {}, keyPattern: `${tag}:*` };
    },
  },
  {
    // What one Cluster primary runs when the coalescer groups a turn's decisions per primary: the
    // same gcra decisions as the defaults row, 64 a call, each item naming its key in ARGV (no
    // cluster here: every key is local, so this is node_batch's own cost beside batch's).
    name: 'redlimit node_batch (a Cluster primary\'s batch, one gcra)',
    async make(redis, tag) {
      const fixed = ['1', `gcra,${LIMIT},${PERIOD_MS},,,`, '', ''];
      let queue: { key: string; resolve: (allowed: boolean) => void; reject: (err: unknown) => void }[] = [];
      const flush = () => {
        const calls = queue;
        queue = [];
        for (let at = 0; at < calls.length; at += 64) {
          const part = calls.slice(at, at + 64);
          const argv = fixed.slice();
          for (const c of part) argv.push(c.key, '1', '');
          runScript(redis, nodeBatchScript, [], argv).then(
            (r) => part.forEach((c, i) => c.resolve((r as number[])[1 + 4 * i] === 1)),
            (err: unknown) => part.forEach((c) => c.reject(err)),
          );
        }
      };
      const decide = (id: string) =>
        new Promise<boolean>((resolve, reject) => {
          if (queue.push({ key: `${tag}:{${id}}`, resolve, reject }) === 1) setImmediate(flush);
        });
      return { decide, close: async () => {}, keyPattern: `${tag}:*` };
    },
  },
  limiterContender('redlimit createRateLimiter (one gcra, defaults)', {}),
  limiterContender('redlimit createRateLimiter (coalesce off)', { coalesce: false }),
  limiterContender('redlimit 3 limits (minute/hour/day)', {}, 3),
  // Issue 17's three tiers: a minute of gcra, an hour of sliding window, a day of quota.
  // By default (layout 'auto') one key per subject holds them (the tiers script).
  limiterContender('redlimit 3 tiers (gcra m / sliding h / quota d)', {}, 3, true),
  limiterContender('redlimit 3 tiers, coalesce off', { coalesce: false }, 3, true),
  // The same tiers a key per limit (layout 'per-limit': multi / multi_batch), the default before.
  limiterContender("redlimit 3 tiers, layout 'per-limit'", { layout: 'per-limit' }, 3, true),
  limiterContender("redlimit 3 tiers, layout 'per-limit', coalesce off", { layout: 'per-limit', coalesce: false }, 3, true),
  // Issues 15 and 16: reserve/commit, a priority class, the policy limiter, a concurrency limit.
  ...featureRows({ timeoutMs: () => limiterTimeoutMs }),
];
/** BENCH_CONTENDERS: a regular expression on contender names; rate-limiter-flexible (the reference) always runs. */
const only = process.env.BENCH_CONTENDERS ? new RegExp(process.env.BENCH_CONTENDERS) : null;
const contenders = allContenders.filter((c, i) => i === 1 || !only || only.test(c.name));

function limiterContender(name: string, extra: Record<string, unknown>, tiers = 1, mixed = false): Contender {
  return {
    name,
    async make(redis, tag) {
      const limits = (
        mixed
          ? [
              { name: 'm', algo: 'gcra' as const, limit: LIMIT, periodMs: PERIOD_MS },
              { name: 'h', algo: 'sliding_window' as const, limit: LIMIT * 10, periodMs: PERIOD_MS * 60 },
              { name: 'd', algo: 'quota' as const, limit: LIMIT * 100, unit: 'day' as const },
            ]
          : [
              { name: 'm', algo: 'gcra' as const, limit: LIMIT, periodMs: PERIOD_MS },
              { name: 'h', algo: 'gcra' as const, limit: LIMIT * 10, periodMs: PERIOD_MS * 60 },
              { name: 'd', algo: 'gcra' as const, limit: LIMIT * 100, periodMs: PERIOD_MS * 60 * 24 },
            ]
      ).slice(0, tiers);
      const limiter: RateLimiter = createRateLimiter({ redis, prefix: tag, limits, timeoutMs: limiterTimeoutMs, ...extra } as never);
      // Ready before the first decision, as a service starts: else the first decisions in flight
      // go by EVALSHA while the Functions library is looked for, and how many do depends on the
      // machine's load (under callgrind it read 114k one run and 141k the next for a lone tiers
      // decision, the n and 3n runs no longer cancelling).
      await limiter.ready();
      return { decide: (id) => limiter.limit(id), close: () => limiter.close(), keyPattern: `${tag}:*` };
    },
  };
}

// --- measurement --------------------------------------------------------------------------------

function ids(seed: number): string[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: IDS }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return `user-${(x >>> 0) % 1_000_000}`;
  });
}

/** Script calls (round trips: EVALSHA/EVAL/FCALL, read-only variants too) and the µs Redis spent in them, inner commands included. */
async function commandstats(redis: Redis): Promise<{ calls: number; usec: number }> {
  const info = (await redis.info('commandstats')) as string;
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_(\w+(?:\|\w+)?):calls=(\d+),usec=(\d+)/gm)) {
    if (!/^(evalsha|eval|fcall)(_ro)?$/.test(m[1]!)) continue;
    calls += Number(m[2]);
    usec += Number(m[3]);
  }
  return { calls, usec };
}

/** Closed loop: `inFlight` callers, each starting its next decision when the last resolves. */
async function closedLoop(decide: Decide, idList: string[], total: number, inFlight: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) {
        const i = next++;
        await decide(idList[i % idList.length]!);
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

/** Open loop at `rate`/s for LOAD_SECONDS: latency of each decision from its scheduled start. */
async function openLoop(decide: Decide, idList: string[], rate: number): Promise<number[]> {
  const total = Math.round(rate * LOAD_SECONDS);
  const latencies: number[] = [];
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  let i = 0;
  while (i < total) {
    const due = t0 + (i * 1000) / rate;
    const now = performance.now();
    if (now < due) await new Promise((r) => setTimeout(r, Math.max(0, due - now)));
    // Issue every decision that is due by now (a timer tick covers several at high rates).
    const upTo = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    for (; i < upTo; i++) {
      const scheduled = t0 + (i * 1000) / rate;
      pending.push(decide(idList[i % idList.length]!).then(() => void latencies.push(performance.now() - scheduled)));
    }
  }
  await Promise.all(pending);
  return latencies.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Sample {
  perSec: number;
  redisUsec: number;
  calls: number;
  nodeCpuUsec: number;
}

async function measure(redis: Redis, c: Contender, tag: string, idList: string[]): Promise<Sample> {
  const m = await c.make(redis, tag);
  await closedLoop(m.decide, idList, Math.min(2_000, DECISIONS), IN_FLIGHT); // warm-up: scripts loaded, JIT warm
  const before = await commandstats(redis);
  const cpu = process.cpuUsage();
  const seconds = await closedLoop(m.decide, idList, DECISIONS, IN_FLIGHT);
  const used = process.cpuUsage(cpu);
  const after = await commandstats(redis);
  await m.close();
  return {
    perSec: DECISIONS / seconds,
    redisUsec: (after.usec - before.usec) / DECISIONS,
    calls: (after.calls - before.calls) / DECISIONS,
    nodeCpuUsec: (used.user + used.system) / DECISIONS,
  };
}

async function memoryPerId(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let bytes = 0;
  let keys = 0;
  do {
    const [next, batch] = (await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)) as [string, string[]];
    cursor = next;
    for (const k of batch.slice(0, 50)) {
      if (keys >= 500) break;
      bytes += Number(await redis.memory('USAGE', k, 'SAMPLES', '0'));
      keys++;
    }
  } while (cursor !== '0' && keys < 500);
  return keys ? bytes / keys : NaN;
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join(' ');
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

// --- callgrind ------------------------------------------------------------------------------------

async function instructionsPerDecision(c: Contender, idList: string[], n: number): Promise<number> {
  const after = (decisions: number) =>
    instructionsOf(async (redis) => {
      const m = await c.make(redis, 'cg');
      // Timeouts are irrelevant here (callgrind runs Redis ~50x slower): limiterTimeoutMs is generous.
      await closedLoop(m.decide, idList, decisions, IN_FLIGHT);
      await m.close();
    });
  const [few, many] = [await after(n), await after(3 * n)];
  return (many - few) / (2 * n);
}

// --- main -----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const own = process.env.REDIS_URL ? undefined : await startLocalRedis();
  const url = process.env.REDIS_URL ?? own!.url;
  const redis = new Redis(url, { enableOfflineQueue: true, autoResendUnfulfilledCommands: false });
  const version = ((await redis.info('server')) as string).match(/redis_version:(\S+)/)?.[1];
  const pkg = (name: string) => JSON.parse(readFileSync(join('node_modules', name, 'package.json'), 'utf8')).version as string;
  console.log(`# redlimit bench:compare — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, redis ${version}, ioredis ${pkg('ioredis')}, rate-limiter-flexible ${pkg('rate-limiter-flexible')}, @upstash/ratelimit ${pkg('@upstash/ratelimit')}`);
  console.log(`${DECISIONS} decisions per run, ${IN_FLIGHT} in flight, ${IDS} seeded ids, ${ROUNDS} round(s), contenders interleaved${CI ? ' (reduced CI mode)' : ''}`);
  console.log('upstash: its `#!lua flags=allow-key-locking` line is dropped and its SHA mapped to the rewritten script (stock Redis refuses that flag)\n');

  const uniform = ids(42);
  const hot = ['hot-id'];
  try {
    for (const [label, idList] of SECTIONS.has('throughput') ? ([['10k uniform ids', uniform], ['1 hot id', hot]] as const) : []) {
      const samples = new Map<string, Sample[]>();
      for (let round = 0; round < ROUNDS; round++) {
        for (const c of contenders) {
          await redis.flushall();
          const s = await measure(redis, c, `b${round}`, idList as string[]);
          samples.set(c.name, [...(samples.get(c.name) ?? []), s]);
          process.stdout.write('.');
        }
      }
      console.log(`\n## Throughput, ${label} (median [min–max] of ${ROUNDS}; ratio to rate-limiter-flexible's median)`);
      const w = [48, 26, 8, 10, 10, 10];
      console.log(row(['contender', 'decisions/s', '×rlf', 'Redis µs', 'calls', 'Node µs'], w));
      const peer = median(samples.get(contenders.find((c) => c.name.startsWith('rate-limiter-flexible'))!.name)!.map((s) => s.perSec));
      for (const c of contenders) {
        const s = samples.get(c.name)!;
        const per = s.map((x) => x.perSec);
        console.log(
          row(
            [c.name, `${Math.round(median(per))} [${Math.round(Math.min(...per))}–${Math.round(Math.max(...per))}]`, fmt(median(per) / peer, 2), fmt(median(s.map((x) => x.redisUsec)), 2), fmt(median(s.map((x) => x.calls)), 3), fmt(median(s.map((x) => x.nodeCpuUsec)), 1)],
            w,
          ),
        );
      }
    }

    if (SECTIONS.has('latency')) console.log('\n## Latency at a fixed offered load (ms from scheduled start; 10k uniform ids)');
    for (const rate of SECTIONS.has('latency') ? [5_000, 10_000] : []) {
      const w = [48, 9, 9, 9];
      console.log(row([`${rate}/s`, 'p50', 'p99', 'p999'], w));
      for (const c of contenders) {
        await redis.flushall();
        const m = await c.make(redis, 'lat');
        await closedLoop(m.decide, uniform, 1_000, 64);
        const l = await openLoop(m.decide, uniform, rate);
        await m.close();
        console.log(row([c.name, fmt(pct(l, 0.5), 2), fmt(pct(l, 0.99), 2), fmt(pct(l, 0.999), 2)], w));
      }
    }

    if (SECTIONS.has('memory')) console.log('\n## Memory per limited id (MEMORY USAGE, after one decision per id)');
    for (const c of SECTIONS.has('memory') ? contenders.slice(1) : []) {
      await redis.flushall();
      const m = await c.make(redis, 'mem');
      await closedLoop(m.decide, uniform, IDS, IN_FLIGHT);
      console.log(`${c.name.padEnd(48)} ${fmt(await memoryPerId(redis, m.keyPattern), 0)} B`);
      await m.close();
    }

    if (SECTIONS.has('flood')) {
      console.log('\n## A flood of already-denied ids (limit 1 per minute, 100 ids, each asked 50 times)');
      await redis.flushall();
      const floodIds = Array.from({ length: 100 }, (_, i) => `flood-${i}`);
      const rlf = new RateLimiterRedis({ storeClient: redis, keyPrefix: 'fl1', points: 1, duration: 60 });
      const ours = createRateLimiter({ redis, prefix: 'fl2', limits: { name: 'm', algo: 'gcra', limit: 1, periodMs: 60_000 } });
      for (const [name, decide] of [['rate-limiter-flexible', (id: string) => rlf.consume(id).catch((r: unknown) => r)], ['redlimit (deny cache)', (id: string) => ours.limit(id)]] as const) {
        await closedLoop(decide, floodIds, floodIds.length, 1);
        const before = await commandstats(redis);
        const seconds = await closedLoop(decide, floodIds, floodIds.length * 50, IN_FLIGHT);
        const after = await commandstats(redis);
        console.log(`${name.padEnd(48)} ${Math.round((floodIds.length * 50) / seconds)} decisions/s, ${fmt((after.calls - before.calls) / (floodIds.length * 50), 3)} Redis calls per decision`);
      }
      await ours.close();
    }

    if (SECTIONS.has('in-memory')) {
      console.log('\n## In-memory path, one await per decision (10k uniform ids)');
      const n = CI ? 20_000 : 500_000;
      const mem = new RateLimiterMemory({ points: LIMIT, duration: 60 });
      const ours = createRateLimiter({ limits: { name: 'm', algo: 'gcra', limit: LIMIT, periodMs: PERIOD_MS } });
      const run = async (decide: Decide) => {
        const t = performance.now();
        for (let i = 0; i < n; i++) await decide(uniform[i % IDS]!);
        return n / ((performance.now() - t) / 1000);
      };
      const results: Record<string, number[]> = { mem: [], ours: [] };
      for (let r = 0; r < ROUNDS; r++) {
        results.mem!.push(await run((id) => mem.consume(id).catch((x: unknown) => x)));
        results.ours!.push(await run((id) => ours.limit(id)));
      }
      const a = median(results.mem!);
      const b = median(results.ours!);
      console.log(`${'rate-limiter-flexible RateLimiterMemory'.padEnd(48)} ${Math.round(a)} decisions/s`);
      console.log(`${'redlimit, no redis (twin)'.padEnd(48)} ${Math.round(b)} decisions/s  ${fmt(b / a, 2)}× the peer`);
      await ours.close();
    }

    if (SECTIONS.has('lease')) {
      console.log('\n## Leases (size 100), one event-loop turn (setImmediate) per decision, 10 hot ids');
      await redis.flushall();
      const n = CI ? 20_000 : 300_000;
      const leased = createRateLimiter({ redis, prefix: 'lease', limits: { name: 'm', algo: 'gcra', limit: 1_000_000_000, periodMs: PERIOD_MS }, lease: { size: 100 } });
      const hotIds = Array.from({ length: 10 }, (_, i) => `lease-${i}`);
      const t = performance.now();
      for (let i = 0; i < n; i++) {
        await leased.limit(hotIds[i % 10]!);
        await new Promise((r) => setImmediate(r));
      }
      console.log(`${'redlimit lease'.padEnd(48)} ${Math.round(n / ((performance.now() - t) / 1000))} decisions/s`);
      // The ceiling of this loop shape on this machine: the same turns with no decision at all.
      const t2 = performance.now();
      for (let i = 0; i < n; i++) {
        await Promise.resolve();
        await new Promise((r) => setImmediate(r));
      }
      console.log(`${'the same loop, no decision (ceiling)'.padEnd(48)} ${Math.round(n / ((performance.now() - t2) / 1000))} turns/s`);
      await leased.close();
    }

    if (CALLGRIND && SECTIONS.has('callgrind')) {
      limiterTimeoutMs = 10_000;
      console.log('\n## Redis instructions per decision (callgrind; noise-free)');
      const n = Number(process.env.BENCH_CALLGRIND_DECISIONS ?? 3_000);
      const reference = contenders.find((c) => c.name.startsWith('rate-limiter-flexible'))!;
      const base = await instructionsPerDecision(reference, uniform, n);
      for (const c of contenders) {
        const v = c === reference ? base : await instructionsPerDecision(c, uniform, n);
        console.log(`${c.name.padEnd(48)} ${Math.round(v).toLocaleString('en-US').padStart(10)}  ${fmt(v / base, 2)}× rate-limiter-flexible`);
      }
    } else console.log('\n(callgrind section skipped: valgrind missing, BENCH_CALLGRIND=0 or CI mode)');
  } finally {
    redis.disconnect();
    await own?.stop();
  }
}

await main();
