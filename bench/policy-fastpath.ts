/**
 * A small driver for the policy limiter's cached fast path: the static RPM+TPM limiter and the
 * warm policy limiter (chain default → plan:pro → user:<id>) on one Redis, closed loop, rows
 * interleaved (each round starting one row later); prints Node CPU µs per decision and decisions/s
 * for each, and per round the ratio to the static row and the CPU difference. REDIS_URL required.
 * Env: N (decisions per run, 20000), ROUNDS (3), IN_FLIGHT (256), IDS (1000), ONLY (static|policy|before), COALESCE (1), TIMEOUT_MS (5000),
 * BEFORE (a module path exporting another createPolicyLimiter, e.g. an earlier src/policy/limiter.ts copied beside it: an A/B row).
 */
import { Redis } from 'ioredis';
import { createPolicyLimiter, createRateLimiter, type LimitSpec } from '../src/index.js';

const N = Number(process.env.N ?? 20_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 256);
const IDS = Number(process.env.IDS ?? 1_000);
const COALESCE = process.env.COALESCE !== '0';
/** The limiters' Redis deadline: on a loaded machine the default 100 ms is missed now and then, and a decision from the fallback stops the run. */
const TIMEOUT_MS = Number(process.env.TIMEOUT_MS ?? 5_000);
const pair = (rpm = 1_000_000, tpm = 1_000_000_000): LimitSpec[] => [
  { name: 'rpm', algo: 'gcra', limit: rpm, periodMs: 60_000 },
  { name: 'tpm', algo: 'gcra', limit: tpm, periodMs: 60_000 },
];
const COST = { rpm: 1, tpm: 500 };
const ids = Array.from({ length: IDS }, (_, i) => `u${i}`);

async function loop(fn: (id: string) => Promise<unknown>): Promise<{ perSec: number; cpuUs: number }> {
  let next = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < N) await fn(ids[next++ % IDS]!);
  }));
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { perSec: (N / ms) * 1000, cpuUs: (c.user + c.system) / N };
}

/** Only the synchronous part of each call (up to its promise), 256 calls at a time: the wrapper's own work, less of the scheduling noise. */
async function syncPart(fn: (id: string) => Promise<unknown>): Promise<number> {
  let t = 0;
  for (let i = 0; i < N; i += 256) {
    const ps: Promise<unknown>[] = [];
    const t0 = performance.now();
    for (let j = 0; j < 256; j++) ps.push(fn(ids[(i + j) % IDS]!));
    t += performance.now() - t0;
    await Promise.all(ps);
  }
  return (t / N) * 1000;
}

