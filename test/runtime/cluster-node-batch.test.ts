import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import * as b from '../../generated/index.js';
import { createRateLimiter, hashSlot, type Decision } from '../../src/index.js';
import { slotOwner } from '../../src/runtime/slots.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';
import { scriptCallsPerNode } from '../support/cluster.js';

const run = promisify(execFile);

/**
 * On a real 3-primary cluster: the coalescer groups a turn's decisions by the node serving
 * their slots and sends each group as one node_batch call, which decides every decision exactly;
 * a decision whose slot the node no longer serves (a slot table gone stale) is reported
 * ELSEWHERE, writes nothing, and is decided again where its slot lives.
 */
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster();
}, 60_000);
afterAll(() => cluster?.stop());

async function connect(): Promise<Cluster> {
  const c = new Cluster(cluster.nodes, { retryDelayOnMoved: 0, redisOptions: { autoResendUnfulfilledCommands: false } });
  c.on('error', () => {});
  await new Promise((r) => c.once('ready', r));
  return c;
}

const scriptCalls = () => scriptCallsPerNode(cluster.nodes);

const cli = (port: number, ...args: string[]) => run('redis-cli', ['-p', String(port), ...args]);

/**
 * Starts moving `slot` from the primary at `from` ("host:port") to another primary, telling the
 * nodes (IMPORTING, MIGRATING) but not the client; no key moves until `migrateKeys`. `assign`
 * ends the move on every node, to the target (`to`) or back (`from`).
 */
async function startMove(slot: number, from: string) {
  const fromPort = Number(from.split(':')[1]);
  const target = cluster.nodes.find((n) => n.port !== fromPort)!;
  const myid = async (port: number) => (await cli(port, 'cluster', 'myid')).stdout.trim();
  const ids = { from: await myid(fromPort), to: await myid(target.port) };
  await cli(target.port, 'cluster', 'setslot', String(slot), 'importing', ids.from);
  await cli(fromPort, 'cluster', 'setslot', String(slot), 'migrating', ids.to);
  return {
    target,
    /** Moves every key the source still holds in the slot; MIGRATE's reply ('' when none). */
    async migrateKeys(): Promise<{ keys: string[]; reply: string }> {
      const keys = (await cli(fromPort, 'cluster', 'getkeysinslot', String(slot), '100')).stdout.trim().split('\n').filter(Boolean);
      if (keys.length === 0) return { keys, reply: '' };
      return { keys, reply: (await cli(fromPort, 'migrate', '127.0.0.1', String(target.port), '', '0', '5000', 'keys', ...keys)).stdout.trim() };
    },
    async assign(to: 'from' | 'to'): Promise<void> {
      for (const n of cluster.nodes) await cli(n.port, 'cluster', 'setslot', String(slot), 'node', ids[to]);
    },
  };
}

