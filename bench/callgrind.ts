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
 * What is counted. `commands` (the default): only instructions inside processInputBuffer, i.e.
 * parsing each command and running it (the script and every command it calls) and building its
 * reply; not the server's timers (serverCron: active expiry, stats, client checks), which run
 * `hz` times a second of *wall* time: under valgrind on a loaded machine wall time per call varies
 * several-fold, and the difference of two runs carried up to ~8% of timer work (and 2.6% on
 * an unchanged `return 1`). Nor writing replies to sockets and the event loop (the same for every
 * contender, per call). `server` (BENCH_CALLGRIND_SCOPE=server): the whole process, as before
 * issue 17, with the timers at hz 1 to damp them.
 */
const SCOPE = process.env.BENCH_CALLGRIND_SCOPE === 'server' ? ['--hz', '1', '--dynamic-hz', 'no'] : ['--toggle-collect=processInputBuffer'];

export async function instructionsOf(work: (redis: Redis) => Promise<void>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'redlimit-callgrind-'));
  const port = await freePort();
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'out')}`, ...SCOPE.filter((a) => a.startsWith('--toggle')), redisServerBinary()!, '--port', String(port), '--save', '', '--appendonly', 'no', ...SCOPE.filter((a) => !a.startsWith('--toggle'))], { stdio: 'ignore' });
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
