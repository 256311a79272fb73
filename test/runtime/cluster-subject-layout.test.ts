import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import { createRateLimiter, type Decision, type LimitSpec, type RateLimiter } from '../../src/index.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';

/**
 * layout: 'subject' on a real 3-primary cluster, through both clients: a turn's decisions over
 * many subjects (many slots) are coalesced into tiers calls per slot (each subject's one key
 * declared), and every decision is what the same limiter with a key per limit answers.
 */
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster();
}, 60_000);
afterAll(() => cluster?.stop());

const limits: LimitSpec[] = [
  { name: 'm', algo: 'gcra', limit: 4, periodMs: 60_000 },
  { name: 'h', algo: 'sliding_window', limit: 9, periodMs: 3_600_000 },
  { name: 'd', algo: 'quota', limit: 15, unit: 'day' },
];
const seen = (d: Decision) => ({ allowed: d.allowed, deniedBy: d.deniedBy, remaining: d.remaining, retryAfterMs: d.retryAfterMs, limits: d.limits, source: d.source });

describe("layout: 'subject' on a Redis Cluster", () => {
  for (const client of ['ioredis', 'node-redis'] as const) {
    it(`decides a turn of many subjects as a key per limit does (${client})`, async () => {
      let redis: Cluster | ReturnType<typeof createCluster>;
      if (client === 'ioredis') {
        redis = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
        redis.on('error', () => {});
      } else {
        redis = createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
        redis.on('error', () => {});
        await redis.connect();
      }
      const now = { t: Date.UTC(2026, 11, 2, 12, 0, 0) };
      const tag = `csl-${client}-${process.pid}`;
      const make = (layout: 'per-limit' | 'subject') =>
        createRateLimiter({ redis: redis as never, prefix: `${tag}-${layout}`, limits, layout, sendClock: true, clock: () => now.t, denyCache: false, timeoutMs: 10_000 });
      const a: RateLimiter = make('per-limit');
      const b: RateLimiter = make('subject');
      await Promise.all([a.ready(), b.ready()]);
      const ids = Array.from({ length: 40 }, (_, i) => `u${i}`);
      for (let round = 0; round < 12; round++) {
        const turn = ids.flatMap((id, i) => (i % 3 === round % 3 ? [id, id] : [id]));
        const [xs, ys] = await Promise.all([Promise.all(turn.map((id) => a.limit(id))), Promise.all(turn.map((id) => b.limit(id)))]);
        expect(ys.map(seen)).toEqual(xs.map(seen));
        now.t += 7_000;
      }
      const denied = (await Promise.all(ids.map((id) => b.peek(id)))).filter((d) => d.limits.some((l) => l.remaining === 0));
      expect(denied.length).toBeGreaterThan(0);
      await Promise.all([a.close(), b.close()]);
      if (client === 'ioredis') (redis as Cluster).disconnect();
      else await (redis as ReturnType<typeof createCluster>).close();
    }, 60_000);
  }
});
