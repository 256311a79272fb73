/** Dev tooling: a real Redis Cluster of local redis-server processes (3 primaries; optionally a replica each). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startLocalRedis, type LocalRedis } from './local-redis.js';

const run = promisify(execFile);

export interface LocalCluster {
  nodes: { host: string; port: number }[];
  /** The redis-server processes, in `nodes` order (kill one to take its shard down). */
  servers: LocalRedis[];
  stop(): Promise<void>;
}

/**
 * A free port for a cluster node: its bus listens 10000 higher, so the port must be at most
 * 55535 and that one free too (an ephemeral port above 55535 made redis-server exit at start,
 * saying so on stdout: a CI run failed so).
 */
export async function clusterPort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = await freePort();
    if (port <= 55_535 && (await isFree(port + 10_000))) return port;
  }
  throw new Error('no free port with a free cluster bus port (port + 10000)');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function startLocalCluster(size = 3, replicas = 0): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'redlimit-cluster-'));
  const servers: LocalRedis[] = [];
  try {
    for (let i = 0; i < size * (1 + replicas); i++) {
      const port = await clusterPort();
      servers.push(
        await startLocalRedis(['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no', '--dir', dir], port),
      );
    }
    const primaries = servers.slice(0, size);
    await run('redis-cli', ['--cluster', 'create', ...primaries.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    // Replicas joined one by one (redis-cli's own assignment is unreliable on one host).
    for (let i = size; i < servers.length; i++) {
      const primary = primaries[(i - size) % size]!;
      const { stdout: id } = await run('redis-cli', ['-p', String(primary.port), 'cluster', 'myid']);
      await run('redis-cli', ['-p', String(servers[i]!.port), 'cluster', 'meet', '127.0.0.1', String(primary.port)]);
      for (let attempt = 0; ; attempt++) {
        const { stdout } = await run('redis-cli', ['-p', String(servers[i]!.port), 'cluster', 'replicate', id.trim()]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
        if (stdout.trim() === 'OK') break;
        if (attempt > 100) throw new Error(`replica ${servers[i]!.port} could not follow ${primary.port}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let attempt = 0; ; attempt++) {
        const { stdout } = await run('redis-cli', ['-p', String(servers[i]!.port), 'info', 'replication']);
        if (stdout.includes('master_link_status:up')) break;
        if (attempt > 100) throw new Error(`replica ${servers[i]!.port} never synced`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // Wait until every node agrees the cluster is up.
    for (const s of servers) {
      for (let attempt = 0; ; attempt++) {
        const { stdout } = await run('redis-cli', ['-p', String(s.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (attempt > 100) throw new Error(`cluster node ${s.port} never reached cluster_state:ok`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill()));
    throw err;
  }
  return {
    nodes: servers.map((s) => ({ host: '127.0.0.1', port: s.port })),
    servers,
    stop: async () => {
      await Promise.all(servers.map((s) => s.kill()));
    },
  };
}
