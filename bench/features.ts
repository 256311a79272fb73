/**
 * `npm run bench:features`: what the issue-15 and issue-16 features cost, through the public client
 * API (createRateLimiter, createPolicyLimiter) on one local Redis, in one run, beside
 * rate-limiter-flexible's RateLimiterRedis (the reference) and a `return 1` EVALSHA.
 *
 * The shape measured is an LLM gateway's pair of limits: RPM (cost 1) + TPM (estimate 500), both
 * gcra, limits high enough that every call is admitted. Rows:
 *   - plain limit() (defaults: coalesced into multi_batch) and with coalescing off (one multi each);
 *   - reserve() + commit() per pair, reserve() alone, commit() alone (actual: RPM 1, TPM 350);
 *   - limit() with a priority class vs without, on the same limiter with priorities (both paths);
 *   - a policy-resolved limiter (createPolicyLimiter, chain default → plan:pro → user:<id>, every
 *     user holding an override) vs the same limits configured statically; warm (every chain
 *     resolved before measuring: the cached path) and cold (each decision a subject never seen:
 *     one policy_read first);
 *   - a concurrency limit with the same rate limits, run(subject, fn) (decide + release).
 * Per row: operations/s (closed loop, rows interleaved round by round; the machine is shared and
 * noisy: read ratios within the run) and Redis instructions per operation under callgrind (the
 * difference of two runs of N and 3N operations, each after the same warm-up and preparation:
 * start-up, set-up and warm-up cancel). Then memory per stored policy override.
 *
 * Env: BENCH_ROUNDS (3), BENCH_TIMEOUT_MS (5000), BENCH_OPS (20000), BENCH_IN_FLIGHT (256), BENCH_IDS (1000),
 * BENCH_CALLGRIND (0: skip), BENCH_CALLGRIND_OPS (N, 300), BENCH_CALLGRIND_IDS (200),
 * BENCH_CALLGRIND_IN_FLIGHT (16),
 * BENCH_OVERRIDES (1000), BENCH_SECTIONS (throughput,callgrind,memory), BENCH_ROWS (a regular expression on row names; the reference always
 * runs), BENCH_MODE=ci (small counts, 1 round, no callgrind).
 *
 * `featureRows()` gives the per-decision rows in bench:compare's contender shape.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createPolicyLimiter, createRateLimiter, type LimitSpec, type RateLimiter } from '../src/index.js';
import * as bindings from '../generated/index.js';
import { startLocalRedis } from '../devtools/local-redis.js';
import { instructionsOf } from './callgrind.js';

const CI = process.env.BENCH_MODE === 'ci';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (CI ? 1 : 3));
const OPS = Number(process.env.BENCH_OPS ?? (CI ? 2_000 : 20_000));
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 256);
const IDS = Number(process.env.BENCH_IDS ?? (CI ? 200 : 1_000));
const CALLGRIND = !CI && process.env.BENCH_CALLGRIND !== '0' && spawnSync('valgrind', ['--version']).status === 0;
const CG_OPS = Number(process.env.BENCH_CALLGRIND_OPS ?? 300);
const CG_IDS = Number(process.env.BENCH_CALLGRIND_IDS ?? 200);
/**
 * In flight under callgrind. Redis runs ~50x slower there: at 256 in flight a PING waits > 1 s
 * behind the queue, the policy limiter's subscription turns unhealthy and back, and each return
 * to healthy drops every cached resolution (re-read on the next decision of each chain).
 */
const CG_IN_FLIGHT = Number(process.env.BENCH_CALLGRIND_IN_FLIGHT ?? 16);
/** Policy reads (policy_read calls) of each policy row's last callgrind run: [N run, 3N run]. */
const policyReads = new Map<string, number[]>();
const OVERRIDES = Number(process.env.BENCH_OVERRIDES ?? (CI ? 100 : 1_000));
/**
 * The limiters' Redis deadline in the throughput runs, ms (the default 100 in production). On a
 * loaded shared machine 100 ms is missed now and then, and a missed deadline sends the decision to
 * the fallback: not what is measured here (an operation not answered by Redis is reported).
 */
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 5_000);
/** Sections to run (comma list), default all: throughput,callgrind,memory. */
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'throughput,callgrind,memory').split(','));
/**
 * The policy limiters' version poll, ms (the backstop behind announcements; default 500). Under
 * callgrind it is raised: a poll costs per second of wall time, not per decision, and wall time
 * under valgrind is ~50x longer (the poll's own cost is its own row).
 */
