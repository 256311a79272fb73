import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { createRateLimiter, hashSlot, type LimitSpec } from '../../src/index.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';
import { UNHURRIED } from '../support/redis.js';

// What makes the scaling model in BENCHMARKS.md ("Issue 17: scaling past one machine") hold: one
// id's tier keys live in one slot (a decision touches one shard), and ids as a service names them
// spread evenly over the primaries (a shard carries its share of the keys and the calls).
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster();
}, 60_000);
afterAll(() => cluster?.stop());

// Every key lives an hour or a day, so every key is still there when the test counts.
const TIERS: LimitSpec[] = [
  { name: 'minute', algo: 'gcra', limit: 1, periodMs: 3_600_000 },
  { name: 'hour', algo: 'sliding_window', limit: 10_000, periodMs: 3_600_000 },
  { name: 'day', algo: 'quota', limit: 100_000, unit: 'day' },
];

/** 3000 ids as a service has them: 1500 `user:<n>` and 1500 UUIDs (seeded, so every run sees the same ids). */
function serviceIds(): string[] {
  let x = 0x2545f491;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0).toString(16).padStart(8, '0');
  };
  const uuids = Array.from({ length: 1500 }, () => {
    const [a, b, c, d] = [next(), next(), next(), next()];
    return `${a}-${b.slice(0, 4)}-4${b.slice(5)}-a${c.slice(1, 4)}-${c.slice(4)}${d}`;
  });
  return [...Array.from({ length: 1500 }, (_, n) => `user:${n + 1}`), ...uuids];
}

describe('Redis Cluster: keys spread', () => {
  // A key per limit: each id's 3 tier keys; one key per subject (the default): its one key.
  for (const [layout, perId, prefix] of [['per-limit', 3, 'spread'], ['auto', 1, 'spreadone']] as const) {
    it(`puts each id's keys in one slot (${perId} per id, layout ${layout}), and 3000 service ids within ±15% of the mean on each of 3 primaries`, async () => {
      const client = new Cluster(cluster.nodes, { slotsRefreshInterval: 0 });
      client.on('error', () => {});
      const masters = cluster.nodes.map((n) => new Redis(n.port, n.host));
      const limiter = createRateLimiter({ redis: client, prefix, limits: TIERS, layout, ...UNHURRIED });
      const named = new RegExp(`^${prefix}:\\{(.*)\\}:(${perId === 3 ? 'minute|hour|day' : 'minute\\+hour\\+day'})$`);
      try {
        const ids = serviceIds();
        expect(new Set(ids).size).toBe(3000);
        let next = 0;
        const worker = async () => {
          while (next < ids.length) {
            const id = ids[next++]!;
            expect(await limiter.limit(id)).toMatchObject({ allowed: true, source: 'redis' });
          }
        };
        await Promise.all(Array.from({ length: 64 }, worker));

        // Every key the decisions wrote, read back from the primaries that hold them.
        const slotsOf = new Map<string, Set<number>>();
        const perPrimary: number[] = [];
        for (const m of masters) {
          const keys: string[] = [];
          let cursor = '0';
          do {
            const [c, batch] = await m.scan(cursor, 'MATCH', `${prefix}:{*`, 'COUNT', 1000);
            cursor = c;
            keys.push(...batch);
          } while (cursor !== '0');
          const p = m.pipeline();
          for (const key of keys) p.cluster('KEYSLOT', key);
          const slots = (await p.exec())!.map(([err, slot]) => (err ? -1 : Number(slot)));
          keys.forEach((key, i) => {
            const id = named.exec(key)![1]!;
            slotsOf.set(id, (slotsOf.get(id) ?? new Set()).add(slots[i]!));
          });
          const count = keys.length;
          perPrimary.push(count);
        }
        expect([...slotsOf.keys()].sort()).toEqual([...ids].sort());
        for (const [id, slots] of slotsOf) expect({ id, slots: slots.size }).toEqual({ id, slots: 1 });
        expect(perPrimary.reduce((a, b) => a + b, 0)).toBe(perId * ids.length);
        const mean = (perId * ids.length) / 3;
        for (const count of perPrimary) {
          expect(count).toBeGreaterThanOrEqual(0.85 * mean);
          expect(count).toBeLessThanOrEqual(1.15 * mean);
        }
      } finally {
        await limiter.close();
        client.disconnect();
        for (const m of masters) m.disconnect();
      }
    });
  }
});
