import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/index.js';
import { functionsServerForFile } from '../support/redis.js';

/**
 * multi keeps its pending-writes list between calls of a Functions library, and builds its reply
 * in a table sized for four limits (lib/multi.lua). A call must answer, and write, exactly as if
 * it were the first: after a call with more limits (stale writes and reply slots past this
 * call's own), after one that admitted (writes this call must not replay when it denies), with
 * more than four limits (the reply grows), more than sixteen (a list of its own). FCALL (state
 * kept across calls) ≡ EVALSHA (a fresh script each call) ≡ twin, on replies and on every key's
 * state.
 */
// FCALL (what the library keeps lives across calls) and EVALSHA (a fresh script each call).
const lib = functionsServerForFile();

const T0 = Date.UTC(2026, 2, 20, 10);
type Algo = 'gcra' | 'token_bucket' | 'fixed_window' | 'sliding_window' | 'quota';
const ALGOS: Algo[] = ['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'quota'];
let run = 0;

function limitOf(algo: Algo, limit: number, slot: number, cost: number, tag: string): Omit<b.MultiItem, 'key'> & { name: string } {
  const name = `${tag}:${algo}:${slot}`;
  if (algo === 'quota') return { name, algo, limit, unit: 'day', offsetMs: 0, cost };
  return { name, algo, limit, periodMs: 60_000, cost };
}

describe('multi: what a Functions library keeps between calls', () => {
  it('calls of 1 to 18 limits in any order, admitted or not, answer and write as a first call would (FCALL ≡ EVALSHA ≡ twin)', async () => {
    const item = fc.record({ algo: fc.constantFrom(...ALGOS), limit: fc.integer({ min: 1, max: 4 }), slot: fc.integer({ min: 0, max: 3 }), cost: fc.integer({ min: 0, max: 3 }) });
    const call = fc.record({ items: fc.uniqueArray(item, { minLength: 1, maxLength: 18, selector: (i) => `${i.algo}:${i.slot}` }), advance: fc.integer({ min: 0, max: 20_000 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 2, maxLength: 10 }), async (calls) => {
        const tag = `reuse${run++}`;
        const twin = new TwinClient();
        let now = T0;
        const keys = new Set<string>();
        for (const c of calls) {
          now += c.advance;
          const limits = c.items.map((i) => limitOf(i.algo, i.limit, i.slot, i.cost, tag));
          for (const l of limits) keys.add(l.name);
          const on = (side: string) => ({ nowMs: now, limits: limits.map(({ name, ...l }) => ({ ...l, key: `{${tag}}${side}${name}` })) });
          // FCALL raw, as another language calls it: the reply's length is part of the contract.
          const mine = on(':fn:');
          const argv = [String(now), '', ...mine.limits.flatMap((l) => [l.algo, String(l.limit), l.periodMs === undefined ? '' : String(l.periodMs), String(l.cost), '', l.offsetMs === undefined ? '' : String(l.offsetMs), l.unit ?? '', '', ''])];
          const raw = (await lib.fn.fcall(`redlimit_multi_v${b.multiScript.version}`, mine.limits.length, ...mine.limits.map((l) => l.key), ...argv)) as number[];
          expect(raw).toHaveLength(3 + 4 * limits.length);
          const viaFn = { allowed: raw[0] === 1, deniedIndex: raw[1], retryAfterMs: raw[2], limits: limits.map((_, i) => ({ allowed: raw[3 + 4 * i] === 1, remaining: raw[4 + 4 * i], resetAfterMs: raw[5 + 4 * i], retryAfterMs: raw[6 + 4 * i] })) };
          const viaSha = await b.multi(lib.sha, on(':sha:'));
          const onTwin = await b.multi(twin, on(':twin:'));
          expect(viaFn).toEqual(viaSha);
          expect(onTwin).toEqual(viaFn);
          expect(viaFn.limits).toHaveLength(limits.length);
        }
        // What each path left in Redis is the same state (the twin's is checked through its answers above).
        for (const k of keys) expect(await lib.fn.get(`{${tag}}:fn:${k}`)).toEqual(await lib.sha.get(`{${tag}}:sha:${k}`));
      }),
      { numRuns: 60 },
    );
  });
});
