/**
 * The cost of policy resolution: `npx tsx test/policy/bench.ts [redisUrl]`. A plain RateLimiter
 * and a PolicyLimiter giving the same limit (through a 4-layer chain with an environment scale)
 * decide in turns, round by round, at a fixed number in flight over 10k ids. Per contender:
 * decisions/s, Redis script calls and Redis µs per decision (INFO commandstats); then the cost of
 * one uncached resolution (a policy_read) and the memory of a stored override (MEMORY USAGE).
 */
import { Redis } from 'ioredis';
import { createRateLimiter } from '../../src/index.js';
import { createPolicyLimiter } from '../../src/policy/index.js';

const url = process.argv[2] ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 40_000);
const IN_FLIGHT = 256;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const redis = new Redis(url, { enableOfflineQueue: false });
await new Promise((r) => redis.once('ready', r));
const tag = `bench-policy-${process.pid}`;
const spec = { name: 'rpm', algo: 'gcra' as const, limit: 1_000_000, periodMs: 60_000 };

async function stats(): Promise<{ calls: number; usec: number }> {
  const info = await redis.info('commandstats');
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)) {
    if (['evalsha', 'evalsha_ro', 'eval', 'eval_ro', 'fcall', 'fcall_ro'].includes(m[1]!)) {
      calls += Number(m[2]);
      usec += Number(m[3]);
    }
  }
  return { calls, usec };
}

async function drive(decide: (id: string) => Promise<unknown>): Promise<{ perSec: number; calls: number; usec: number; cpu: number }> {
  const before = await stats();
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < DECISIONS) await decide(`id${next++ % 10_000}`);
    }),
  );
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const after = await stats();
  return { perSec: DECISIONS / s, calls: (after.calls - before.calls - 1) / DECISIONS, usec: (after.usec - before.usec) / DECISIONS, cpu: (cpu.user + cpu.system) / DECISIONS };
}

const coalesce = process.env.BENCH_COALESCE !== '0';
const plain = createRateLimiter({ redis, prefix: `${tag}-plain`, limits: [spec], coalesce });
const policy = createPolicyLimiter({ redis, prefix: `${tag}-policy`, chain: (s) => ['default', 'plan:pro', `org:${typeof s === 'string' ? s.slice(0, 3) : 'x'}`], environment: 'production', coalesce });
await policy.policies.set('default', { limits: [{ ...spec, limit: 10 }] }, { author: 'bench' });
await policy.policies.set('plan:pro', { limits: [spec] }, { author: 'bench' });
await policy.policies.set('env:production', { scale: 1 }, { author: 'bench' });
await plain.limit('warm');
await policy.limit('warm');
const rows: Record<string, Array<{ perSec: number; calls: number; usec: number; cpu: number }>> = { plain: [], policy: [] };
for (let r = 0; r < ROUNDS; r++) {
  rows.plain!.push(await drive((id) => plain.limit(id)));
  rows.policy!.push(await drive((id) => policy.limit(id)));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [name, rs] of Object.entries(rows)) {
  console.log(`${name.padEnd(7)} ${Math.round(median(rs.map((x) => x.perSec)))} decisions/s, ${median(rs.map((x) => x.calls)).toFixed(3)} script calls/decision, ${median(rs.map((x) => x.usec)).toFixed(2)} Redis µs/decision, ${median(rs.map((x) => x.cpu)).toFixed(2)} Node CPU µs/decision`);
}
const ratio = median(rows.policy!.map((x) => x.perSec)) / median(rows.plain!.map((x) => x.perSec));
console.log(`policy / plain decisions/s: ${ratio.toFixed(3)}; Node CPU per decision: ${(median(rows.policy!.map((x) => x.cpu)) / median(rows.plain!.map((x) => x.cpu))).toFixed(3)}x (the steadier measure on a shared machine)`);

// One uncached resolution: what the first decision after a change costs (one policy_read of 4 entries).
const before = await stats();
const N = 2000;
for (let i = 0; i < N; i++) await policy.policies.read([0, 1, 2, 3].map((j) => policy.policies.keys.doc(['default', 'plan:pro', 'org:abc', 'env:production'][j]!)));
const after = await stats();
console.log(`uncached resolution (policy_read of 4 entries): ${((after.usec - before.usec) / N).toFixed(2)} Redis µs, 1 script call`);

// Memory of one stored override: its entry, one history entry, its name in the set.
const keys = policy.policies.keys;
await policy.policies.set('user:42', { limits: [{ name: 'rpm', algo: 'gcra', limit: 600, periodMs: 60_000, burst: 20 }] }, { author: 'ops@example.com', reason: 'customer 42 upgrade' });
const doc = Number(await redis.memory('USAGE', keys.doc('user:42')));
const hist = Number(await redis.memory('USAGE', keys.history('user:42')));
console.log(`one override (one limit): entry ${doc} B + history (1 version) ${hist} B + a name in the set; each further version adds about ${doc - 60} B of history (up to 100 kept)`);
await plain.close();
await policy.close();
for (const p of [`${tag}-plain`, `${tag}-policy`]) {
  let cursor = '0';
  do {
    const [c, found] = await redis.scan(cursor, 'MATCH', `${p}:*`, 'COUNT', 1000);
    cursor = c;
    if (found.length) await redis.del(...found);
  } while (cursor !== '0');
}
redis.disconnect();
