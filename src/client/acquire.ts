import * as b from '../../generated/index.js';
import { InvalidArgumentError } from '../errors.js';
import { intArg, type ScriptDef } from '../runtime/index.js';
import { parseScriptArgs, type ArgValues } from '../twin/args.js';
import type { Decision, DecisionSource } from './decision.js';
import { callerError } from './failure.js';
import type { Decoder } from './decode.js';
import type { Fallback } from './fallback.js';
import { pushBlockItem, type LimitPlan } from './plan.js';
import type { RedisPath } from './redis-path.js';
import type { Target } from './keys.js';

export interface AcquireOptions {
  cost?: number;
  maxWaitMs?: number;
  signal?: AbortSignal;
}

/** A booking on one gcra limit: the decision, and how long to wait before using it. */
export interface Booking {
  d: Decision;
  waitMs: number;
}

/**
 * What acquire() sends: the gcra_reserve call for `t`, checked here exactly as the script checks
 * it (its header's ranges and @checks), so a refusal is the caller's error before any round trip.
 */
export function booking(p: LimitPlan, t: Target, blockKey: string | null, o: AcquireOptions, decode: Decoder) {
  const def = b.gcraReserveScript;
  const cost = o.cost ?? 1;
  const maxWaitMs = o.maxWaitMs ?? 0;
  const argv = [...p.consume.argv.slice(0, 3), intArg(def.name, def.args[3]!, cost, 'cost'), intArg(def.name, def.args[4]!, maxWaitMs, 'maxWaitMs')];
  refusedBefore(def, () => parseScriptArgs(def, [t.keys[0]!], argv));
  const values: ArgValues = { ...p.fallback.consume.values, cost, max_wait_ms: maxWaitMs };
  const blocked = (source: DecisionSource, r: number[]) => (r[0] === 1 ? null : decode.blocked(r[5]!, source));
  const penalty = blockKey === null ? null : [blockKey];
  const key = [t.keys[0]!];
  const reserve = (r: number[], source: DecisionSource): Booking => ({ d: decode.single(r, 0, source), waitMs: r[4]! });
  return {
    cost,
    async onRedis(path: RedisPath): Promise<Booking> {
      // A blocked subject books nothing (the block check is read-only, then the booking).
      if (penalty) {
        const argv = ['', '']; // multi_peek v3: now_ms, tz_rules, then the block group
        pushBlockItem(argv);
        const d = blocked('redis', (await path.run(b.multiPeekScript, penalty, argv, t.slot)) as number[]);
        if (d) return { d, waitMs: 0 };
      }
      return reserve((await path.run(def, key, argv, t.slot)) as number[], 'redis');
    },
    onTwin(fallback: Fallback): Booking {
      if (penalty) {
        const d = blocked('fallback', fallback.twin.runParsed(b.multiPeekScript, penalty, {}, [{ algo: 'block', limit: 1, cost: 1, offset_ms: 0 }]));
        if (d) return { d, waitMs: 0 };
      }
      return reserve(fallback.twin.runParsed(def, key, values), 'fallback');
    },
  };
}

/** Runs the twin's parse of a call's arguments: what it refuses is the caller's error, typed as such. */
function refusedBefore(def: ScriptDef, parse: () => unknown): void {
  try {
    parse();
  } catch (err) {
    const typed = callerError(err, []);
    if (typed instanceof InvalidArgumentError) throw typed;
    throw new InvalidArgumentError(def.name, 'arguments', (err as Error).message);
  }
}

/** A booking's decision once it is due; aborting the wait gives the booked units back (`giveBack`). */
export async function waitFor(result: Booking, signal: AbortSignal | undefined, giveBack: () => Promise<void>): Promise<Decision> {
  if (!result.d.allowed || result.waitMs === 0) return result.d;
  try {
    await sleep(result.waitMs, signal);
  } catch (err) {
    await giveBack().catch(() => {});
    throw err;
  }
  return result.d;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    // Aborted while the booking was on its way: its 'abort' event has fired already.
    if (signal?.aborted) {
      reject(signal.reason ?? new Error('aborted'));
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason ?? new Error('aborted'));
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}
