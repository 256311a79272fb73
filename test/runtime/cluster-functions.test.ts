import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import { functionsLibraryHash } from '../../generated/index.js';
import { autoFunctions, createRateLimiter, hashSlot, type Decision } from '../../src/index.js';
import { slotOwner } from '../../src/runtime/slots.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';

/**
 * A Cluster limiter runs its scripts through FCALL when every primary holds this library (it
 * loads it where none is), and falls back to EVALSHA by itself when a primary turns out not to
 * hold it (FUNCTION FLUSH, a primary added later): decisions stay on Redis and exact.
 */
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster();
}, 60_000);
afterAll(() => cluster?.stop());

/** Calls per command since the last reading (INFO commandstats), summed over the primaries. */
async function commandCalls(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of cluster.nodes) {
    const r = new Redis(n.port, n.host);
    for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
    await r.config('RESETSTAT');
    r.disconnect();
  }
  return out;
}

async function libraries(): Promise<(string | null)[]> {
  return Promise.all(
    cluster.nodes.map(async (n) => {
      const r = new Redis(n.port, n.host);
      try {
        return String(await r.fcall_ro('redlimit_library', 0));
      } catch {
        return null;
      } finally {
        r.disconnect();
      }
    }),
  );
}

describe('Redis Cluster: Functions', () => {
  it('loads the library on every primary and decides through FCALL; a primary that loses it falls back to EVALSHA, exact and on Redis', async () => {
    const c = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
    c.on('error', () => {});
    const rl = createRateLimiter({ redis: c, prefix: 'cfn', limits: { name: 'r', algo: 'gcra', limit: 3, periodMs: 3_600_000 }, denyCache: false, coalesce: false });
    try {
      await rl.ready();
      expect(await libraries()).toEqual([functionsLibraryHash, functionsLibraryHash, functionsLibraryHash]);
      const ids = Array.from({ length: 30 }, (_, i) => `fn-${i}`);
      expect(new Set(ids.map((id) => slotOwner(c, hashSlot(`{${id}}`)))).size).toBe(3);
      await commandCalls();
      for (const d of await Promise.all(ids.map((id) => rl.limit(id)))) expect(d).toMatchObject({ allowed: true, source: 'redis', remaining: 2 });
      const viaFunctions = await commandCalls();
      expect(viaFunctions.fcall).toBe(ids.length);
      expect(viaFunctions.evalsha ?? 0).toBe(0);

      // One primary loses the library: its calls (and from then on all) go by EVALSHA, none fails.
      const flushed = new Redis(cluster.nodes[1]!.port, cluster.nodes[1]!.host);
      await flushed.function('FLUSH');
      flushed.disconnect();
      const ds: Decision[] = [];
      for (let round = 0; round < 3; round++) ds.push(...(await Promise.all(ids.map((id) => rl.limit(id)))));
      expect(ds.every((d) => d.source === 'redis')).toBe(true);
      for (const id of ids) expect(ds.filter((d, i) => ids[i % ids.length] === id && d.allowed).length, id).toBe(2);
      const after = await commandCalls();
      expect(after.evalsha).toBeGreaterThan(0);
    } finally {
      await rl.close();
      c.disconnect();
    }
  });

  it('a node-redis cluster switches to FCALL too, and a library of another release on one primary keeps it on EVALSHA', async () => {
    const rootNodes = cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` }));
    const nr = createCluster({ rootNodes });
    nr.on('error', () => {});
    await nr.connect();
    try {
      expect(await autoFunctions(nr)).toBe('fcall');
    } finally {
      await nr.close();
    }
    // Another release's library on one primary (same name, another hash): never replaced.
    const other = new Redis(cluster.nodes[2]!.port, cluster.nodes[2]!.host);
    await other.function('LOAD', 'REPLACE', "#!lua name=redlimit\nredis.register_function{ function_name = 'redlimit_library', flags = { 'no-writes' }, callback = function() return 'another-release' end }");
    other.disconnect();
    const c = new Cluster(cluster.nodes);
    c.on('error', () => {});
    await new Promise((r) => c.once('ready', r));
    try {
      expect(await autoFunctions(c)).toBe('other-library');
      expect((await libraries())[2]).toBe('another-release');
    } finally {
      c.disconnect();
    }
  });
});
