import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import * as b from '../../generated/index.js';
import { createRateLimiter, hashSlot, type Decision, type LimitSpec, type RateLimiter } from '../../src/index.js';
import { slotOwner } from '../../src/runtime/slots.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';
import { scriptCallsPerNode } from '../support/cluster.js';

/**
 * One key per subject (the default for tiers, `layout: 'auto'`) on a real 3-primary cluster,
 * through both clients: a turn's decisions over many subjects (many slots) are coalesced into
 * one tiers_node_batch call per primary (a slot's lone group as tiers, its key declared), and
 * every decision is what the same limiter with a key per limit answers. tiers_node_batch refuses
 * a key its node does not serve (ELSEWHERE, nothing written) and the client decides it again
 * where its slot lives. The adoption switch scans every primary.
 */
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster();
  await readTable();
}, 60_000);
afterAll(() => cluster?.stop());

const limits: LimitSpec[] = [
  { name: 'm', algo: 'gcra', limit: 4, periodMs: 60_000 },
  { name: 'h', algo: 'sliding_window', limit: 9, periodMs: 3_600_000 },
  { name: 'd', algo: 'quota', limit: 15, unit: 'day' },
];
const seen = (d: Decision) => ({ allowed: d.allowed, deniedBy: d.deniedBy, remaining: d.remaining, retryAfterMs: d.retryAfterMs, limits: d.limits, source: d.source });

const scriptCalls = () => scriptCallsPerNode(cluster.nodes);