let pollMs: number | undefined;

const RPM = 1_000_000;
const TPM = 1_000_000_000;
const PERIOD_MS = 60_000;
const ESTIMATE = 500;
const ACTUAL = 350;
const COST = { rpm: 1, tpm: ESTIMATE };
const PRIORITIES = { critical: 1, interactive: 0.8, batch: 0.5 };

/** The gateway's pair, as the static limiter and (resolved) the policies give it. */
function pair(rpm = RPM, tpm = TPM): LimitSpec[] {
  return [
    { name: 'rpm', algo: 'gcra', limit: rpm, periodMs: PERIOD_MS },
    { name: 'tpm', algo: 'gcra', limit: tpm, periodMs: PERIOD_MS },
  ];
}

// --- rows ----------------------------------------------------------------------------------------

/** One operation (i: its index in the run), the preparation some operations need, and teardown. */
interface Made {
  /** One operation for subject `id`. */
  byId(id: string): Promise<unknown>;
  /** The i-th operation of a run (default: byId over the ids, round robin). */
  op?(i: number): Promise<unknown>;
  /** Before each measured run of n operations (not timed; identical in both callgrind runs). */
  prepare?(n: number): Promise<void>;
  close(): Promise<void>;
  keyPattern: string;
}

export interface FeatureRow {
  name: string;
  /** What each operation is (decision, pair, commit, run). */
  unit: string;
  make(redis: Redis, tag: string, ids: readonly string[], timeoutMs: number): Promise<Made>;
}

/** Decisions that did not come from Redis, or were denied: a row measuring something else. */
const anomalies = new Map<string, number>();
function check(row: string, d: unknown): void {
  const x = d as { allowed?: boolean; source?: string } | null;
  if (x && typeof x === 'object' && 'allowed' in x && (!x.allowed || x.source !== 'redis')) anomalies.set(row, (anomalies.get(row) ?? 0) + 1);
}

const pick = (ids: readonly string[], i: number) => ids[i % ids.length]!;

function limiterRow(name: string, extra: Record<string, unknown>, call: { priority?: string } = {}): FeatureRow {
  return {
    name,
    unit: 'decision',
    async make(redis, tag, ids, timeoutMs) {
      const limiter = createRateLimiter({ redis, prefix: tag, limits: pair(), timeoutMs, ...extra } as never);
      await limiter.ready();
      return { byId: (id) => limiter.limit(id, { cost: COST, ...call }).then((d) => check(name, d)), close: () => limiter.close(), keyPattern: `${tag}:*` };
    },
  };
}

function reserveRows(): FeatureRow[] {
  const make = async (redis: Redis, tag: string, timeoutMs: number): Promise<RateLimiter> => {
    const limiter = createRateLimiter({ redis, prefix: tag, limits: pair(), timeoutMs });
    await limiter.ready();
    return limiter;
  };
  const reserve = async (row: string, limiter: RateLimiter, id: string): Promise<string> => {
    const r = await limiter.reserve(id, { cost: COST, ttlMs: 3_600_000 });
    check(row, r);
    if (!r.handle) throw new Error(`${row}: a reservation was refused (${JSON.stringify(r)})`);
    return r.handle;
  };
  const commit = async (row: string, limiter: RateLimiter, handle: string) => {
    const out = await limiter.commit(handle, { rpm: 1, tpm: ACTUAL }).catch((err: unknown) => ({ status: String(err) }));
    if (out.status !== 'committed') anomalies.set(row, (anomalies.get(row) ?? 0) + 1);
  };
  const pairName = 'reserve() + commit(), per pair';
  const reserveName = 'reserve() alone';
  const commitName = 'commit() alone';
  return [
    {
      name: pairName,
      unit: 'pair',
      async make(redis, tag, ids, timeoutMs) {
        const limiter = await make(redis, tag, timeoutMs);
        return { byId: async (id) => commit(pairName, limiter, await reserve(pairName, limiter, id)), close: () => limiter.close(), keyPattern: `${tag}:*` };
      },
    },
    {
      name: reserveName,
      unit: 'reserve',
      async make(redis, tag, ids, timeoutMs) {
        const limiter = await make(redis, tag, timeoutMs);
        return { byId: (id) => reserve(reserveName, limiter, id), close: () => limiter.close(), keyPattern: `${tag}:*` };
      },
    },
    {
      name: commitName,
      unit: 'commit',
      async make(redis, tag, ids, timeoutMs) {
        const limiter = await make(redis, tag, timeoutMs);
        let handles: string[] = [];
        return {
          // Each run commits handles reserved just before it (untimed; the same reserves in both callgrind runs).
          async prepare(n) {
            handles = new Array<string>(n);
            await closedLoop(async (i) => void (handles[i] = await reserve(commitName, limiter, pick(ids, i))), n, IN_FLIGHT);
          },
          op: (i) => commit(commitName, limiter, handles[i]!),
          byId: async (id) => commit(commitName, limiter, await reserve(commitName, limiter, id)),
          close: () => limiter.close(),
          keyPattern: `${tag}:*`,
        };
      },
    },
  ];
}

