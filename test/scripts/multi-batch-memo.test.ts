import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/index.js';
import { tzRulesFor } from '../../src/client/time-zone.js';
import { functionsServerForFile } from '../support/redis.js';

/**
 * multi_batch keeps the specs strings it has parsed and checked (lib/multi.lua, rl_specs_memo): a
 * Functions library keeps that memo between calls. Calls that repeat specs with other costs,
 * other time zones, or bad costs must answer exactly as if each were the first: as the twin
 * (which keeps no memo) and as EVALSHA (whose memo starts empty each call) answer.
 */
// FCALL (what the library keeps lives across calls) and EVALSHA (a fresh script each call).
const lib = functionsServerForFile();

const T0 = Date.UTC(2026, 2, 20);
const ZONES = ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata'].map((z) => tzRulesFor(z, T0).rules);
/** A few specs strings, so that calls repeat them; the third has a quota a zone may apply to. */
const SPECS = ['gcra,3,60000,4,,;fixed_window,5,60000,,0,', 'sliding_window,4,60000,,,;token_bucket,2,1000,3,,', 'gcra,5,3600000,5,,;quota,6,,,3600000,day'];
let run = 0;

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    // Redis appends where the error was raised (a script's SHA1 or the library's function name).
    return { error: String((err as Error).message).replace(/^.*?(BADARG)/, '$1').replace(/ script: .*$/, '') };
  }
}

describe('multi_batch: the specs memo of a Functions library', () => {
  it('repeated specs with other costs, zones and out-of-range costs answer as a first call would (FCALL ≡ EVALSHA ≡ twin)', async () => {
    const call = fc.record({
      specs: fc.integer({ min: 0, max: SPECS.length - 1 }),
      zone: fc.option(fc.integer({ min: 0, max: ZONES.length - 1 }), { nil: undefined }),
      costs: fc.array(fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(1_000_000_001)), { minLength: 4, maxLength: 4 }),
      id: fc.integer({ min: 0, max: 2 }),
      advance: fc.integer({ min: 0, max: 90_000 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 2, maxLength: 12 }), async (calls) => {
        const tag = `memo${run++}`;
        const twin = new TwinClient();
        let now = T0;
        for (const c of calls) {
          now += c.advance;
          const specs = SPECS[c.specs]!;
          const quota = specs.includes('quota');
          // tz_rules only where the spec is a quota (else the script refuses it, alike on every path).
          const tzRules = c.zone !== undefined && quota ? `|${ZONES[c.zone]}` : undefined;
          const items = [0, 1].flatMap((d) => [0, 1].map((j) => ({ key: `{${tag}}:${c.specs}:${c.id + d}:${j}`, cost: c.costs[2 * d + j]! })));
          const args = { count: 2, specs, nowMs: now, ...(tzRules ? { tzRules } : {}), items };
          // The bindings validate in TS first; the raw call reaches the Lua check itself.
          const argv = ['2', specs, String(now), tzRules ?? '', ...items.flatMap((i) => [String(i.cost), ''])];
          const keys = items.map((i) => i.key);
          const viaFn = await outcome(lib.fn.fcall(`redlimit_multi_batch_v${b.multiBatchScript.version}`, keys.length, ...keys.map((k) => `fn${k}`), ...argv));
          const viaSha = await outcome(lib.sha.evalsha(b.multiBatchScript.sha1, keys.length, ...keys.map((k) => `sha${k}`), ...argv).catch(async (err) => {
            if (!String(err).includes('NOSCRIPT')) throw err;
            await lib.sha.script('LOAD', b.multiBatchScript.source);
            return lib.sha.evalsha(b.multiBatchScript.sha1, keys.length, ...keys.map((k) => `sha${k}`), ...argv);
          }));
          expect(viaFn).toEqual(viaSha);
          const onTwin = await outcome(b.multiBatch(twin, args));
          if ('ok' in (viaFn as object)) {
            const r = (viaFn as { ok: number[] }).ok;
            const t = (onTwin as { ok: b.MultiBatchResult }).ok;
            expect(t.items.flatMap((x) => [x.allowed, x.remaining, x.resetAfterMs, x.retryAfterMs])).toEqual(r.slice(1));
          } else {
            expect(onTwin).toHaveProperty('error');
            expect((viaFn as { error: string }).error).toMatch(/^BADARG redlimit multi_batch: cost\[\d\] must be between 0 and 1000000000/);
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('a spec refused once is refused again; a good call after it is decided', async () => {
    const call = (specs: string, cost: number) => lib.fn.fcall(`redlimit_multi_batch_v${b.multiBatchScript.version}`, 1, '{memo-bad}:a', '1', specs, '', '', String(cost), '');
    for (let i = 0; i < 2; i++) await expect(call('gcra,5,,,,', 1)).rejects.toThrow(/period_ms\[1\] is required for algo gcra/);
    for (let i = 0; i < 2; i++) await expect(call('gcra,5,1000,,,', 2_000_000_000)).rejects.toThrow(/cost\[1\] must be between 0 and 1000000000 for algo gcra/);
    expect(((await call('gcra,5,1000,,,', 1)) as number[]).slice(1)).toEqual([1, 4, 200, 0]);
    await expect(call('gcra,5,1000,,,', 2_000_000_000)).rejects.toThrow(/cost\[1\] must be between 0 and 1000000000 for algo gcra/);
  });
});