/** The primary serving `key`'s slot ("host:port"), asked of the cluster itself. */
let table: Map<number, string> | null = null;
function slotOwnerOf(key: string): string {
  return table!.get(hashSlot(key))!;
}
async function readTable(): Promise<void> {
  const r = new Redis(cluster.nodes[0]!.port, cluster.nodes[0]!.host);
  const slots = (await r.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  r.disconnect();
  table = new Map();
  for (const [from, to, [host, port]] of slots) for (let s = from; s <= to; s++) table.set(s, `${host}:${port}`);
}

describe('one key per subject on a Redis Cluster (the default)', () => {
  for (const client of ['ioredis', 'node-redis'] as const) {
    it(`decides a turn of many subjects as a key per limit does, one call per primary (${client})`, async () => {
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
      const make = (layout: 'per-limit' | 'auto') =>
        createRateLimiter({ redis: redis as never, prefix: `${tag}-${layout}`, limits, layout, sendClock: true, clock: () => now.t, denyCache: false, timeoutMs: 10_000 });
      const a: RateLimiter = make('per-limit');
      const s: RateLimiter = make('auto');
      await Promise.all([a.ready(), s.ready()]);
      const ids = Array.from({ length: 40 }, (_, i) => `u${i}`);
      for (let round = 0; round < 12; round++) {
        const turn = ids.flatMap((id, i) => (i % 3 === round % 3 ? [id, id] : [id]));
        await scriptCalls();
        const ys = await Promise.all(turn.map((id) => s.limit(id)));
        const calls = await scriptCalls();
        const xs = await Promise.all(turn.map((id) => a.limit(id)));
        expect(ys.map(seen)).toEqual(xs.map(seen));
        // About one call per primary (and per 64 decisions), not one per slot (40 here).
        expect([...calls.values()].reduce((x, n) => x + n, 0)).toBeLessThanOrEqual(Math.ceil(turn.length / 64) + 3);
        now.t += 7_000;
      }
      const denied = (await Promise.all(ids.map((id) => s.peek(id)))).filter((d) => d.limits.some((l) => l.remaining === 0));
      expect(denied.length).toBeGreaterThan(0);
      // The default took one key per subject: no key per limit was written.
      const k = (id: string, name: string) => `${tag}-auto:{${id}}:${name}`;
      const owner = (key: string) => cluster.nodes.find((n) => `${n.host}:${n.port}` === slotOwnerOf(key))!;
      for (const id of ids.slice(0, 5)) {
        const node = new Redis(owner(k(id, 'm')).port, owner(k(id, 'm')).host);
        expect(await node.exists(k(id, 'm+h+d'))).toBe(1);
        expect(await node.exists(k(id, 'm'), k(id, 'h'), k(id, 'd'))).toBe(0);
        node.disconnect();
      }
      await Promise.all([a.close(), s.close()]);
      if (client === 'ioredis') (redis as Cluster).disconnect();
      else await (redis as ReturnType<typeof createCluster>).close();
    }, 60_000);
  }
});

describe('tiers_node_batch on a Redis Cluster', () => {
  const specs = 'gcra,5,60000,5,,;quota,9,,,0,day';
  it('decides subjects of several slots on their primary, takes over their keys per limit (adopt), and refuses a key another primary serves (ELSEWHERE, nothing written)', async () => {
    // Subjects of three slots one primary serves, and one another serves.
    const home = slotOwnerOf('{tnb-0}');
    const local: string[] = [];
    let away = '';
    for (let i = 0; local.length < 3 || !away; i++) {
      const id = `tnb-${i}`;
      if (slotOwnerOf(`{${id}}`) === home) {
        if (local.length < 3 && !local.some((l) => hashSlot(`{${l}}`) === hashSlot(`{${id}}`))) local.push(id);
      } else if (!away) away = id;
    }
    const key = (id: string) => `rl:{${id}}:m+d`;
    const [host, port] = home.split(':') as [string, string];
    const direct = new Redis(Number(port), host);
    const awayOwner = slotOwnerOf(`{${away}}`).split(':');
    const there = new Redis(Number(awayOwner[1]), awayOwner[0]!);
    try {
      // The first local subject kept a key per limit (its gcra state: 2 taken): adopted.
      await b.multi(direct, { limits: [{ key: `rl:{${local[0]}}:m`, algo: 'gcra', limit: 5, periodMs: 60_000, burst: 5, cost: 2 }] });
      expect(await direct.exists(`rl:{${local[0]}}:m`)).toBe(1);
      const items = [local[0]!, local[1]!, away, local[2]!, local[0]!].map((id) => ({ key: key(id), costs: '1,2' }));
      const r = await b.tiersNodeBatch(direct, { count: 2, specs, adopt: 'm+d', items });
      expect(r.items.map((d) => d.map((l) => [l.allowed, l.remaining]))).toEqual([
        [[1, 2], [1, 7]],
        [[1, 4], [1, 7]],
        [[-1, 3], [-1, 0]],
        [[1, 4], [1, 7]],
        [[1, 1], [1, 5]],
      ]);
      expect(await there.exists(key(away))).toBe(0);
      expect(await direct.exists(`rl:{${local[0]}}:m`)).toBe(0);
      for (const id of local) expect(await direct.exists(key(id))).toBe(1);
      // What tiers (its key declared, through the cluster) reads of the same keys: the same states.
      const c = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
      c.on('error', () => {});
      try {
        const peek = await b.tiersPeek(c, { count: 2, specs, decisions: [{ key: key(local[0]!), costs: '0,0' }] });
        expect(peek.decisions[0]!.map((l) => l.remaining)).toEqual([1, 5]);
      } finally {
        c.disconnect();
      }
    } finally {
      direct.disconnect();
      there.disconnect();
    }
  });

  it('a slot moved behind the client\'s back: a default 3-tier limiter decides its subjects once, on the primary that now serves them', async () => {
    const c = new Cluster(cluster.nodes, { retryDelayOnMoved: 0, redisOptions: { autoResendUnfulfilledCommands: false } });
    c.on('error', () => {});
    await new Promise((r) => c.once('ready', r));
    const rl = createRateLimiter({ redis: c, prefix: 'tnbmove', limits, denyCache: false, timeoutMs: 10_000 });
    try {
      await rl.ready();
      const owner = (id: string) => slotOwner(c, hashSlot(`{${id}}`))!;
      const first = 'tmv-0';
      const from = owner(first);
      const slot = hashSlot(`{${first}}`);
      const staying: string[] = [];
      for (let i = 1; staying.length < 6; i++) {
        const id = `tmv-${i}`;
        if (owner(id) === from && hashSlot(`{${id}}`) !== slot) staying.push(id);
      }
      const ids = [...staying, first];
      for (const d of await Promise.all(ids.map((id) => rl.limit(id)))) expect(d).toMatchObject({ allowed: true, source: 'redis' });
      // Move the slot (with its key) to another primary, telling every node but not the client.
      const cli = (p: number, ...args: string[]) => new Redis(p).call(args[0]!, ...args.slice(1)) as Promise<unknown>;
      const fromPort = Number(from.split(':')[1]);
      const target = cluster.nodes.find((n) => n.port !== fromPort)!;
      const idOf = async (p: number) => String(await cli(p, 'CLUSTER', 'MYID'));
      const ids2 = { from: await idOf(fromPort), to: await idOf(target.port) };
      await cli(target.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids2.from);
      await cli(fromPort, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids2.to);
      const keys = (await cli(fromPort, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100')) as string[];
      expect(keys).toContain(`tnbmove:{${first}}:m+h+d`);
      expect(await cli(fromPort, 'MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...keys)).toBe('OK');
      for (const n of cluster.nodes) await cli(n.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', ids2.to);
      expect(owner(first)).toBe(from); // the client's table is stale
      // One turn, five asks each: every subject gets exactly the 3 units its minute tier has left.
      const asks = ids.flatMap((x) => [x, x, x, x, x]);
      const ds: Decision[] = await Promise.all(asks.map((x) => rl.limit(x)));
      expect(ds.every((d) => d.source === 'redis')).toBe(true);
      for (const x of ids) expect(ds.filter((d, i) => asks[i] === x && d.allowed).length, x).toBe(3);
      await readTable();
    } finally {
      await rl.close();
      c.disconnect();
    }
  }, 30_000);

  it("an ioredis keyPrefix names the keys of node batches as every other call names them (both layouts; a review found the items' keys unprefixed, a subject counted on two keys)", async () => {
    const c = new Cluster(cluster.nodes, { keyPrefix: 'app:', redisOptions: { autoResendUnfulfilledCommands: false } });
    c.on('error', () => {});
    await new Promise((r) => c.once('ready', r));
    const plain = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
    plain.on('error', () => {});
    try {
      for (const layout of ['auto', 'per-limit'] as const) {
        const prefix = `kp-${layout}-${process.pid}`;
        const rl = createRateLimiter({ redis: c, prefix, limits, layout, denyCache: false, timeoutMs: 10_000 });
        await rl.ready();
        const ids = Array.from({ length: 12 }, (_, i) => `u${i}`);
        // A turn over many slots (node batches), then u0 alone (its keys declared).
        for (const d of await Promise.all(ids.map((id) => rl.limit(id)))) expect(d).toMatchObject({ allowed: true, source: 'redis' });
        expect(await rl.limit('u0')).toMatchObject({ allowed: true, source: 'redis' });
        expect((await rl.peek('u0')).limits.map((l) => l.remaining)).toEqual([2, 7, 13]);
        const names = layout === 'auto' ? ['m+h+d'] : ['m', 'h', 'd'];
        for (const n of names) {
          expect(await plain.exists(`app:${prefix}:{u0}:${n}`)).toBe(1);
          expect(await plain.exists(`${prefix}:{u0}:${n}`)).toBe(0);
        }
        await rl.close();
      }
    } finally {
      c.disconnect();
      plain.disconnect();
    }
  });

  for (const client of ['ioredis', 'node-redis'] as const) {
    it(`the adoption switch scans every primary: "found" where keys per limit were kept, taken over; "none" where not (${client})`, async () => {
      let redis: Cluster | ReturnType<typeof createCluster>;
      if (client === 'ioredis') {
        redis = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
        redis.on('error', () => {});
      } else {
        redis = createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
        redis.on('error', () => {});
        await redis.connect();
      }
      const check = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
      check.on('error', () => {});
      const marker = async (prefix: string) => {
        for (let i = 0; i < 300; i++) {
          const v = await check.get(`${prefix}:!adopt:m+h+d`);
          if (v !== null && v !== 'scanning') {
            await new Promise((r) => setTimeout(r, 20));
            return v;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
        throw new Error('no marker');
      };
      const make = (prefix: string, layout: 'auto' | 'per-limit') => createRateLimiter({ redis: redis as never, prefix, limits, layout, denyCache: false, timeoutMs: 10_000 });
      try {
        const fresh = `adn-${client}-${process.pid}`;
        const none = make(fresh, 'auto');
        await none.ready();
        expect(await marker(fresh)).toBe('none');
        expect(none.stats().adopting).toBe(false);
        await none.close();

        // One subject kept a key per limit, on one primary only: the scan must find it wherever it is.
        const old = `adf-${client}-${process.pid}`;
        const pinned = make(old, 'per-limit');
        await pinned.ready();
        await pinned.limit('carol', { cost: 2 });
        await pinned.close();
        await check.del(`${old}:!adopt:m+h+d`); // as if no pinned process had ever marked it
        const after = make(old, 'auto');
        await after.ready();
        expect(await marker(old)).toBe('found');
        expect(after.stats().adopting).toBe(true);
        expect((await after.limit('carol')).limits.map((l) => l.remaining)).toEqual([1, 6, 12]);
        expect(await check.exists(`${old}:{carol}:m`)).toBe(0);
        await after.close();
      } finally {
        check.disconnect();
        if (client === 'ioredis') (redis as Cluster).disconnect();
        else await (redis as ReturnType<typeof createCluster>).close();
      }
    }, 60_000);
  }
});
