/**
 * `npm run bench:instructions`: CPU instructions Redis spends per call of each script, counted by
 * valgrind's callgrind on a redis-server of its own, next to a trivial `return 1` given the same
 * keys and arguments. Unlike µs, instruction counts do not move with a noisy neighbour: the same
 * binary, script and inputs give the same count, so ratios compare across runs and machines.
 * Per call = (count after 3N calls - count after N calls) / 2N, which cancels start-up and shutdown.
 */
import { instructionsOf } from './callgrind.js';
import { benchCases } from './cases.js';
import { FLOOR_SOURCE, TRIVIAL_SOURCE, type CostCase } from './server-cost.js';

const N = Number(process.env.BENCH_CALLS ?? 400);

async function instructionsAfter(source: string, c: CostCase, calls: number): Promise<number> {
  return instructionsOf(async (redis) => {
    const sha = (await redis.script('LOAD', source)) as string;
    for (let i = 0; i < calls; i++) {
      const { keys, argv } = c.call(i);
      await redis.evalsha(sha, keys.length, ...keys, ...argv);
    }
  });
}

async function perCall(source: string, c: CostCase): Promise<number> {
  const [few, many] = [await instructionsAfter(source, c, N), await instructionsAfter(source, c, 3 * N)];
  return (many - few) / (2 * N);
}

const only = process.env.BENCH_ONLY?.split(',');
const cases = benchCases().filter((c) => !only || only.includes(c.name));
console.log(`redlimit instructions per call (callgrind, ${N} and ${3 * N} calls per count)`);
console.log('script'.padEnd(22) + 'instructions'.padStart(14) + 'trivial'.padStart(10) + 'ratio'.padStart(9) + 'target'.padStart(9));
const gcraCase = benchCases().find((c) => c.name === 'gcra')!;
const floor = (await perCall(FLOOR_SOURCE, gcraCase)) / (await perCall(TRIVIAL_SOURCE, gcraCase));
for (const c of cases) {
  const base = await perCall(TRIVIAL_SOURCE, c);
  const script = await perCall(c.def!.source, c);
  const ratio = script / base;
  const verdict = c.target === undefined ? '' : `<=${c.target}x ${ratio <= c.target ? 'ok' : 'MISSED'}`;
  console.log(c.name.padEnd(22) + Math.round(script).toLocaleString('en-US').padStart(14) + Math.round(base).toLocaleString('en-US').padStart(10) + `${ratio.toFixed(2)}x`.padStart(9) + verdict.padStart(12));
}
console.log(`\nreference: TIME + GET + SET PXAT alone costs ${floor.toFixed(2)}x trivial in instructions`);