/** Stores the chain's policies: default (RPM + a lower TPM), plan:pro (TPM), and one override per user (RPM, same value). */
async function storePolicies(limiter: ReturnType<typeof createPolicyLimiter>, users: readonly string[]): Promise<void> {
  const by = { author: 'bench', reason: 'bench:features' };
  await limiter.policies.set('default', { limits: pair(RPM, TPM / 10) }, by);
  await limiter.policies.set('plan:pro', { limits: [pair()[1]!] }, by);
  await closedLoop((i) => limiter.policies.set(`user:${users[i]}`, { limits: [pair()[0]!] }, by), users.length, 1); // one at a time: each change is checked against the global version
}

/**
 * The policy-resolved limiter. `warm`: every user of `ids` holds an override and its chain is
 * resolved before measuring (the cached path); cold: each operation is a subject never seen
 * (its chain resolved on the way: one policy_read before its decision).
 */
function policyRow(name: string, extra: Record<string, unknown>, warm: boolean, perUser = true): FeatureRow {
  const chain = perUser ? (id: unknown) => ['default', 'plan:pro', `user:${String(id)}`] : () => ['default', 'plan:pro'];
  return {
    name,
    unit: 'decision',
    async make(redis, tag, ids, timeoutMs) {
      const limiter = createPolicyLimiter({ redis, prefix: tag, timeoutMs, chain, ...(pollMs ? { pollMs } : {}), ...extra });
      await storePolicies(limiter, warm ? ids : []);
      if (warm) await closedLoop((i) => limiter.resolved(ids[i]!), ids.length, 16);
      let fresh = 0;
      const readsAtStart = () => (start = limiter.stats().policyReads);
      let start = 0;
      return {
        prepare: async () => void readsAtStart(),
        byId: (id) => limiter.limit(id, { cost: COST }).then((d) => check(name, d)),
        ...(warm ? {} : { op: () => limiter.limit(`${tag}-cold-${fresh++}`, { cost: COST }).then((d) => check(name, d)) }),
        close: () => {
          policyReads.set(name, [...(policyReads.get(name) ?? []), limiter.stats().policyReads - start].slice(-2));
          return limiter.close();
        },
        keyPattern: `${tag}:*`,
      };
    },
  };
}

/** The version poll each policy limiter makes every pollMs (policy_read of the version key). */
function pollRow(): FeatureRow {
  return {
    name: 'policy version poll (one policy_read)',
    unit: 'poll',
    async make(redis, tag, _ids, timeoutMs) {
      const limiter = createPolicyLimiter({ redis, prefix: tag, timeoutMs, chain: () => ['default'], ...(pollMs ? { pollMs } : {}) });
      await storePolicies(limiter, []);
      return { byId: () => limiter.policies.version(), close: () => limiter.close(), keyPattern: `${tag}:*` };
    },
  };
}

