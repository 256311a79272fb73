import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { createRateLimiter, hashSlot, type Decision } from '../../src/index.js';
import { slotOwner } from '../../src/runtime/slots.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';

const run = promisify(execFile);

/**
 * A real 3-primary cluster with a replica each: a reshard under load stays on Redis and exact;
 * a primary killed with SIGKILL fails over to its replica, and the over-admission across the
 * outage stays within the README's bound (an exhausted id is never admitted again).
 */
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster(3, 1);
}, 90_000);
afterAll(() => cluster?.stop());

const LIMIT = 5;

function connect() {
  // The recommended Cluster options: nothing queued or re-sent, and TRYAGAIN retried quickly
  // (ioredis waits 100 ms by default, the limiter's whole deadline).
  const c = new Cluster(cluster.nodes, { retryDelayOnTryAgain: 5, retryDelayOnMoved: 0, redisOptions: { autoResendUnfulfilledCommands: false, connectTimeout: 500 } });
  c.on('error', () => {});
  return c;
}

async function nodeIds(port: number): Promise<{ id: string; port: number; master: boolean; slots: string[] }[]> {
  const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'nodes']);
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      const f = line.split(' ');
      return { id: f[0]!, port: Number(f[1]!.split(':')[1]!.split('@')[0]), master: f[2]!.includes('master') && !f[2]!.includes('fail'), slots: f.slice(8) };
    });
}

