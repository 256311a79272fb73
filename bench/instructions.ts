/**
 * `npm run bench:instructions`: CPU instructions Redis spends per call of each script, counted by
 * valgrind's callgrind on a redis-server of its own, next to a trivial `return 1` given the same
 * keys and arguments. Unlike µs, instruction counts do not move with a noisy neighbour: the same
 * binary, script and inputs give the same count, so ratios compare across runs and machines.
 * Per call = (count after 3N calls - count after N calls) / 2N, which cancels start-up and shutdown.
 * A case with `prepare` (settle needs its reservation) runs the prepare call before each call and
 * subtracts the prepare calls' own count. A case with `versus` is also compared with that case.
 * BENCH_ONLY=name,name runs only those cases (and the cases they are compared with).
 */
import { instructionsOf } from './callgrind.js';
import { benchCases } from './cases.js';
import { FLOOR_SOURCE, TRIVIAL_SOURCE, type CostCase } from './server-cost.js';

const N = Number(process.env.BENCH_CALLS ?? 400);

/** `source` given call i's keys and args, after `prepare`'s call i when there is one (a script's error fails the bench). */
async function instructionsAfter(source: string | null, c: CostCase, calls: number, prepare?: CostCase['prepare']): Promise<number> {
  return instructionsOf(async (redis) => {
    const sha = source === null ? '' : ((await redis.script('LOAD', source)) as string);
    const prepSha = prepare ? ((await redis.script('LOAD', prepare.def.source)) as string) : '';
    for (let i = 0; i < calls; i++) {
      if (prepare) {
        const p = prepare.call(i);
        await redis.evalsha(prepSha, p.keys.length, ...p.keys, ...p.argv);
      }
      if (source === null) continue;
      const { keys, argv } = c.call(i);
      await redis.evalsha(sha, keys.length, ...keys, ...argv);
    }
  });
}

async function perCall(source: string | null, c: CostCase, prepare?: CostCase['prepare']): Promise<number> {
  const [few, many] = [await instructionsAfter(source, c, N, prepare), await instructionsAfter(source, c, 3 * N, prepare)];
  return (many - few) / (2 * N);
}

/** The script's own count per call: with a prepare call, minus what the prepare calls alone cost. */
async function scriptPerCall(c: CostCase): Promise<number> {
  if (!c.prepare) return perCall(c.def!.source, c);
  return (await perCall(c.def!.source, c, c.prepare)) - (await perCall(null, c, c.prepare));
}

const only = process.env.BENCH_ONLY?.split(',');
const all = benchCases();
const wanted = new Set(only ?? all.map((c) => c.name));
for (const c of all) if (wanted.has(c.name) && c.versus) wanted.add(c.versus.name);
const cases = all.filter((c) => wanted.has(c.name));
const counts = new Map<string, number>();
console.log(`redlimit instructions per call (callgrind, ${N} and ${3 * N} calls per count)`);
console.log('script'.padEnd(22) + 'instructions'.padStart(14) + 'trivial'.padStart(10) + 'ratio'.padStart(9) + 'target'.padStart(9));
const gcraCase = benchCases().find((c) => c.name === 'gcra')!;
const floor = (await perCall(FLOOR_SOURCE, gcraCase)) / (await perCall(TRIVIAL_SOURCE, gcraCase));
for (const c of cases) {
  const base = await perCall(TRIVIAL_SOURCE, c);
  const script = await scriptPerCall(c);
  counts.set(c.name, script);
  const ratio = script / base;
  const verdict = c.target === undefined ? '' : `<=${c.target}x ${ratio <= c.target ? 'ok' : 'MISSED'}`;
  console.log(c.name.padEnd(22) + Math.round(script).toLocaleString('en-US').padStart(14) + Math.round(base).toLocaleString('en-US').padStart(10) + `${ratio.toFixed(2)}x`.padStart(9) + verdict.padStart(12));
}
const compared = cases.filter((c) => c.versus && counts.has(c.versus.name));
if (compared.length) {
  console.log('\n' + 'script'.padEnd(22) + 'versus'.padStart(22) + 'ratio'.padStart(9) + 'target'.padStart(14));
  for (const c of compared) {
    const ratio = counts.get(c.name)! / counts.get(c.versus!.name)!;
    console.log(c.name.padEnd(22) + c.versus!.name.padStart(22) + `${ratio.toFixed(3)}x`.padStart(9) + (c.versus!.target === undefined ? '' : `<=${c.versus!.target}x ${ratio <= c.versus!.target ? 'ok' : 'MISSED'}`).padStart(14));
  }
}
console.log(`\nreference: TIME + GET + SET PXAT alone costs ${floor.toFixed(2)}x trivial in instructions`);
