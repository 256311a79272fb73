/**
 * `npx tsx bench/memory-path.ts`: the in-memory path (a limiter created without `redis`, every
 * decision on the exact twin) against rate-limiter-flexible's RateLimiterMemory, one `await` per
 * decision, contenders interleaved round by round in one process (the machine is shared and
 * noisy: compare the ratios of one run, not absolute numbers).
 *
 * Cases:
 * - uniform: bench:compare's in-memory section (10k seeded ids, a limit that admits throughout);
 * - fresh: every decision a new id (each creates a key; expiry keeps memory bounded);
 * - hot: one id, denied most of the time after its first burst.
 *
 * Each round makes fresh instances and runs them in alternating chunks (CHUNK decisions each), so
 * a burst of load from another process hits both alike; reported per contender: the median and
 * the best chunk rate over all rounds, and their ratios. Rates are per second of the main
 * thread's CPU time (Linux schedstat), which a busy machine disturbs far less than wall time.
 *
 * BENCH_ROUNDS (default 3), BENCH_DECISIONS per round and contender (default 500 000),
 * BENCH_CHUNK (default 50 000), BENCH_CASES (comma list of uniform, fresh, hot), BENCH_ALGO
 * (redlimit's algorithm, default gcra; token_bucket, fixed_window, sliding_window, …).
 * BEFORE=<a copy of the tree>/src/index.ts adds that build as a third contender (the three
 * rotated per chunk) and reports after / before paired per chunk (the median of the ratios).
 * Read it against a control: BEFORE pointing at this same tree (one module instance, identical
 * code) read uniform 1.15-1.16x, fresh 0.97-0.98x, hot 1.00x in two runs on 2026-12-02, and
 * uniform 1.01x with the two limiters' roles swapped: on this shared machine a paired ratio
 * within about ±15% of 1 is no change.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { createRateLimiter } from '../src/index.js';

type Create = typeof createRateLimiter;
const before: Create | null = process.env.BEFORE ? ((await import(process.env.BEFORE)) as { createRateLimiter: Create }).createRateLimiter : null;

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const N = Number(process.env.BENCH_DECISIONS ?? 500_000);
const CHUNK = Math.min(N, Number(process.env.BENCH_CHUNK ?? 50_000));
const CASES = new Set((process.env.BENCH_CASES ?? 'uniform,fresh,hot').split(','));
const IDS = 10_000;
const ALGO = (process.env.BENCH_ALGO ?? 'gcra') as 'gcra';

function ids(seed: number): string[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: IDS }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return `user-${(x >>> 0) % 1_000_000}`;
  });
}

/** Every order of n contenders (n = 2 or 3), for the chunks to go through in turn. */
const ORDERS: Record<number, number[][]> = {
  2: [[0, 1], [1, 0]],
  3: [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]],
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Decide = (id: string) => Promise<unknown>;

/**
 * ns this thread has run on a CPU (Linux schedstat): unlike wall time, it does not count the time
 * other processes held the CPU. Elsewhere: wall time.
 */
function cpuNs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
  } catch {
    return performance.now() * 1e6;
  }
}

/** Decisions `from` .. `from + CHUNK`: decisions per second of this thread's CPU time. */
async function chunk(decide: Decide, id: (i: number) => string, from: number): Promise<number> {
  const t = cpuNs();
  for (let i = from; i < from + CHUNK; i++) await decide(id(i));
  return CHUNK / ((cpuNs() - t) / 1e9);
}

interface Case {
  name: string;
  id: (i: number) => string;
  /** points per duration seconds for both libraries. */
  points: number;
  seconds: number;
}

async function main(): Promise<void> {
  const pkg = (name: string) => JSON.parse(readFileSync(join('node_modules', name, 'package.json'), 'utf8')).version as string;
  console.log(`# in-memory path — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, rate-limiter-flexible ${pkg('rate-limiter-flexible')}; redlimit ${ALGO}; ${ROUNDS} rounds of ${N} decisions per contender, in alternating chunks of ${CHUNK}, one await per decision\n`);
  const uniform = ids(42);
  // Fresh ids are built before the run (string building is the caller's cost in both).
  const fresh = Array.from({ length: N }, (_, i) => `ip-${i}`);
  const all: Case[] = [
    { name: 'uniform (10k ids, limit 1M/60 s)', id: (i) => uniform[i % IDS]!, points: 1_000_000, seconds: 60 },
    { name: 'fresh (a new id each decision, 10/1 s)', id: (i) => fresh[i]!, points: 10, seconds: 1 },
    { name: 'hot (1 id, 100/1 s: mostly denied)', id: () => 'hot', points: 100, seconds: 1 },
  ];
  const cases = all.filter((c) => CASES.has(c.name.split(' ')[0]!));
  const f = (x: number) => Math.round(x).toLocaleString('en-US');
  for (const c of cases) {
    const mem: number[] = [];
    const ours: number[] = [];
    const prev: number[] = [];
    const paired: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Fresh instances per round: the fresh case must start from an empty store every time.
      const rlf = new RateLimiterMemory({ points: c.points, duration: c.seconds });
      const options = { limits: { name: 'm', algo: ALGO, limit: c.points, periodMs: c.seconds * 1000 } };
      const lim = createRateLimiter(options);
      const old = before ? before(options) : null;
      for (let from = 0; from + CHUNK <= N; from += CHUNK) {
        const runs: (() => Promise<void>)[] = [
          async () => void mem.push(await chunk((id) => rlf.consume(id).catch((x: unknown) => x), c.id, from)),
          async () => void ours.push(await chunk((id) => lim.limit(id), c.id, from)),
        ];
        if (old) runs.push(async () => void prev.push(await chunk((id) => old.limit(id), c.id, from)));
        // Every order in turn, so each contender follows each other one equally often (a plain
        // rotation of three always ran BEFORE right after redlimit, and read the same code 1.3x slower).
        const order = ORDERS[runs.length]![(from / CHUNK) % ORDERS[runs.length]!.length]!;
        for (const j of order) await runs[j]!();
        if (old) paired.push(ours[ours.length - 1]! / prev[prev.length - 1]!);
      }
      await lim.close();
      await old?.close();
    }
    const best = (xs: number[]) => Math.max(...xs);
    console.log(`## ${c.name}`);
    console.log(`  RateLimiterMemory   median ${f(median(mem)).padStart(10)}  best ${f(best(mem)).padStart(10)} decisions/s`);
    console.log(`  redlimit, no redis  median ${f(median(ours)).padStart(10)}  best ${f(best(ours)).padStart(10)} decisions/s`);
    console.log(`  ratio               median ${(median(ours) / median(mem)).toFixed(2)}×       best ${(best(ours) / best(mem)).toFixed(2)}×`);
    if (before) {
      console.log(`  before (BEFORE)     median ${f(median(prev)).padStart(10)}  best ${f(best(prev)).padStart(10)} decisions/s (${(median(prev) / median(mem)).toFixed(2)}× RateLimiterMemory)`);
      console.log(`  after / before      paired per chunk: median ${median(paired).toFixed(2)}× (min ${Math.min(...paired).toFixed(2)}, max ${Math.max(...paired).toFixed(2)})`);
    }
    console.log('');
  }
}

await main();
