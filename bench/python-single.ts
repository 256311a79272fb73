/**
 * `npx tsx bench/python-single.ts`: what a decision of the generated Python `Limiter` of ONE limit
 * costs Redis, before and after it ran the algorithm's own script instead of `multi` (a Node
 * limiter's lone call already does: the same key, state and answer). EVALSHA through redis-py 4.3
 * sync, each limit's key per id; per algorithm, ids never seen (a key created) and ids revisited.
 *
 * Redis instructions per decision by callgrind (bench/callgrind.ts: inside processInputBuffer),
 * (count after 3N decisions - count after N) / 2N; and the Python process's CPU per decision
 * (time.process_time over N decisions on a plain redis-server, ROUNDS rounds alternating, median).
 *
 * BENCH_DECISIONS (N, default 600), BENCH_ROUNDS (default 5), BENCH_ALGOS (comma list, default
 * gcra,fixed_window,sliding_window,token_bucket,quota,sliding_log), BENCH_BEFORE_REV (default
 * 37229b4, the last commit on multi).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { instructionsOf } from './callgrind.js';
import { startLocalRedis } from '../devtools/local-redis.js';
import { PYTHON } from '../devtools/python.js';

const run = promisify(execFile);
const N = Number(process.env.BENCH_DECISIONS ?? 600);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ALGOS = (process.env.BENCH_ALGOS ?? 'gcra,fixed_window,sliding_window,token_bucket,quota,sliding_log').split(',');
const root = join(import.meta.dirname, '..');

function modules(): Record<'before' | 'after', string> {
  const before = mkdtempSync(join(tmpdir(), 'redlimit-py-before-'));
  const source = execFileSync('git', ['show', `${process.env.BENCH_BEFORE_REV ?? '37229b4'}:generated/python/redlimit_scripts.py`], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  writeFileSync(join(before, 'redlimit_scripts.py'), source);
  return { before, after: join(root, 'generated/python') };
}

/** Python: a Limiter of one limit of `algo` on port, n decisions (ids new, or revisited: 50 ids round robin); prints the CPU seconds they took. */
const DRIVER = `import sys, time
sys.path.insert(0, sys.argv[1])
import redis, redlimit_scripts as rl
port, n, seed, algo, ids = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
params = {"quota": dict(limit=10**12, unit="day")}.get(algo, dict(limit=1_000_000_000, period_ms=3_600_000))
lim = rl.Limiter(redis.Redis(port=port), rl.Limit(name="m", algo=algo, **params))
assert lim.limit("warm-up").allowed
t = time.process_time()
for i in range(n):
    assert lim.limit(f"user-{seed}-{i if ids == 'new' else i % 50}").allowed
print(time.process_time() - t)
`;

async function drive(dir: string, port: number, n: number, seed: string, algo: string, ids: string): Promise<number> {
  const { stdout } = await run(PYTHON, ['-c', DRIVER, dir, String(port), String(n), seed, algo, ids], { timeout: 600_000 });
  return Number(stdout.trim());
}

async function perDecision(dir: string, algo: string, ids: string): Promise<number> {
  const count = (n: number) => instructionsOf(async (redis) => void (await drive(dir, (redis.options as { port: number }).port, n, 'cg', algo, ids)));
  return ((await count(3 * N)) - (await count(N))) / (2 * N);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');

async function main(): Promise<void> {
  const dirs = modules();
  console.log(`Python Limiter of one limit, EVALSHA, Redis instructions per decision (N=${N}); before = multi, after = the algorithm's own script`);
  console.log('algo            ids        before      after   after/before');
  for (const algo of ALGOS) {
    for (const ids of ['new', 'revisited']) {
      const [b, a] = [await perDecision(dirs.before, algo, ids), await perDecision(dirs.after, algo, ids)];
      console.log(`${algo.padEnd(15)} ${ids.padEnd(9)} ${fmt(b).padStart(9)} ${fmt(a).padStart(10)}   ${(a / b).toFixed(3)}x`);
    }
  }
  const server = await startLocalRedis();
  try {
    const port = Number(new URL(server.url).port);
    const cpu: Record<string, number[]> = { before: [], after: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of (r % 2 ? ['after', 'before'] : ['before', 'after']) as ('before' | 'after')[]) cpu[v]!.push((await drive(dirs[v], port, N, `cpu-${v}-${r}`, 'gcra', 'revisited')) / N);
    }
    const [b, a] = [median(cpu.before!), median(cpu.after!)];
    console.log(`Python CPU per decision, gcra, revisited ids (median of ${ROUNDS} rounds): before ${(b * 1e6).toFixed(1)} µs, after ${(a * 1e6).toFixed(1)} µs (${(a / b).toFixed(3)}x)`);
  } finally {
    await server.stop();
  }
}

await main();