function concurrencyRow(name: string): FeatureRow | null {
  if (typeof (createRateLimiter({ limits: pair() }) as { run?: unknown }).run !== 'function') return null;
  return {
    name,
    unit: 'run',
    async make(redis, tag, ids, timeoutMs) {
      const limiter = createRateLimiter({ redis, prefix: tag, limits: [{ name: 'inflight', algo: 'concurrency', limit: 1_000_000, ttlMs: 60_000 }, ...pair()], timeoutMs });
      await limiter.ready();
      return { byId: (id) => limiter.run(id, (d) => check(name, d), { cost: COST }), close: () => limiter.close(), keyPattern: `${tag}:*` };
    },
  };
}

const REFERENCE = 'rate-limiter-flexible RateLimiterRedis';
const R1 = 'return 1 (EVALSHA ceiling)';

function baseRows(): FeatureRow[] {
  return [
    {
      name: R1,
      unit: 'call',
      async make(redis, tag, ids) {
        const sha = (await redis.script('LOAD', 'return 1')) as string;
        return { byId: (id) => redis.evalsha(sha, 1, `${tag}:${id}`, '1'), close: async () => {}, keyPattern: `${tag}:*` };
      },
    },
    {
      name: REFERENCE,
      unit: 'decision',
      async make(redis, tag, ids) {
        const rl = new RateLimiterRedis({ storeClient: redis, keyPrefix: tag, points: RPM, duration: PERIOD_MS / 1000 });
        return { byId: (id) => rl.consume(id).catch((r: unknown) => r), close: async () => {}, keyPattern: `${tag}:*` };
      },
    },
  ];
}

/** Every row of this bench, in report order (the concurrency row only when the limiter has run()). */
function allRows(): FeatureRow[] {
  return [
    ...baseRows(),
    limiterRow('RPM+TPM limit() (defaults: coalesced)', {}),
    limiterRow('RPM+TPM limit(), coalesce off', { coalesce: false }),
    ...reserveRows(),
    limiterRow('priorities limiter, limit() no class', { priorities: PRIORITIES }),
    limiterRow('priorities limiter, limit() class 0.8', { priorities: PRIORITIES }, { priority: 'interactive' }),
    limiterRow('priorities limiter, no class, coalesce off', { priorities: PRIORITIES, coalesce: false }),
    limiterRow('priorities limiter, class 0.8, coalesce off', { priorities: PRIORITIES, coalesce: false }, { priority: 'interactive' }),
    policyRow('policy limiter, warm (defaults: coalesced)', {}, true),
    policyRow('policy limiter, warm, coalesce off', { coalesce: false }, true),
    policyRow('policy limiter, cold chains (coalesced)', {}, false),
    pollRow(),
    ...[concurrencyRow('concurrency + RPM+TPM run()')].filter((r): r is FeatureRow => r !== null),
  ];
}

/**
 * The per-decision rows in bench:compare's contender shape ({ name, make(redis, tag) → { decide(id),
 * close, keyPattern } }): plain RPM+TPM, reserve+commit per pair, a priority class, the policy
 * limiter (its static twin is the plain row), run() with a concurrency limit. `timeoutMs` is read
 * at make time (compare raises it under callgrind). `users`: ids that get a policy override each
 * and a resolved chain default → plan:pro → user:<id> at make time (stored one by one: keep it to
 * a few hundred); without it every subject resolves through one shared chain default → plan:pro,
 * cached after the first decision (bench:compare's callgrind runs have no warm-up, and a per-user
 * chain would put a policy_read before each id's first decision).
 */
export function featureRows(o: { timeoutMs?: () => number; users?: readonly string[] } = {}) {
  const wanted = [
    'RPM+TPM limit() (defaults: coalesced)',
    'reserve() + commit(), per pair',
    'priorities limiter, limit() class 0.8',
    'policy limiter, warm (defaults: coalesced)',
    'concurrency + RPM+TPM run()',
  ];
  const policy = 'policy limiter, warm (defaults: coalesced)';
  return allRows()
    .filter((r) => wanted.includes(r.name))
    .map((r) => (r.name === policy && !o.users ? policyRow('policy limiter, default → plan:pro (one shared chain)', {}, true, false) : r))
    .map((r) => ({
      name: `redlimit ${r.name}`,
      async make(redis: Redis, tag: string) {
        const m = await r.make(redis, tag, o.users ?? [], o.timeoutMs?.() ?? 100);
        return { decide: (id: string) => m.byId(id), close: () => m.close(), keyPattern: m.keyPattern };
      },
    }));
}

