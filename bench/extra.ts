import type { Redis } from 'ioredis';
import { leaseRate } from './client.js';
import { twinGcraRate } from './twin.js';

/** Benches beyond the per-script server cost; each returns printable lines. */
export const benches: ((redis: Redis) => Promise<string[]>)[] = [
  async () => {
    const runs = [0, 1, 2].map(() => twinGcraRate(5_000_000, 10_000));
    const best = Math.max(...runs.map((r) => r.perSecond));
    // Round-robin over a million keys defeats every cache: a worst case, shown for scale.
    const wide = twinGcraRate(3_000_000, 1_000_000);
    return [
      `in-memory twin, gcra, 10k keys, one process: ${Math.round(best).toLocaleString('en-US')} decisions/s (target >= 5,000,000 ${best >= 5e6 ? 'ok' : 'MISSED'})`,
      `in-memory twin, gcra, 1M keys round-robin (cache-hostile), one process: ${Math.round(wide.perSecond).toLocaleString('en-US')} decisions/s, ${wide.storeSize.toLocaleString('en-US')} keys held`,
    ];
  },
  async (redis) => {
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await leaseRate(redis, 100, 1_000_000));
    const best = runs.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
    return [
      `client with leases of 100, one fleet-wide limit, one process: ${Math.round(best.perSecond).toLocaleString('en-US')} decisions/s, ${(best.redisShare * 100).toFixed(2)}% of them waited on Redis (target >= 1,000,000 ${best.perSecond >= 1e6 ? 'ok' : 'MISSED'})`,
    ];
  },
];
