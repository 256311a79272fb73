import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { compileScripts } from '../../codegen/generate.js';
import { runScript, type ScriptDef } from '../../src/runtime/index.js';
import { divmod, muldivmod } from '../../src/twin/exact.js';
import { ioredis } from '../support/redis.js';
import { tempScriptsRoot } from '../support/temp-scripts.js';

/**
 * The exact-arithmetic fragment on its own, on real Redis and in the twin, against BigInt:
 * every product below 2^88, every quotient exact.
 */
const PROBE = [
  '--- @script exact_probe',
  '--- @version 1',
  '--- @summary Test probe: rl_muldivmod and rl_divmod on their arguments.',
  '--- @key unused Not touched.',
  '--- @arg a int required 0..1099511627775 First factor (< 2^40).',
  '--- @arg b int required 0..281474976710655 Second factor (< 2^48).',
  '--- @arg c int required 1..1099511627775 Divisor (< 2^40).',
  '--- @arg p int required -9007198154240000..9007198154240000 Dividend for divmod.',
  '--- @return q int Quotient of a*b / c.',
  '--- @return r int Remainder of a*b / c.',
  '--- @return dq int Floor quotient of p / c.',
  '--- @return dr int Remainder of p / c (0 <= r < c).',
  '--- @include "lib/exact"',
  '--- @include "lib/args"',
  '--- @args',
  'local q, r = rl_muldivmod(a, b, c)',
  'local dq, dr = rl_divmod(p, c)',
  'return rl_reply({ q, r, dq, dr })',
].join('\n');

let redis: Redis;
let probe: ScriptDef;
beforeAll(() => {
  redis = ioredis();
  probe = compileScripts(tempScriptsRoot({ 'scripts-lua/exact_probe.lua': PROBE })).find((s) => s.def.name === 'exact_probe')!.def;
});
afterAll(() => redis.quit());

describe('exact arithmetic', () => {
  it('muldivmod and divmod are exact in Lua and in the twin', async () => {
    const args = fc
      .record({
        a: fc.oneof(fc.integer({ min: 0, max: 2 ** 40 - 1 }), fc.integer({ min: 0, max: 5000 })),
        b: fc.oneof(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.integer({ min: 0, max: 5000 })),
        c: fc.oneof(fc.integer({ min: 1, max: 2 ** 40 - 1 }), fc.integer({ min: 1, max: 5000 })),
        p: fc.integer({ min: -(2 ** 53) + 2 ** 40, max: 2 ** 53 - 2 ** 40 }), // |p| + c <= 2^53, as the callers keep it
      })
      // the quotient must itself be exact (< 2^53): the callers guarantee that
      .filter(({ a, b, c }) => (BigInt(a) * BigInt(b)) / BigInt(c) < 2n ** 53n);
    await fc.assert(
      fc.asyncProperty(args, async ({ a, b, c, p }) => {
        const q = (BigInt(a) * BigInt(b)) / BigInt(c);
        const r = (BigInt(a) * BigInt(b)) % BigInt(c);
        let dr = BigInt(p) % BigInt(c);
        if (dr < 0n) dr += BigInt(c);
        const dq = (BigInt(p) - dr) / BigInt(c);
        const expected = [Number(q), Number(r), Number(dq), Number(dr)];
        expect(await runScript(redis, probe, ['unused'], [a, b, c, p].map(String))).toEqual(expected);
        expect([...muldivmod(a, b, c), ...divmod(p, c)]).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});
