/**
 * `npm run bench`: server cost of every script as a ratio to a trivial `return 1` script measured
 * in the same run (rounds interleave script and baseline, so a noisy neighbour hits both), and
 * decisions/s from one Node process. Runs against REDIS_URL, else a redis-server of its own.
 */
import { Redis } from 'ioredis';
import { allScripts, functionsLibrary, gcra } from '../generated/index.js';
import { preload } from '../src/runtime/index.js';
import { startLocalRedis } from '../devtools/local-redis.js';
import { decisionsPerSecond, FLOOR_SOURCE, serverUsecPerCall, TRIVIAL_SOURCE } from './server-cost.js';
import { benchCases } from './cases.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function main(): Promise<void> {
  const own = process.env.REDIS_URL ? undefined : await startLocalRedis();
  const url = process.env.REDIS_URL ?? own!.url;
  const redis = new Redis(url);
  try {
    await preload(redis, allScripts);
    await redis.function('LOAD', 'REPLACE', functionsLibrary);
    const trivialSha = (await redis.script('LOAD', TRIVIAL_SOURCE)) as string;
    // A case that needs a prepare call per call (settle after its reserve) is for bench:instructions only.
    const cases = benchCases().filter((c) => !c.prepare);

    // Each case's rounds run together and its row prints as soon as it is measured; within a
    // round the script and the trivial baseline alternate, so a noisy neighbour hits both.
    console.log(`redlimit bench: ${url} (${own ? 'own redis-server' : 'REDIS_URL'}), ${CALLS} calls x ${ROUNDS} rounds per case`);
    console.log('script'.padEnd(28) + 'server us/call'.padStart(15) + 'trivial us/call'.padStart(17) + 'ratio'.padStart(8) + 'target'.padStart(9) + 'via FCALL'.padStart(18));
    const samples = new Map<string, { script: number[]; base: number[]; fcall: number[] }>();
    let missed = 0;
    for (const c of cases) {
      const s = { script: [] as number[], base: [] as number[], fcall: [] as number[] };
      for (let round = 0; round < ROUNDS; round++) {
        // The baseline gets the same keys and arguments, so only the script's own work differs.
        s.base.push(await serverUsecPerCall(redis, trivialSha, { ...c, name: 'trivial' }, CALLS));
        s.script.push(await serverUsecPerCall(redis, c.def!.sha1, c, CALLS));
        // Same traffic on keys of its own, so neither run inherits the other's state.
        const onOwnKeys = { ...c, call: (i: number) => ({ ...c.call(i), keys: c.call(i).keys.map((k) => `fcall:${k}`) }) };
        s.fcall.push(await serverUsecPerCall(redis, '', onOwnKeys, CALLS, 64, `redlimit_${c.def!.name}_v${c.def!.version}`));
      }
      samples.set(c.name, s);
      const script = median(s.script);
      const base = median(s.base);
      const ratio = script / base;
      const ok = c.target === undefined || ratio <= c.target;
      if (!ok) missed++;
      const viaFcall = median(s.fcall) / base;
      console.log(
        c.name.padEnd(28) +
          script.toFixed(2).padStart(15) +
          base.toFixed(2).padStart(17) +
          `${ratio.toFixed(2)}x`.padStart(8) +
          (c.target ? `<=${c.target}x ${ok ? 'ok' : 'MISSED'}` : '').padStart(9) +
          `${viaFcall.toFixed(2)}x`.padStart(18),
      );
    }

    // Calibration: how expensive is the bare minimum on this machine, in the same run?
    const floorSha = (await redis.script('LOAD', FLOOR_SOURCE)) as string;
    const gcraCase = cases.find((c) => c.name === 'gcra')!;
    const floorRatios: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const base = await serverUsecPerCall(redis, trivialSha, { ...gcraCase, name: 'trivial' }, CALLS);
      floorRatios.push((await serverUsecPerCall(redis, floorSha, { ...gcraCase, name: 'floor' }, CALLS)) / base);
    }
    console.log(`\nreference: a script doing only TIME + GET + SET PXAT costs ${median(floorRatios).toFixed(2)}x trivial on this run`);

    const single = median(samples.get('multi (1 limit)')!.script);
    const triple = median(samples.get('multi (3 limits)')!.script);
    const multiOk = triple / single <= 2.5;
    if (!multiOk) missed++;
    console.log(`\nmulti with 3 limits costs ${(triple / single).toFixed(2)}x multi with 1 (target <=2.5x ${multiOk ? 'ok' : 'MISSED'})`);

    const dps = await decisionsPerSecond((i) => gcra(redis, { key: `bench:dps:${i % 1000}`, limit: 1_000_000, periodMs: 1000 }), CALLS);
    console.log(`\ngcra binding, one Node process, 128 in flight: ${Math.round(dps).toLocaleString('en-US')} decisions/s`);

    await extraBenches(redis);
    if (missed > 0) console.log(`\n${missed} target(s) missed on this run (the machine is shared; rerun to confirm).`);
  } finally {
    await redis.quit();
    await own?.stop();
  }
}

/** Further benches registered by later parts (twin, client); each prints as soon as it has measured. */
async function extraBenches(redis: Redis): Promise<void> {
  const { benches } = await import('./extra.js');
  for (const b of benches) for (const line of await b(redis)) console.log(line);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

await main();
