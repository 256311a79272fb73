/**
 * `npx tsx bench/python-adoption.ts`: what a Python-only fleet's new subjects cost Redis with the
 * generated binding's `Limiter` of three tiers (a minute of gcra, an hour of sliding window, a day
 * of quota: one key per subject, the tiers script through EVALSHA), before and after it followed
 * the adoption marker (src/client/adoption.ts; the Python side: codegen/templates/python/limiter.py
 * _AdoptionSwitch). Before, every decision sent `adopt`, so a subject's key holding nothing looked
 * for its limits' own keys; after, the first call finds no marker, scans (an empty keyspace: none)
 * and the decisions send no adopt.
 *
 * Redis instructions per decision by callgrind (bench/callgrind.ts: inside processInputBuffer),
 * (count after 3N decisions - count after N) / 2N, each decision on a subject never seen; and
 * the Python process's CPU per decision (time.process_time over N decisions, on a plain
 * redis-server, ROUNDS rounds alternating the two, median), which the switch's check adds to.
 *
 * BENCH_DECISIONS (N, default 1000), BENCH_ROUNDS (default 5), BENCH_PY_BEFORE (the module to
 * measure as before; default: generated/python/redlimit_scripts.py at BENCH_BEFORE_REV, default
 * 8d1bd92, the last commit before the switch).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { instructionsOf } from './callgrind.js';
import { startLocalRedis } from '../devtools/local-redis.js';
import { PYTHON } from '../devtools/python.js';

const run = promisify(execFile);
const N = Number(process.env.BENCH_DECISIONS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const root = join(import.meta.dirname, '..');

/** The directory of each variant's module. */
function modules(): Record<'before' | 'after', string> {
  const before = mkdtempSync(join(tmpdir(), 'redlimit-py-before-'));
  const given = process.env.BENCH_PY_BEFORE;
  const source = given
    ? execFileSync('cat', [given], { encoding: 'utf8', maxBuffer: 1 << 28 })
    : execFileSync('git', ['show', `${process.env.BENCH_BEFORE_REV ?? '8d1bd92'}:generated/python/redlimit_scripts.py`], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  mkdirSync(before, { recursive: true });
  writeFileSync(join(before, 'redlimit_scripts.py'), source);
  return { before, after: join(root, 'generated/python') };
}

/** Python: a default Limiter of three tiers on port, one warm-up call (and the scan it starts), then n decisions on new subjects; prints the CPU seconds they took. */
const DRIVER = `import sys, time
sys.path.insert(0, sys.argv[1])
import redis, redlimit_scripts as rl
port, n, seed = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
limits = [rl.Limit(name="m", algo="gcra", limit=1_000_000, period_ms=60_000),
          rl.Limit(name="h", algo="sliding_window", limit=10_000_000, period_ms=3_600_000),
          rl.Limit(name="d", algo="quota", limit=100_000_000, unit="day")]
lim = rl.Limiter(redis.Redis(port=port), limits)
assert lim.limit("warm-up").allowed
sw = getattr(lim, "_adoption", None)
if sw is not None and sw.worker is not None:
    sw.worker.join()
t = time.process_time()
for i in range(n):
    assert lim.limit(f"user-{seed}-{i}").allowed
print(time.process_time() - t, getattr(lim, "adopting", "always"))
`;

async function drive(dir: string, port: number, n: number, seed: string): Promise<[number, string]> {
  const { stdout } = await run(PYTHON, ['-c', DRIVER, dir, String(port), String(n), seed], { timeout: 600_000 });
  const [cpu, adopting] = stdout.trim().split(' ');
  return [Number(cpu), adopting!];
}

async function perDecision(dir: string): Promise<{ instructions: number; adopting: string }> {
  let adopting = '';
  const count = (n: number) =>
    instructionsOf(async (redis) => {
      const port = (redis.options as { port: number }).port;
      [, adopting] = await drive(dir, port, n, 'cg');
    });
  const few = await count(N);
  const many = await count(3 * N);
  return { instructions: (many - few) / (2 * N), adopting };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dirs = modules();
  console.log(`Python Limiter, 3 tiers (gcra minute, sliding_window hour, quota day), one key per subject, EVALSHA; N=${N}`);
  const counts: Record<string, number> = {};
  for (const v of ['before', 'after'] as const) {
    const r = await perDecision(dirs[v]);
    counts[v] = r.instructions;
    console.log(`${v.padEnd(7)} Redis instructions per new-subject decision: ${Math.round(r.instructions).toLocaleString('en-US')} (adopting: ${r.adopting})`);
  }
  console.log(`after / before: ${(counts.after! / counts.before!).toFixed(3)}x`);

  const server = await startLocalRedis();
  try {
    const port = Number(new URL(server.url).port);
    const cpu: Record<string, number[]> = { before: [], after: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of ['before', 'after'] as const) cpu[v]!.push((await drive(dirs[v], port, N, `cpu-${v}-${r}`))[0] / N);
    }
    const [b, a] = [median(cpu.before!), median(cpu.after!)];
    console.log(`Python CPU per decision (median of ${ROUNDS} rounds): before ${(b * 1e6).toFixed(1)} µs, after ${(a * 1e6).toFixed(1)} µs (${(a / b).toFixed(3)}x)`);
  } finally {
    await server.stop();
  }
}

await main();
