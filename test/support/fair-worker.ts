/**
 * One process of the fair-share fleet test: asks for its tenants' demand in chunks, round-robin,
 * every tenant's call of a round in flight at once, all on one fixed clock (nowMs) so no window
 * rolls and no tenant leaves mid-test. Each tenant makes exactly ceil(demand / chunk) calls
 * (bounded; a denial is not retried). argv: redisUrl prefix name limit nowMs chunk tenant=demand...
 * Prints { admitted: { tenant: units }, reasons: { reason: count } } as JSON on stdout.
 */
import { Redis } from 'ioredis';
import { createFairShare } from '../../src/client/fair-share.js';

const [url, prefix, name, limitArg, nowArg, chunkArg, ...demands] = process.argv.slice(2);
const redis = new Redis(url!, { maxRetriesPerRequest: 1 });
const fair = createFairShare({ redis, prefix, name: name!, limit: { algo: 'fixed_window', limit: Number(limitArg), periodMs: 3_600_000 } });
const chunk = Number(chunkArg);
const nowMs = Number(nowArg);
const tenants = demands.map((d) => {
  const [tenant, units] = d.split('=');
  return { tenant: tenant!, calls: Math.ceil(Number(units) / chunk) };
});
const admitted: Record<string, number> = {};
const reasons: Record<string, number> = {};
for (const t of tenants) admitted[t.tenant] = 0;
const rounds = Math.max(...tenants.map((t) => t.calls));
for (let round = 0; round < rounds; round++) {
  await Promise.all(
    tenants
      .filter((t) => round < t.calls)
      .map(async (t) => {
        const d = await fair.limit(t.tenant, { cost: chunk, nowMs });
        if (d.allowed) admitted[t.tenant]! += chunk;
        reasons[d.reason] = (reasons[d.reason] ?? 0) + 1;
      }),
  );
}
process.stdout.write(JSON.stringify({ admitted, reasons }));
redis.disconnect();
