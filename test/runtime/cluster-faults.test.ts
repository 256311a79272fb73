import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { createRateLimiter, hashSlot } from '../../src/index.js';
import { slotOwner } from '../../src/runtime/slots.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';

// A real local Redis Cluster of its own: this file kills one of its primaries.
let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster();
}, 60_000);
afterAll(() => cluster?.stop());

describe('Redis Cluster faults', () => {
  it('one dead shard sends only its own slots to the fallback; the other shards keep deciding', async () => {
    const c = new Cluster(cluster.nodes, { enableOfflineQueue: false, redisOptions: { autoResendUnfulfilledCommands: false } });
    c.on('error', () => {});
    await new Promise((r) => c.once('ready', r));
    const rl = createRateLimiter({ redis: c, prefix: 'cf', limits: { name: 'r', algo: 'gcra', limit: 1000, periodMs: 60_000 }, timeoutMs: 1_000, breaker: { consecutiveFailures: 2, resetTimeoutMs: 60_000 } });
    // (A deadline a starved but healthy shard meets: this is about which slots fall back, not how fast.)
    await rl.ready();
    const ids = Array.from({ length: 60 }, (_, i) => `tenant-${i}`);
    const warm = await Promise.all(ids.map((id) => rl.limit(id)));
    expect(warm.every((d) => d.source === 'redis')).toBe(true);
    const dead = `127.0.0.1:${cluster.nodes[0]!.port}`;
    const owner = (id: string) => slotOwner(c, hashSlot(`{${id}}`));
    expect(new Set(ids.map(owner)).size).toBe(3);
    await cluster.servers[0]!.kill();
    for (let round = 0; round < 4; round++) {
      const decisions = await Promise.all(ids.map((id) => rl.limit(id)));
      decisions.forEach((d, i) => expect(d.source, ids[i]).toBe(owner(ids[i]!) === dead ? 'fallback' : 'redis'));
    }
    const nodes = rl.stats().nodes;
    expect(nodes[dead]!.state).toBe('open');
    for (const [node, s] of Object.entries(nodes)) if (node !== dead) expect(s).toMatchObject({ state: 'closed', totalFailures: 0 });
    await rl.close();
    c.disconnect();
  }, 30_000);
});
