/** Dev tooling shared by tests, bench and demo: a redis-server process of our own. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A redis-server process the tests own: start it, kill it, restart it on the same port. */
export interface LocalRedis {
  readonly port: number;
  readonly url: string;
  readonly process: ChildProcess;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Graceful stop. */
  stop(): Promise<void>;
  /** Start again on the same port with the same flags (after kill/stop). */
  restart(): Promise<LocalRedis>;
}

export function redisServerBinary(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Does a Redis answer PING on this port right now? (Raw RESP, so no client library is involved.) */
export function pings(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** Resolves once the server answers PING. */
export async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pings(port))) {
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `redis-server` on a free loopback port, keeping nothing on disk. */
export async function startLocalRedis(extraArgs: string[] = [], port?: number): Promise<LocalRedis> {
  const binary = redisServerBinary();
  if (!binary) throw new Error('redis-server is not on PATH');
  const p = port ?? (await freePort());
  const args = ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning', ...extraArgs];
  // Its own working directory: a replica writes the RDB a full sync sends it there (`--save ''`
  // stops only the periodic saves), not into the caller's checkout.
  const cwd = mkdtempSync(join(tmpdir(), 'redlimit-redis-'));
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd });
  child.once('exit', () => rmSync(cwd, { recursive: true, force: true }));
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPing(p),
      exited.then(() => {
        throw new Error(`redis-server exited at start: ${stderr.trim()}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const halt = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited;
    }
  };
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    process: child,
    kill: () => halt('SIGKILL'),
    stop: () => halt('SIGTERM'),
    restart: () => startLocalRedis(extraArgs, p),
  };
}