// --- measurement ---------------------------------------------------------------------------------

/** Closed loop: `inFlight` callers, each starting its next operation when the last resolves. */
async function closedLoop(op: (i: number) => Promise<unknown>, total: number, inFlight: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(inFlight, total) }, async () => {
      while (next < total) await op(next++);
    }),
  );
  return (performance.now() - started) / 1000;
}

function ids(n: number, seed: number): string[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return `agent-${(x >>> 0) % 1_000_000}`;
  });
}

interface Sample {
  perSec: number;
  nodeCpuUsec: number;
}

/** The i-th operation of a run over `idList`. */
const opOf = (m: Made, idList: readonly string[]) => m.op ?? ((i: number) => m.byId(pick(idList, i)));

async function measure(redis: Redis, r: FeatureRow, tag: string, idList: string[]): Promise<Sample> {
  const m = await r.make(redis, tag, idList, TIMEOUT_MS);
  const op = opOf(m, idList);
  const warm = Math.min(2_000, OPS);
  await m.prepare?.(warm);
  await closedLoop(op, warm, IN_FLIGHT);
  await m.prepare?.(OPS);
  const cpu = process.cpuUsage();
  const seconds = await closedLoop(op, OPS, IN_FLIGHT);
  const used = process.cpuUsage(cpu);
  await m.close();
  return { perSec: OPS / seconds, nodeCpuUsec: (used.user + used.system) / OPS };
}

