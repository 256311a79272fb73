import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { createRateLimiter, hashSlot, type LimitSpec } from '../../src/index.js';
import { clusterPort, startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { repoRoot } from '../support/temp-scripts.js';
import { PYTHON } from '../../devtools/python.js';

/**
 * The adoption scan (one key per subject looking for the keys a key per limit kept) visits the
 * primaries its client knows. A client whose topology is older than a reshard onto a new primary
 * does not know that primary (ioredis and redis-py re-read the slot map only on a redirect), so
 * a scan of its primaries alone could record "none" while a key per limit lives on the new one,
 * and decisions would stop adopting it (a review reproduced it in Python and Node). The scan
 * compares the primaries the server names (CLUSTER SLOTS) with those it scanned: one it did not
 * scan is "found".
 */
const run = promisify(execFile);

let cluster: LocalCluster;
let extra: LocalRedis;
beforeAll(async () => {
  cluster = await startLocalCluster();
}, 60_000);
afterAll(async () => {
  await extra?.kill();
  await cluster?.stop();
});

const limits: LimitSpec[] = [
  { name: 'm', algo: 'gcra', limit: 10, periodMs: 60_000 },
  { name: 'h', algo: 'sliding_window', limit: 100, periodMs: 3_600_000 },
];
const cli = async (port: number, ...args: (string | number)[]) => (await run('redis-cli', ['-p', String(port), ...args.map(String)])).stdout.trim();

/** A new primary joins and takes `slot` (empty) from its owner; every node agrees before it returns. */
async function reshardOntoNewPrimary(slot: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'redlimit-cluster-extra-'));
  const port = await clusterPort();
  extra = await startLocalRedis(['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no', '--dir', dir], port);
  const ports = [...cluster.nodes.map((n) => n.port), port];
  const id = await cli(port, 'CLUSTER', 'MYID');
  await cli(port, 'CLUSTER', 'MEET', '127.0.0.1', cluster.nodes[0]!.port);
  for (let i = 0; ; i++) {
    const known = await Promise.all(ports.map(async (p) => (await cli(p, 'CLUSTER', 'NODES')).includes(id)));
    if (known.every(Boolean)) break;
    if (i > 200) throw new Error('the new node never joined');
    await new Promise((r) => setTimeout(r, 50));
  }
  const owner = async (p: number) => {
    const reply = (await cli(p, '--json', 'CLUSTER', 'SLOTS').catch(() => '[]')) || '[]';
    const slots = JSON.parse(reply) as [number, number, [string, number]][];
    return slots.find(([from, to]) => from <= slot && slot <= to)?.[2]?.[1];
  };
  const from = (await owner(cluster.nodes[0]!.port))!;
  // The new owner first, then the old one, then every other node (each learns it at once rather
  // than by gossip, which a loaded CI machine slowed past this wait once).
  await cli(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', id);
  await cli(from, 'CLUSTER', 'SETSLOT', slot, 'NODE', id);
  await cli(port, 'CLUSTER', 'BUMPEPOCH');
  for (const p of cluster.nodes.map((n) => n.port)) if (p !== from) await cli(p, 'CLUSTER', 'SETSLOT', slot, 'NODE', id).catch(() => '');
  for (let i = 0; ; i++) {
    const owners = await Promise.all(ports.map(owner));
    const ok = await Promise.all(ports.map(async (p) => (await cli(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok')));
    if (owners.every((o) => o === port) && ok.every(Boolean)) break;
    if (i > 1200) throw new Error(`slot ${slot} never moved to the new primary: ${owners.join(',')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the adoption scan on a Cluster client that does not know a new primary', () => {
  it('records "found", never "none", when a key per limit lives on a primary the client has not seen (ioredis and redis-py)', async () => {
    const prefixes = { node: `topo-node-${process.pid}`, python: `topo-py-${process.pid}` };
    const id = 'kept';
    const slot = hashSlot(`{${id}}`);
    for (const p of Object.values(prefixes)) expect(hashSlot(`${p}:!adopt:m+h`)).not.toBe(slot); // the marker stays on the old primaries

    // Clients that read the topology before the reshard (and are not redirected after it).
    const stale = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
    stale.on('error', () => {});
    await stale.ping();
    const python = spawn(
      PYTHON,
      [
        '-c',
        `import json, sys
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'generated/python'))})
import redis.cluster, redlimit_scripts as rl
client = redis.cluster.RedisCluster(host="127.0.0.1", port=${cluster.nodes[0]!.port})
client.ping()
print("ready", flush=True)
sys.stdin.readline()
limits = [rl.Limit("m", "gcra", limit=10, period_ms=60_000), rl.Limit("h", "sliding_window", limit=100, period_ms=3_600_000)]
lim = rl.Limiter(client, limits, prefix=${JSON.stringify(prefixes.python)})
lim.limit("someone-new")
lim._adoption.worker.join()
print(json.dumps([lim.adopting, sorted(n.port for n in client.get_primaries())]), flush=True)`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: python.stdout });
    const next = () => new Promise<string>((resolve) => lines.once('line', resolve));
    try {
      expect(await next()).toBe('ready');
      await reshardOntoNewPrimary(slot);

      // Another process, with a fresh topology, keeps limit m of `kept` in its own key (a key per limit).
      const fresh = new Cluster(cluster.nodes, { redisOptions: { autoResendUnfulfilledCommands: false } });
      fresh.on('error', () => {});
      for (const prefix of Object.values(prefixes)) {
        const single = createRateLimiter({ redis: fresh, prefix, limits: [limits[0]!], denyCache: false, timeoutMs: 10_000 });
        await single.limit(id, { cost: 3 });
        await single.close();
      }
      const onExtra = (key: string) => cli(extra.port, 'EXISTS', key);
      expect(await onExtra(`${prefixes.node}:{${id}}:m`)).toBe('1');

      // Node: the stale client's limiter scans its three primaries, then sees a fourth in CLUSTER SLOTS.
      const limiter = createRateLimiter({ redis: stale, prefix: prefixes.node, limits, denyCache: false, timeoutMs: 10_000 });
      await limiter.ready();
      let marker: string | null = null;
      for (let i = 0; i < 300 && (marker === null || marker === 'scanning'); i++) {
        marker = await fresh.get(`${prefixes.node}:!adopt:m+h`);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(marker).toBe('found');
      await new Promise((r) => setTimeout(r, 20));
      expect(limiter.stats().adopting).toBe(true);
      expect(stale.nodes('master').length).toBe(3); // still the old topology: the scan did not see the fourth
      // And the kept count carries over (7 of 10 left before this decision).
      expect((await limiter.limit(id)).limits[0]!.remaining).toBe(6);
      await limiter.close();

      // Python: the same, through redis-py's RedisCluster.
      python.stdin.write('go\n');
      const [adopting, primaries] = JSON.parse(await next()) as [boolean, number[]];
      expect(primaries.length).toBe(3);
      expect(adopting).toBe(true);
      expect(await fresh.get(`${prefixes.python}:!adopt:m+h`)).toBe('found');
      fresh.disconnect();
    } finally {
      python.kill();
      stale.disconnect();
    }
  }, 180_000);
});