describe('Redis Cluster: one call per node (node_batch)', () => {
  it('decides items of several slots on their node, and refuses to touch a key another node serves (ELSEWHERE, nothing written)', async () => {
    const c = await connect();
    try {
      const owner = (k: string) => slotOwner(c, hashSlot(k))!;
      const home = owner('rl:{nb-0}:x');
      const local: string[] = [];
      let away = '';
      for (let i = 0; local.length < 3 || !away; i++) {
        const k = `rl:{nb-${i}}:x`;
        if (owner(k) === home) {
          if (local.length < 3 && !local.some((l) => hashSlot(l) === hashSlot(k))) local.push(k);
        } else if (!away) away = k;
      }
      const [host, port] = home.split(':') as [string, string];
      const direct = new Redis(Number(port), host);
      try {
        const items = [...local.slice(0, 2), away, local[2]!].map((key) => ({ key, cost: 2 }));
        const args = { count: 1, specs: 'gcra,5,60000,5,,', items };
        const r = await b.nodeBatch(direct, args);
        expect(r.items.map((x) => [x.allowed, x.remaining])).toEqual([[1, 3], [1, 3], [-1, 3], [1, 3]]);
        expect(await c.exists(away)).toBe(0);
        for (const k of local) expect(await c.exists(k)).toBe(1);
        const again = await b.nodeBatch(direct, args);
        expect(again.items.map((x) => [x.allowed, x.remaining])).toEqual([[1, 1], [1, 1], [-1, 3], [1, 1]]);
      } finally {
        direct.disconnect();
      }
    } finally {
      c.disconnect();
    }
  });

  it('a turn of decisions over many slots goes as about one call per node, and every id gets exactly its limit', async () => {
    const c = await connect();
    const limiters = [
      createRateLimiter({ redis: c, prefix: 'nb1', limits: { name: 'r', algo: 'gcra', limit: 3, periodMs: 60_000 } }),
      createRateLimiter({
        redis: c,
        prefix: 'nb3',
        limits: [
          { name: 'minute', algo: 'gcra', limit: 3, periodMs: 60_000 },
          { name: 'hour', algo: 'sliding_window', limit: 100, periodMs: 3_600_000 },
          { name: 'day', algo: 'quota', limit: 1_000, unit: 'day' },
        ],
      }),
    ];
    try {
      for (const rl of limiters) {
        await rl.ready();
        const ids = Array.from({ length: 90 }, (_, i) => `user-${i}`);
        expect(new Set(ids.map((id) => slotOwner(c, hashSlot(`{${id}}`)))).size).toBe(3);
        await scriptCalls();
        // Five asks per id, all in one turn: 450 decisions.
        const asks = ids.flatMap((id) => [id, id, id, id, id]);
        const ds: Decision[] = await Promise.all(asks.map((id) => rl.limit(id)));
        const calls = await scriptCalls();
        expect(ds.every((d) => d.source === 'redis')).toBe(true);
        for (const id of ids) expect(ds.filter((d, i) => asks[i] === id && d.allowed).length, id).toBe(3);
        // One call per MAX_BATCH (64) decisions of a node, not one per slot (90 slots here).
        const total = [...calls.values()].reduce((a, n) => a + n, 0);
        expect(total).toBeLessThanOrEqual(Math.ceil(asks.length / 64) + 3);
        for (const n of calls.values()) expect(n).toBeGreaterThan(0);
      }
    } finally {
      for (const rl of limiters) await rl.close();
      c.disconnect();
    }
  });

  it('through a node-redis cluster too: one call per node, exact', async () => {
    const nr = createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
    nr.on('error', () => {});
    await nr.connect();
    const rl = createRateLimiter({ redis: nr, prefix: 'nbnr', limits: [{ name: 'minute', algo: 'gcra', limit: 2, periodMs: 60_000 }, { name: 'day', algo: 'quota', limit: 100, unit: 'day' }] });
    try {
      await rl.ready();
      const ids = Array.from({ length: 60 }, (_, i) => `nr-${i}`);
      await scriptCalls();
      const asks = ids.flatMap((id) => [id, id, id]);
      const ds: Decision[] = await Promise.all(asks.map((id) => rl.limit(id)));
      const calls = await scriptCalls();
      expect(ds.every((d) => d.source === 'redis')).toBe(true);
      for (const id of ids) expect(ds.filter((d, i) => asks[i] === id && d.allowed).length, id).toBe(2);
      expect([...calls.values()].reduce((a, n) => a + n, 0)).toBeLessThanOrEqual(Math.ceil(asks.length / 64) + 3);
    } finally {
      await rl.close();
      await nr.close();
    }
  });

  it('a slot on the move: a key still on the source is decided there, never as empty on the target, and the move completes', async () => {
    const c = await connect();
    const rl = createRateLimiter({ redis: c, prefix: 'nbmig', limits: { name: 'r', algo: 'gcra', limit: 2, periodMs: 3_600_000 }, denyCache: false });
    try {
      await rl.ready();
      const owner = (id: string) => slotOwner(c, hashSlot(`{${id}}`))!;
      const drained = 'mg-0';
      const slot = hashSlot(`{${drained}}`);
      const from = owner(drained);
      let idle = '';
      let other = '';
      for (let i = 1; !idle || !other; i++) {
        const id = `mg-${i}`;
        if (!idle && hashSlot(`{${id}}`) === slot) idle = id;
        else if (!other && owner(id) === from && hashSlot(`{${id}}`) !== slot) other = id;
      }
      for (let i = 0; i < 2; i++) expect(await rl.limit(drained)).toMatchObject({ allowed: true, source: 'redis' });
      // The slot starts moving; no key has moved yet.
      const move = await startMove(slot, from);
      // One turn: an id of that slot with no key first, the drained id, an id of another slot.
      const ds = await Promise.all([idle, drained, other].map((id) => rl.limit(id)));
      expect(ds.map((d) => [d.allowed, d.source])).toEqual([[true, 'redis'], [false, 'redis'], [true, 'redis']]);
      // Nothing of the drained id was written on the target: the move completes.
      const moved = await move.migrateKeys();
      expect(moved.reply).toBe(moved.keys.length > 0 ? 'OK' : '');
      await move.assign('to');
      expect(await rl.limit(drained)).toMatchObject({ allowed: false, source: 'redis' });
    } finally {
      await rl.close();
      c.disconnect();
    }
  }, 30_000);

  it('sliding_log in a slot on the move: a key whose entries all left the window is written where it is, decided once', async () => {
    const c = await connect();
    let now = Date.UTC(2026, 0, 5, 12);
    // A caller's clock: keys live 60 s past their window, so a key can hold only stale entries.
    const rl = createRateLimiter({ redis: c, prefix: 'nbsl', limits: { name: 'r', algo: 'sliding_log', limit: 2, periodMs: 10_000 }, denyCache: false, sendClock: true, clock: () => now });
    try {
      await rl.ready();
      const owner = (id: string) => slotOwner(c, hashSlot(`{${id}}`))!;
      const id = 'sl-0';
      const slot = hashSlot(`{${id}}`);
      const from = owner(id);
      let other = '';
      for (let i = 1; !other; i++) if (owner(`sl-${i}`) === from && hashSlot(`{sl-${i}}`) !== slot) other = `sl-${i}`;
      expect(await rl.limit(id)).toMatchObject({ allowed: true, source: 'redis' });
      now += 20_000; // the entry left the window; the key is still there
      const move = await startMove(slot, from);
      try {
        const ds = await Promise.all([other, id, id, id].map((x) => rl.limit(x)));
        expect(ds.map((d) => [d.allowed, d.source])).toEqual([[true, 'redis'], [true, 'redis'], [true, 'redis'], [false, 'redis']]);
      } finally {
        await move.assign('from');
      }
    } finally {
      await rl.close();
      c.disconnect();
    }
  }, 30_000);

  it('a slot moved behind the client\'s back: its decisions are decided once, on the node that now serves it', async () => {
    const c = await connect();
    const rl = createRateLimiter({ redis: c, prefix: 'nbmove', limits: { name: 'r', algo: 'gcra', limit: 4, periodMs: 3_600_000 }, denyCache: false });
    try {
      await rl.ready();
      const owner = (id: string) => slotOwner(c, hashSlot(`{${id}}`))!;
      // Ids of one slot S (they move) and ids of other slots on the same node (they stay).
      const first = 'mv-0';
      const from = owner(first);
      const slot = hashSlot(`{${first}}`);
      const moving: string[] = [];
      const staying: string[] = [];
      for (let i = 0; moving.length < 1 || staying.length < 6; i++) {
        const id = `mv-${i}`;
        if (hashSlot(`{${id}}`) === slot) moving.push(id);
        else if (owner(id) === from && staying.length < 6) staying.push(id);
      }
      // Each id takes one unit while everything is where the client thinks it is.
      for (const d of await Promise.all([...staying, ...moving].map((id) => rl.limit(id)))) expect(d).toMatchObject({ allowed: true, source: 'redis' });

      // Move slot S (with its keys) to another primary, telling every node but not the client.
      const move = await startMove(slot, from);
      const { keys, reply } = await move.migrateKeys();
      expect(keys.length).toBeGreaterThan(0);
      expect(reply).toBe('OK');
      await move.assign('to');
      expect(owner(moving[0]!)).toBe(from); // the client's table is stale

      // One turn: 'staying' first (the call goes to `from`), then the moved ids, five asks each.
      const asks = [...staying, ...moving].flatMap((x) => [x, x, x, x, x]);
      const ds: Decision[] = await Promise.all(asks.map((x) => rl.limit(x)));
      expect(ds.every((d) => d.source === 'redis')).toBe(true);
      // Exactly the three units each id had left: none lost to the move, none counted twice.
      for (const x of [...staying, ...moving]) expect(ds.filter((d, i) => asks[i] === x && d.allowed).length, x).toBe(3);
      const onTarget = new Redis(move.target.port);
      expect(await onTarget.get(keys[0]!)).not.toBeNull();
      onTarget.disconnect();
    } finally {
      await rl.close();
      c.disconnect();
    }
  }, 30_000);
});
