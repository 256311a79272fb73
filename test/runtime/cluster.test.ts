import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import * as b from '../../generated/index.js';
import { CrossSlotError, createRateLimiter, hashSlot, preload, useFunctions } from '../../src/index.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';
import { UNHURRIED } from '../support/redis.js';

// A real local Redis Cluster: three redis-server primaries this file starts.
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster();
}, 60_000);
afterAll(() => cluster?.stop());

async function nodeRedisCluster() {
  const c = createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
  c.on('error', () => {});
  await c.connect();
  return c;
}

const tiers = (tenant: string) => [
  { key: `rl:{${tenant}}:minute`, algo: 'gcra' as const, limit: 3, periodMs: 60_000 },
  { key: `rl:{${tenant}}:day`, algo: 'quota' as const, limit: 5, unit: 'day' as const },
];

describe('Redis Cluster', () => {
  it('runs every kind of script through an ioredis Cluster, loading scripts on whichever node owns the slot', async () => {
    const c = new Cluster(cluster.nodes, { lazyConnect: false });
    try {
      const slots = new Set(['a', 'b', 'c', 'd', 'e', 'f'].map((t) => hashSlot(`rl:{${t}}:x`)));
      expect(slots.size).toBeGreaterThan(1);
      for (const key of ['rl:{a}:x', 'plain', '{}empty-tag', 'a{b}c{d}', 'üñí{çødé}']) {
        expect(hashSlot(key)).toBe(await c.cluster('KEYSLOT', key));
      }
      for (const t of ['a', 'b', 'c', 'd', 'e', 'f']) {
        expect(await b.gcra(c, { key: `rl:{${t}}:x`, limit: 2, periodMs: 60_000 })).toMatchObject({ allowed: true, remaining: 1 });
        const results = [];
        for (let i = 0; i < 4; i++) results.push((await b.multi(c, { limits: tiers(t) })).allowed);
        expect(results).toEqual([true, true, true, false]);
      }
      await expect(b.multi(c, { limits: [...tiers('a').slice(0, 1), ...tiers('b').slice(1)] })).rejects.toBeInstanceOf(CrossSlotError);
    } finally {
      await c.quit();
    }
  });

  it('runs through a node-redis 5 cluster too', async () => {
    const c = await nodeRedisCluster();
    try {
      for (const t of ['g', 'h', 'i']) {
        const results = [];
        for (let i = 0; i < 4; i++) results.push((await b.multi(c, { limits: tiers(t) })).allowed);
        expect(results).toEqual([true, true, true, false]);
        expect(await b.multiPeek(c, { limits: tiers(t) })).toMatchObject({ allowed: false, deniedIndex: 1 });
      }
    } finally {
      await c.close();
    }
  });

  it('preload puts every script in every primary\'s cache, through either client', async () => {
    const io = new Cluster(cluster.nodes);
    const nr = await nodeRedisCluster();
    try {
      for (const client of [io, nr]) {
        for (const node of io.nodes('master')) await node.script('FLUSH');
        await preload(client, b.allScripts);
        for (const node of io.nodes('master')) {
          expect(await node.script('EXISTS', ...b.allScripts.map((d) => d.sha1))).toEqual(b.allScripts.map(() => 1));
        }
      }
    } finally {
      await io.quit();
      await nr.close();
    }
  });

  it('useFunctions loads the library on every primary; multi then runs through FCALL on either client', async () => {
    const io = new Cluster(cluster.nodes);
    const nr = await nodeRedisCluster();
    try {
      await useFunctions(io);
      await useFunctions(nr);
      for (const node of io.nodes('master')) expect(JSON.stringify(await node.function('LIST', 'LIBRARYNAME', 'redlimit'))).toContain(`redlimit_multi_v${b.multiScript.version}`);
      for (const [client, t] of [[io, 'fa'], [nr, 'fb']] as const) {
        const results = [];
        for (let i = 0; i < 4; i++) results.push((await b.multi(client, { limits: tiers(t) })).allowed);
        expect(results).toEqual([true, true, true, false]);
      }
    } finally {
      await io.quit();
      await nr.close();
    }
  });

  it('the limiter keeps each subject in one slot with its hash tag', async () => {
    const c = new Cluster(cluster.nodes);
    try {
      const rl = createRateLimiter({
        redis: c,
        limits: [
          { name: 'user', algo: 'gcra', limit: 2, periodMs: 60_000 },
          { name: 'org', algo: 'sliding_window', limit: 3, periodMs: 60_000, scope: 'org' },
        ],
        ...UNHURRIED,
      });
      await rl.ready();
      const admitted = [];
      for (const user of ['ann', 'bob']) for (let i = 0; i < 2; i++) admitted.push((await rl.limit({ id: user, hashTag: 'acme', scopes: { org: 'acme' } })).allowed);
      expect(admitted).toEqual([true, true, true, false]);
      expect(rl.stats().breaker!.totalFailures).toBe(0);
      await rl.close();
    } finally {
      await c.quit();
    }
  });
});
