import type { Redis } from 'ioredis';
import type { ScriptDef } from '../src/runtime/index.js';

/** A script whose server cost is the floor every ratio is measured against. */
export const TRIVIAL_SOURCE = 'return 1';

/** The least any server-clocked limiter does: TIME, GET its state, SET it back with an expiry. */
export const FLOOR_SOURCE =
  "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) " +
  "local v = redis.call('GET', KEYS[1]) redis.call('SET', KEYS[1], now, 'PXAT', now + 1000) return { 1, 0, 0, 0 }";

export interface CostCase {
  name: string;
  /** The script to run, or the trivial baseline. */
  def?: ScriptDef;
  /** keys and argv for call i (vary keys so state exists and is realistic). */
  call(i: number): { keys: string[]; argv: string[] };
  /** Which ratio target applies, e.g. 6 for "≤ 6x trivial". */
  target?: number;
  /** bench:instructions also compares this case with another case's count (at most `target` times it, if given). */
  versus?: { name: string; target?: number };
  /**
   * A call made before each measured call (e.g. the reserve a settle settles); bench:instructions
   * subtracts what the prepare calls alone cost, and bench (µs) leaves such cases out.
   */
  prepare?: { def: ScriptDef; call(i: number): { keys: string[]; argv: string[] } };
}

/**
 * Redis server µs per call of one script: CONFIG RESETSTAT, `calls` EVALSHAs (or FCALLs of
 * `fn`) kept `inFlight` deep, then INFO commandstats' usec per call. Server time only: network
 * and client costs are out of the number, which is what makes it comparable across runs.
 */
export async function serverUsecPerCall(redis: Redis, sha: string, c: CostCase, calls: number, inFlight = 64, fn?: string): Promise<number> {
  await redis.config('RESETSTAT');
  let next = 0;
  const worker = async () => {
    while (next < calls) {
      const { keys, argv } = c.call(next++);
      if (fn) await redis.fcall(fn, keys.length, ...keys, ...argv);
      else await redis.evalsha(sha, keys.length, ...keys, ...argv);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const stats = await redis.info('commandstats');
  const m = new RegExp(`cmdstat_${fn ? 'fcall' : 'evalsha'}:calls=(\\d+),usec=(\\d+)`).exec(stats);
  if (!m) throw new Error('no stats for the measured command');
  return Number(m[2]) / Number(m[1]);
}

/** Decisions per second from one Node process through a binding (client + network included). */
export async function decisionsPerSecond(run: (i: number) => Promise<unknown>, calls: number, inFlight = 128): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (next < calls) await run(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return calls / seconds;
}