/** Redis instructions per operation: runs of n and 3n after the same set-up, warm-up and preparation. */
async function instructionsPerOp(r: FeatureRow, idList: string[], n: number): Promise<number> {
  const run = (count: number) =>
    instructionsOf(async (redis) => {
      const m = await r.make(redis, 'cg', idList, 30_000);
      const op = opOf(m, idList);
      await m.prepare?.(idList.length);
      await closedLoop(op, idList.length, CG_IN_FLIGHT); // every id touched: keys exist, chains resolved
      await m.prepare?.(3 * n);
      await closedLoop(op, count, CG_IN_FLIGHT);
      await m.close();
    });
  const few = await run(n);
  const many = await run(3 * n);
  return (many - few) / (2 * n);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const int = (n: number) => Math.round(n).toLocaleString('en-US');

function table(head: string[], rows: (string | number)[][]): void {
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

// --- memory per override --------------------------------------------------------------------------

async function overrideMemory(redis: Redis): Promise<void> {
  await redis.flushall();
  const tag = 'mem';
  const limiter = createPolicyLimiter({ redis, prefix: tag, chain: (id) => ['default', 'plan:pro', `user:${String(id)}`] });
  await storePolicies(limiter, []);
  const k = limiter.policies.keys;
  const usage = async (key: string) => Number((await redis.memory('USAGE', key, 'SAMPLES', '0')) ?? 0);
  const namesBefore = await usage(k.names);
  const usedBefore = Number(/used_memory:(\d+)/.exec((await redis.info('memory')) as string)![1]);
  const users = Array.from({ length: OVERRIDES }, (_, i) => `u${i}`);
  const by = { author: 'bench', reason: 'one override per user' };
  await closedLoop((i) => limiter.policies.set(`user:${users[i]}`, { limits: [{ name: 'rpm', algo: 'gcra', limit: 600 + i, periodMs: PERIOD_MS }] }, by), users.length, 1); // one at a time: each change is checked against the global version
  const usedAfter = Number(/used_memory:(\d+)/.exec((await redis.info('memory')) as string)![1]);
  let doc = 0;
  let hist = 0;
  let docBytes = 0;
  for (const u of users) {
    doc += await usage(k.doc(`user:${u}`));
    hist += await usage(k.history(`user:${u}`));
    docBytes += Number(await redis.strlen(k.doc(`user:${u}`)).catch(() => 0));
  }
  const names = (await usage(k.names)) - namesBefore;
  const keyTypes = `${await redis.type(k.doc(`user:${users[0]}`))} / ${await redis.type(k.history(`user:${users[0]}`))} / ${await redis.type(k.names)}`;
  console.log(`\n## Memory per stored policy override (${OVERRIDES} overrides \`user:uN\`, each one gcra limit, one version each)\n`);
  console.log(`key types (doc / history / names): ${keyTypes}; the document value ${fmt(docBytes / OVERRIDES, 0)} B on average\n`);
  table(
    ['what', 'bytes per override'],
    [
      ['current document key (`…:{policies}:doc:user:uN`)', fmt(doc / OVERRIDES, 0)],
      ['history key, one version (`…:history:user:uN`)', fmt(hist / OVERRIDES, 0)],
      ['its entry in the names set', fmt(names / OVERRIDES, 0)],
      ['**sum of MEMORY USAGE**', `**${fmt((doc + hist + names) / OVERRIDES, 0)}**`],
      ['INFO used_memory growth (cross-check: keyspace overhead included)', fmt((usedAfter - usedBefore) / OVERRIDES, 0)],
    ],
  );
  const versions = 10;
  const u0 = users[0]!;
  for (let v = 1; v < versions; v++) await limiter.policies.set(`user:${u0}`, { limits: [{ name: 'rpm', algo: 'gcra', limit: 700 + v, periodMs: PERIOD_MS }] }, by);
  console.log(`\nOne override after ${versions} versions: history ${int(await usage(k.history(`user:${u0}`)))} B (each version adds one entry; history keeps ${100} by default).`);
  await limiter.close();
}

// --- main ------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const own = process.env.REDIS_URL ? undefined : await startLocalRedis();
  const url = process.env.REDIS_URL ?? own!.url;
  const redis = new Redis(url, { enableOfflineQueue: true, autoResendUnfulfilledCommands: false });
  const only = process.env.BENCH_ROWS ? new RegExp(process.env.BENCH_ROWS) : null;
  const rows = allRows().filter((r) => r.name === REFERENCE || !only || only.test(r.name));
  const pkg = (name: string) => JSON.parse(readFileSync(join('node_modules', name, 'package.json'), 'utf8')).version as string;
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--short', 'scripts-lua', 'src', 'generated'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  const version = ((await redis.info('server')) as string).match(/redis_version:(\S+)/)?.[1];
  console.log(`# redlimit bench:features — ${new Date().toISOString()}`);
  console.log(`commit ${head}${dirty.length ? ` + ${dirty.length} uncommitted paths under scripts-lua/src/generated (git status --short)` : ''}`);
  const used = ['gcra', 'batch', 'multi', 'multi_batch', 'reserve', 'settle', 'concurrency_release', 'policy_read'];
  const defs = Object.values(bindings).filter((x): x is typeof bindings.reserveScript => typeof x === 'object' && x !== null && 'sha1' in x && 'source' in x);
  console.log(`scripts loaded (from generated/ at start): ${used.map((n) => defs.find((d) => d.name === n)).filter((d) => d !== undefined).map((d) => `${d.name} v${d.version} ${d.sha1.slice(0, 8)}`).join(', ')}`);
  console.log(`node ${process.version}, redis ${version}, ioredis ${pkg('ioredis')}, rate-limiter-flexible ${pkg('rate-limiter-flexible')}`);
  console.log(`${OPS} operations per run, ${IN_FLIGHT} in flight, ${IDS} seeded ids, ${ROUNDS} round(s), rows interleaved${CI ? ' (reduced CI mode)' : ''}`);
  console.log(`RPM (cost 1) + TPM (estimate ${ESTIMATE}, commit ${ACTUAL}), both gcra; priorities ${JSON.stringify(PRIORITIES)}\n`);
  if (!rows.some((r) => r.name.startsWith('concurrency'))) console.log('(no concurrency row: RateLimiter has no run())\n');
  const idList = ids(IDS, 42);
  try {
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < (SECTIONS.has('throughput') ? ROUNDS : 0); round++) {
      for (const r of rows) {
        await redis.flushall();
        const s = await measure(redis, r, `b${round}`, idList);
        samples.set(r.name, [...(samples.get(r.name) ?? []), s]);
        process.stdout.write('.');
      }
    }
    if (SECTIONS.has('throughput')) console.log(`\n\n## Throughput (operations/s, median [min–max] of ${ROUNDS}; ratios of medians in this run)\n`);
    const per = (name: string) => median(samples.get(name)?.map((s) => s.perSec) ?? [NaN]);
    const ref = per(REFERENCE);
    const r1 = per(R1);
    if (SECTIONS.has('throughput')) table(
      ['row', 'unit', 'ops/s', '×rlf', '×r1', 'Node CPU µs/op'],
      rows.map((r) => {
        const s = samples.get(r.name)!.map((x) => x.perSec);
        return [r.name, r.unit, `${int(median(s))} [${int(Math.min(...s))}–${int(Math.max(...s))}]`, fmt(per(r.name) / ref, 2), fmt(per(r.name) / r1, 2), fmt(median(samples.get(r.name)!.map((x) => x.nodeCpuUsec)), 1)];
      }),
    );

    if (CALLGRIND && SECTIONS.has('callgrind')) {
      pollMs = 3_600_000;
      console.log(`\n## Redis instructions per operation (callgrind: runs of ${CG_OPS} and ${3 * CG_OPS} operations over ${CG_IDS} ids, ${CG_IN_FLIGHT} in flight, after the same warm-up)\n`);
      const cgIds = ids(CG_IDS, 7);
      const counts = new Map<string, number>();
      for (const r of rows) {
        counts.set(r.name, await instructionsPerOp(r, cgIds, CG_OPS));
        process.stdout.write('.');
      }
      console.log('');
      const base = counts.get(REFERENCE)!;
      table(
        ['row', 'unit', 'instructions/op', '×rlf'],
        rows.map((r) => [r.name, r.unit, int(counts.get(r.name)!), fmt(counts.get(r.name)! / base, 2)]),
      );
      for (const [name, reads] of policyReads) console.log(`\n${name}: ${reads.join(' / ')} policy reads in the measured part of the N / 3N runs`);
      const ratio = (a: string, b: string) => (counts.has(a) && counts.has(b) ? counts.get(a)! / counts.get(b)! : NaN);
      const pct = (a: string, b: string) => `${fmt((ratio(a, b) - 1) * 100, 1)}%`;
      console.log('\nRatios (instructions):');
      const plainOff = 'RPM+TPM limit(), coalesce off';
      const plain = 'RPM+TPM limit() (defaults: coalesced)';
      table(
        ['ratio', 'value'],
        [
          ['reserve() / plain limit(), coalesce off (one multi each)', fmt(ratio('reserve() alone', plainOff), 2)],
          ['reserve() / plain limit(), coalesced', fmt(ratio('reserve() alone', plain), 2)],
          ['commit() / plain limit(), coalesce off', fmt(ratio('commit() alone', plainOff), 2)],
          ['commit() / plain limit(), coalesced', fmt(ratio('commit() alone', plain), 2)],
          ['reserve+commit pair / plain limit(), coalesce off', fmt(ratio('reserve() + commit(), per pair', plainOff), 2)],
          ['priority class vs none (coalesced)', pct('priorities limiter, limit() class 0.8', 'priorities limiter, limit() no class')],
          ['priority class vs none (coalesce off)', pct('priorities limiter, class 0.8, coalesce off', 'priorities limiter, no class, coalesce off')],
          ['limiter with priorities, no class, vs plain (coalesced)', pct('priorities limiter, limit() no class', plain)],
          ['policy warm vs static (coalesced)', pct('policy limiter, warm (defaults: coalesced)', plain)],
          ['policy warm vs static (coalesce off)', pct('policy limiter, warm, coalesce off', plainOff)],
          ['policy cold chain vs static (coalesced)', pct('policy limiter, cold chains (coalesced)', plain)],
          ['run() (decide + release) / plain limit(), coalesce off', fmt(ratio('concurrency + RPM+TPM run()', plainOff), 2)],
          ['one version poll / plain limit(), coalesced (a limiter polls 2×/s by default)', fmt(ratio('policy version poll (one policy_read)', plain), 2)],
        ],
      );
    } else console.log('\n(callgrind skipped: valgrind missing, BENCH_CALLGRIND=0 or CI mode)');

    if (anomalies.size > 0) console.log(`\nWARNING: operations not admitted by Redis (denied, fallback, or not committed): ${JSON.stringify(Object.fromEntries(anomalies))}`);
    else console.log('\nEvery operation was admitted by Redis (source redis; every commit committed).');

    if (SECTIONS.has('memory')) await overrideMemory(redis);
  } finally {
    redis.disconnect();
    await own?.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
