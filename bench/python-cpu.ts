/**
 * `npx tsx bench/python-cpu.ts`: the generated Python binding's own CPU per decision (redis-py
 * 4.3, sync, one process, one call in flight), against a `return 1` EVALSHA through the same
 * redis-py client in the same run: what the binding adds around a round trip that redis-py itself
 * costs. Rows: `return 1`; gcra through the raw binding (`rl.GCRA`); a `Limiter` of one gcra limit
 * (multi, a key per limit); a `Limiter` of 3 tiers (a minute of gcra, an hour of sliding window, a
 * day of quota: tiers, one key per subject). Ids drawn from IDS (default 1000), limits high enough
 * that every decision is admitted.
 *
 * Each row runs N decisions (BENCH_DECISIONS, default 3000) in ROUNDS rounds (BENCH_ROUNDS,
 * default 7), before and after interleaved within each round (BENCH_BEFORE_REV, default HEAD: the
 * generated module at that commit; BENCH_PY_BEFORE: a module file instead), on one redis-server
 * of its own; per row the median of time.process_time per decision, and the ratio of the medians.
 * Process CPU, not wall time: the round trip's wait is not the binding's. The shared machine
 * still moves these by several percent from round to round: read the `return 1` row as the
 * floor and the ratios within a round.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startLocalRedis } from '../devtools/local-redis.js';
import { PYTHON } from '../devtools/python.js';

const run = promisify(execFile);
const N = Number(process.env.BENCH_DECISIONS ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const IDS = Number(process.env.BENCH_IDS ?? 1000);
const root = join(import.meta.dirname, '..');

function beforeModule(): string {
  const dir = mkdtempSync(join(tmpdir(), 'redlimit-py-before-'));
  const given = process.env.BENCH_PY_BEFORE;
  const source = given
    ? execFileSync('cat', [given], { encoding: 'utf8', maxBuffer: 1 << 28 })
    : execFileSync('git', ['show', `${process.env.BENCH_BEFORE_REV ?? 'HEAD'}:generated/python/redlimit_scripts.py`], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  writeFileSync(join(dir, 'redlimit_scripts.py'), source);
  return dir;
}

const ROWS = ['return 1', 'gcra (raw binding)', 'Limiter, 1 gcra limit', 'Limiter, 3 tiers'] as const;

/** Python: each row's CPU seconds per decision, as JSON. */
const DRIVER = `import gc, sys, time, json
sys.path.insert(0, sys.argv[1])
import redis, redlimit_scripts as rl
port, n, ids, tag = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = redis.Redis(port=port)
gcra = rl.Limit(name="m", algo="gcra", limit=10**9, period_ms=60_000)
tiers = [gcra, rl.Limit(name="h", algo="sliding_window", limit=10**9, period_ms=3_600_000), rl.Limit(name="d", algo="quota", limit=10**9, unit="day")]
one = rl.Limiter(r, gcra, prefix=tag + "1")
three = rl.Limiter(r, tiers, prefix=tag + "3")
sha = r.script_load("return 1")
names = [f"user-{i}" for i in range(ids)]
keys = [rl.limit_key("m", x, prefix=tag + "r") for x in names]
rows = {
    "return 1": lambda i: r.evalsha(sha, 1, keys[i % ids]),
    "gcra (raw binding)": lambda i: rl.GCRA(r, [keys[i % ids]], limit=10**9, period_ms=60_000),
    "Limiter, 1 gcra limit": lambda i: one.limit(names[i % ids]),
    "Limiter, 3 tiers": lambda i: three.limit(names[i % ids]),
}
for f in rows.values():  # warm: every id once (scripts loaded, the adoption marker read)
    for i in range(ids):
        f(i)
sw = getattr(three, "_adoption", None)
if sw is not None and sw.worker is not None:
    sw.worker.join()
out = {}
order = list(rows)
shift = int(sys.argv[6]) % len(order)  # each round starts at another row (the first row of a process ran slow)
for name in order[shift:] + order[:shift]:
    f = rows[name]
    gc.collect()
    t = time.process_time()
    for i in range(n):
        f(i)
    out[name] = (time.process_time() - t) / n
print(json.dumps(out))
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dirs = { before: beforeModule(), after: join(root, 'generated/python') };
  const server = await startLocalRedis();
  const per: Record<'before' | 'after', Record<string, number[]>> = { before: {}, after: {} };
  try {
    const port = Number(new URL(server.url).port);
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of round % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const)) {
        const { stdout } = await run(PYTHON, ['-c', DRIVER, dirs[v], String(port), String(N), String(IDS), `${v}${round}`, String(round)], { timeout: 600_000 });
        for (const [row, s] of Object.entries(JSON.parse(stdout) as Record<string, number>)) (per[v][row] ??= []).push(s * 1e6);
      }
    }
  } finally {
    await server.stop();
  }
  console.log(`Python CPU per decision, µs (median of ${ROUNDS} rounds, N=${N}, ${IDS} ids); before = ${process.env.BENCH_PY_BEFORE ?? process.env.BENCH_BEFORE_REV ?? 'HEAD'}`);
  console.log('row'.padEnd(26) + 'before'.padStart(9) + 'after'.padStart(9) + 'after/before'.padStart(14) + '  ÷ return 1 (before, after)');
  const floor = { before: median(per.before['return 1']!), after: median(per.after['return 1']!) };
  for (const row of ROWS) {
    const [b, a] = [median(per.before[row]!), median(per.after[row]!)];
    console.log(row.padEnd(26) + b.toFixed(1).padStart(9) + a.toFixed(1).padStart(9) + `${(a / b).toFixed(3)}x`.padStart(14) + `  ${(b / floor.before).toFixed(2)}x, ${(a / floor.after).toFixed(2)}x`);
  }
}

await main();