describe('Redis Cluster: reshard and failover', () => {
  it('a reshard under load (MOVED, ASK, TRYAGAIN) never leaves Redis and never admits more than the limit allows', async () => {
    const c = connect();
    await new Promise((r) => c.once('ready', r));
    // 20 per second with a burst of 5: admissions keep happening all through the move.
    const rl = createRateLimiter({ redis: c, prefix: 'rs', limits: { name: 'r', algo: 'gcra', limit: 20, periodMs: 1_000, burst: 5 }, denyCache: false, timeoutMs: 2_000 }); // not about deadlines: a starved node must not look down
    await rl.ready();
    const nodes = (await nodeIds(cluster.nodes[0]!.port)).filter((n) => n.master && n.slots.length > 0);
    const [from, to] = [nodes[0]!, nodes[1]!];
    const firstSlot = Number(from.slots[0]!.split('-')[0]);
    // Ids whose slot is among the first 300 slots of `from`: the ones that move.
    const ids: string[] = [];
    for (let i = 0; ids.length < 40; i++) {
      const slot = hashSlot(`{m-${i}}`);
      if (slot >= firstSlot && slot < firstSlot + 300) ids.push(`m-${i}`);
    }
    const allowed = new Map<string, number>();
    const sources = new Map<string, number>();
    let done = false;
    const t0 = Date.now();
    const load = (async () => {
      while (!done) {
        const ds: Decision[] = await Promise.all(ids.map((id) => rl.limit(id)));
        ds.forEach((d, i) => {
          sources.set(d.source, (sources.get(d.source) ?? 0) + 1);
          if (d.allowed) allowed.set(ids[i]!, (allowed.get(ids[i]!) ?? 0) + 1);
        });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await run('redis-cli', ['--cluster', 'reshard', `127.0.0.1:${from.port}`, '--cluster-from', from.id, '--cluster-to', to.id, '--cluster-slots', '300', '--cluster-yes', '--cluster-pipeline', '10'], { timeout: 60_000 });
    await new Promise((r) => setTimeout(r, 300));
    done = true;
    await load;
    const elapsedMs = Date.now() - t0;
    expect(Object.fromEntries(sources)).toEqual({ redis: expect.any(Number) }); // never the fallback
    // The slots moved: the ids' keys now live on `to`.
    await c.refreshSlotsCache?.();
    expect(ids.filter((id) => slotOwner(c, hashSlot(`{${id}}`)) === `127.0.0.1:${to.port}`).length).toBeGreaterThan(0);
    // Exact through the move: never more than the burst plus the refill over the run (GCRA's
    // bound), and admissions went on throughout.
    for (const id of ids) {
      expect(allowed.get(id), id).toBeLessThanOrEqual(5 + Math.ceil((elapsedMs * 20) / 1_000));
      expect(allowed.get(id), id).toBeGreaterThan(5);
    }
    await rl.close();
    c.disconnect();
  }, 90_000);

  it('SIGKILL of a primary: its slots fall back within the bound, the replica takes over, the rest never leave Redis', async () => {
    const c = connect();
    await new Promise((r) => c.once('ready', r));
    const rl = createRateLimiter({
      redis: c,
      prefix: 'fo',
      limits: { name: 'r', algo: 'gcra', limit: LIMIT, periodMs: 3_600_000 },
      denyCache: false,
      timeoutMs: 1_000, // a starved healthy shard must not look down; the dead one fails fast or opens its breaker
      breaker: { consecutiveFailures: 2, resetTimeoutMs: 200, maxResetTimeoutMs: 800, jitter: 0.1 },
    });
    await rl.ready();
    const spent = Array.from({ length: 30 }, (_, i) => `spent-${i}`);
    const partial = Array.from({ length: 30 }, (_, i) => `partial-${i}`);
    const admitted = new Map<string, { redis: number; fallback: number }>();
    const note = (id: string, d: Decision) => {
      const a = admitted.get(id) ?? { redis: 0, fallback: 0 };
      if (d.allowed) a[d.source === 'fallback' ? 'fallback' : 'redis']++;
      admitted.set(id, a);
      return d;
    };
    for (const id of spent) for (let i = 0; i < LIMIT; i++) note(id, await rl.limit(id));
    for (const id of partial) for (let i = 0; i < 2; i++) note(id, await rl.limit(id));
    // Replicas have everything before the kill (asynchronous replication is its own, separate loss).
    await Promise.all(c.nodes('master').map((n) => n.call('WAIT', '1', '2000')));
    const victim = (await nodeIds(cluster.nodes[0]!.port)).find((n) => n.master && n.slots.length > 0)!;
    // Which ids live on the victim, fixed before the kill (after the failover their slots have a new owner).
    const victimIds = new Set([...spent, ...partial].filter((id) => slotOwner(c, hashSlot(`{${id}}`)) === `127.0.0.1:${victim.port}`));
    const onVictim = (id: string) => victimIds.has(id);
    expect(victimIds.size).toBeGreaterThan(0);
    await cluster.servers.find((s) => s.port === victim.port)!.kill();

    const bySource = { victim: new Set<string>(), others: new Set<string>() };
    const until = Date.now() + 30_000;
    let recovered = false;
    while (Date.now() < until && !recovered) {
      const all = [...spent, ...partial];
      const ds = await Promise.all(all.map((id) => rl.limit(id).then((d) => note(id, d))));
      ds.forEach((d, i) => bySource[onVictim(all[i]!) ? 'victim' : 'others'].add(d.source));
      recovered = ds.every((d, i) => !onVictim(all[i]!) || d.source === 'redis') && bySource.victim.has('fallback');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(bySource.victim.has('fallback')).toBe(true); // the outage was seen
    expect(recovered).toBe(true); // and the replica took over within 30 s
    expect([...bySource.others]).toEqual(['redis']); // healthy shards never left Redis
    // The bound: an exhausted id is never admitted again; a partially used one at most by what
    // Redis last said remained (here 3), and only by the fallback — never more than the limit
    // plus that.
    for (const id of spent) expect(admitted.get(id), id).toEqual({ redis: LIMIT, fallback: 0 });
    for (const id of partial) {
      const a = admitted.get(id)!;
      expect(a.fallback, id).toBeLessThanOrEqual(LIMIT - 2);
      expect(a.redis + a.fallback, id).toBeLessThanOrEqual(LIMIT + (LIMIT - 2));
      if (!onVictim(id)) expect(a, id).toEqual({ redis: LIMIT, fallback: 0 });
    }
    await rl.close();
    c.disconnect();
  }, 120_000);
});