async function main(): Promise<void> {
  const redis = new Redis(process.env.REDIS_URL!);
  await redis.flushall();
  const s = createRateLimiter({ redis, prefix: 's', limits: pair(), coalesce: COALESCE, timeoutMs: TIMEOUT_MS });
  await s.ready();
  const p = createPolicyLimiter({ redis, prefix: 'p', coalesce: COALESCE, timeoutMs: TIMEOUT_MS, chain: (id) => ['default', 'plan:pro', `user:${String(id)}`] });
  const by = { author: 'bench', reason: 'fastpath' };
  await p.policies.set('default', { limits: pair(1_000_000, 100_000_000) }, by);
  await p.policies.set('plan:pro', { limits: [pair()[1]!] }, by);
  for (const u of ids) await p.policies.set(`user:${u}`, { limits: [pair()[0]!] }, by);
  for (const u of ids) await p.limit(u, { cost: COST });
  for (const u of ids) await s.limit(u, { cost: COST });
  const before = process.env.BEFORE ? await (async () => {
    const { createPolicyLimiter: mk } = (await import(process.env.BEFORE!)) as { createPolicyLimiter: typeof createPolicyLimiter };
    const b = mk({ redis, prefix: 'b', coalesce: COALESCE, timeoutMs: TIMEOUT_MS, chain: (id) => ['default', 'plan:pro', `user:${String(id)}`] });
    await b.policies.set('default', { limits: pair(1_000_000, 100_000_000) }, by);
    await b.policies.set('plan:pro', { limits: [pair()[1]!] }, by);
    for (const u of ids) await b.policies.set(`user:${u}`, { limits: [pair()[0]!] }, by);
    for (const u of ids) await b.limit(u, { cost: COST });
    return b;
  })() : null;
  const rows: Record<string, (id: string) => Promise<unknown>> = {
    ...(before ? { before: (id: string) => before.limit(id, { cost: COST }).then((d) => { if (!d.allowed || d.source !== 'redis') throw new Error('denied'); }) } : {}),
    static: (id) => s.limit(id, { cost: COST }).then((d) => { if (!d.allowed) throw new Error('denied'); }),
    ...(process.env.COMPILED ? { compiled: (id: string) => [...(p as unknown as { compiled: Map<string, { limiter: ReturnType<typeof createRateLimiter> }> }).compiled.values()][0]!.limiter.limit(id, { cost: COST }).then((d) => { if (!d.allowed) throw new Error('denied'); }) } : {}),
    policy: (id) => p.limit(id, { cost: COST }).then((d) => { if (!d.allowed || d.source !== 'redis') throw new Error('denied'); }),
  };
  const out: Record<string, { perSec: number; cpuUs: number; syncUs: number }[]> = {};
  const order = Object.entries(rows);
  for (let r = 0; r < ROUNDS; r++) {
    // Each round starts one row later (no row always runs after the same one).
    for (const [name, fn] of [...order.slice(r % order.length), ...order.slice(0, r % order.length)]) {
      if (process.env.ONLY && process.env.ONLY !== name) continue;
      const calls = async () => [...((await redis.info('commandstats')) as string).matchAll(/cmdstat_(\w+):calls=(\d+)/g)].filter((m) => /^(evalsha|fcall|eval|fcall_ro|evalsha_ro)$/.test(m[1]!)).reduce((a, m) => a + Number(m[2]), 0);
      const c0 = await calls();
      (out[name] ??= []).push({ ...(await loop(fn)), syncUs: await syncPart(fn) });
      if (r === ROUNDS - 1) console.log(`${name}: ${(N / ((await calls()) - c0 - 0)).toFixed(1)} decisions per script call`);
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, xs] of Object.entries(out)) console.log(`${name}: ${Math.round(med(xs.map((x) => x.perSec)))} /s, CPU ${med(xs.map((x) => x.cpuUs)).toFixed(2)} µs/decision (min ${Math.min(...xs.map((x) => x.cpuUs)).toFixed(2)}), synchronous part ${med(xs.map((x) => x.syncUs)).toFixed(2)} µs (min ${Math.min(...xs.map((x) => x.syncUs)).toFixed(2)})  (${xs.map((x) => x.cpuUs.toFixed(1)).join(' ')})`);
  // Per round (the rows of one round ran back to back): the ratio and the CPU difference, median and range.
  const paired = (row: string) => {
    const a = out[row]!, s0 = out.static!;
    const ratio = a.map((x, i) => x.perSec / s0[i]!.perSec);
    const cpu = a.map((x, i) => x.cpuUs - s0[i]!.cpuUs);
    const r = (xs: number[], d: number) => `${med(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
    console.log(`${row}/static decisions/s ${(med(a.map((x) => x.perSec)) / med(s0.map((x) => x.perSec))).toFixed(3)}; +${(med(a.map((x) => x.cpuUs)) - med(s0.map((x) => x.cpuUs))).toFixed(2)} µs CPU; per round: ${r(ratio, 3)}x, ${r(cpu, 2)} µs CPU`);
  };
  if (out.static && out.before) paired('before');
  if (out.static && out.policy) paired('policy');
  console.log(`policy reads: ${p.stats().policyReads}, resolutions: ${p.stats().resolutions}`);
  await p.close();
  await before?.close();
  await s.close();
  redis.disconnect();
}
void main();
