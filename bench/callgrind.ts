/**
 * One redis-server under valgrind's callgrind: run `work` against it, shut it down, and return
 * the instructions it executed in all. Callers difference two runs (N and 3N operations) so that
 * start-up and shutdown cancel out. Shared by bench:instructions and bench:compare.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, redisServerBinary, waitForPing } from '../devtools/local-redis.js';

/**
 * Server timers at their slowest: serverCron (active expiry, stats, client checks) runs `hz` times
 * a second of wall time, and wall time under valgrind on a loaded machine varies several-fold, so
 * at the default hz 10 (and dynamic hz) the difference of two runs carried up to ~8% of timer
 * work. At hz 1 it is a tenth of that; nothing measured depends on the timers.
 */
const QUIET = ['--hz', '1', '--dynamic-hz', 'no'];

export async function instructionsOf(work: (redis: Redis) => Promise<void>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'redlimit-callgrind-'));
  const port = await freePort();
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'out')}`, redisServerBinary()!, '--port', String(port), '--save', '', '--appendonly', 'no', ...QUIET], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await waitForPing(port, 60_000);
    const redis = new Redis(port, { autoResendUnfulfilledCommands: false });
    redis.on('error', () => {});
    await new Promise((r) => (redis.status === 'ready' ? r(null) : redis.once('ready', r)));
    await work(redis);
    await redis.call('SHUTDOWN', 'NOSAVE').catch(() => {});
    redis.disconnect();
    await exited;
    const file = readdirSync(dir).find((f) => f.startsWith('out'))!;
    return Number(/^summary: (\d+)/m.exec(readFileSync(join(dir, file), 'utf8'))![1]);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
