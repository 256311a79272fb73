import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ioredis5 from 'ioredis';
import * as ioredis6 from 'ioredis6';
import * as redis5 from 'redis';
import * as redis6 from 'redis6';
import * as b from '../../generated/index.js';
import { createRateLimiter, TwinClient } from '../../src/index.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';
import { redisUrl, UNHURRIED, uniquePrefix } from '../support/redis.js';

/**
 * Both majors of both clients (ioredis 5 and 6, node-redis 5 and 6), standalone and on a real
 * local Cluster: the same decisions through every path (own script, coalesced batch, multi,
 * peek, refund, reset), and the same bytes as the twin.
 */
type Made = { client: object; close(): Promise<void> };
const standalone: Record<string, () => Promise<Made>> = {
  'ioredis 5': async () => {
    const c = new ioredis5.Redis(redisUrl());
    return { client: c, close: async () => void c.disconnect() };
  },
  'ioredis 6': async () => {
    const c = new ioredis6.Redis(redisUrl());
    return { client: c, close: async () => void c.disconnect() };
  },
  'node-redis 5': async () => {
    const c = redis5.createClient({ url: redisUrl() });
    await c.connect();
    return { client: c, close: async () => void c.destroy() };
  },
  'node-redis 6': async () => {
    const c = redis6.createClient({ url: redisUrl() });
    await c.connect();
    return { client: c, close: async () => void c.destroy() };
  },
};

async function exercise(client: object, prefix: string) {
  const one = createRateLimiter({ redis: client, prefix: `${prefix}a`, limits: { name: 'r', algo: 'gcra', limit: 3, periodMs: 3_600_000 }, ...UNHURRIED });
  const many = createRateLimiter({
    redis: client,
    prefix: `${prefix}b`,
    limits: [
      { name: 'rpm', algo: 'sliding_log', limit: 2, periodMs: 60_000 },
      { name: 'day', algo: 'quota', limit: 10, unit: 'day' },
    ],
    ...UNHURRIED,
  });
  await Promise.all([one.ready(), many.ready()]);
  const batch = await Promise.all(['x', 'x', 'y', 'x', 'x'].map((id) => one.limit(id))); // coalesced
  const single = await one.limit('z');
  const multi = [await many.limit('m'), await many.limit('m'), await many.limit('m')];
  const peek = await many.peek('m');
  await one.refund('x', { cost: 1 });
  const afterRefund = await one.peek('x');
  await one.reset('y');
  const afterReset = await one.peek('y');
  await one.close();
  await many.close();
  return {
    sources: [...batch, single, ...multi, peek, afterRefund, afterReset].map((d) => d.source),
    batch: batch.map((d) => [d.allowed, d.remaining]),
    single: [single.allowed, single.remaining],
    multi: multi.map((d) => [d.allowed, d.deniedBy]),
    peek: peek.limits.map((l) => l.remaining),
    refunded: afterRefund.remaining,
    reset: afterReset.remaining,
  };
}

const expected = {
  batch: [
    [true, 2],
    [true, 1],
    [true, 2],
    [true, 0],
    [false, 0],
  ],
  single: [true, 2],
  multi: [
    [true, null],
    [true, null],
    [false, 'rpm'],
  ],
  peek: [0, 8],
  refunded: 1,
  reset: 3,
};

describe.each(Object.keys(standalone))('%s, standalone', (name) => {
  it('decides through every path exactly as expected, and the binding matches the twin', async () => {
    const made = await standalone[name]!();
    try {
      const got = await exercise(made.client, uniquePrefix(name.replace(/\W/g, '')));
      expect(new Set(got.sources)).toEqual(new Set(['redis']));
      expect(got).toMatchObject(expected);
      const args = { key: `${uniquePrefix('cl')}{k}`, limit: 5, periodMs: 1000, nowMs: 1_800_000_000_000, cost: 2 };
      expect(await b.gcra(made.client, args)).toEqual(await b.gcra(new TwinClient(), args));
    } finally {
      await made.close();
    }
  });
});

describe('on a real Cluster', () => {
  let cluster: LocalCluster;
  beforeAll(async () => {
    cluster = await startLocalCluster();
  }, 60_000);
  afterAll(() => cluster?.stop());

  const clusters: Record<string, () => Promise<Made>> = {
    'ioredis 5': async () => {
      const c = new ioredis5.Cluster(cluster.nodes);
      return { client: c, close: async () => void c.disconnect() };
    },
    'ioredis 6': async () => {
      const c = new ioredis6.Cluster(cluster.nodes);
      return { client: c, close: async () => void c.disconnect() };
    },
    'node-redis 5': async () => {
      const c = redis5.createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
      c.on('error', () => {});
      await c.connect();
      return { client: c, close: async () => void c.destroy() };
    },
    'node-redis 6': async () => {
      const c = redis6.createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
      c.on('error', () => {});
      await c.connect();
      return { client: c, close: async () => void c.destroy() };
    },
  };

  it.each(Object.keys(clusters))('%s', async (name) => {
    const made = await clusters[name]!();
    try {
      const got = await exercise(made.client, `c${name.replace(/\W/g, '')}`);
      expect(new Set(got.sources)).toEqual(new Set(['redis']));
      expect(got).toMatchObject(expected);
      // Many ids across every slot owner in one turn: grouped per slot, all decided by Redis.
      const rl = createRateLimiter({ redis: made.client, prefix: `w${name.replace(/\W/g, '')}`, limits: { name: 'r', algo: 'gcra', limit: 5, periodMs: 60_000 }, ...UNHURRIED });
      await rl.ready();
      const spread = await Promise.all(Array.from({ length: 90 }, (_, i) => rl.limit(`tenant-${i % 30}`)));
      expect(spread.every((d) => d.source === 'redis' && d.allowed)).toBe(true);
      await rl.close();
    } finally {
      await made.close();
    }
  }, 30_000);
});
