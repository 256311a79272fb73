import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { compileScripts } from '../../codegen/generate.js';
import { runScript, type ScriptDef } from '../../src/runtime/index.js';
import { tzRulesFor } from '../../src/client/time-zone.js';
import { calendarPeriod, parseTzRules } from '../../src/twin/calendar.js';
import { PERIOD_PROBE } from '../support/tz-probe.js';
import { ioredis } from '../support/redis.js';
import { tempScriptsRoot } from '../support/temp-scripts.js';

/**
 * lib/calendar.lua ≡ src/twin/calendar.ts for zones given by rules: random instants in random
 * IANA zones (and random made-up rule strings), the same period from both, and the period
 * always contains the instant.
 */
const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'America/Santiago', 'Asia/Kolkata', 'Pacific/Chatham', 'America/St_Johns', 'Europe/London', 'UTC'];
const UNITS = ['day', 'week', 'month'] as const;
const YEAR_MS = 365 * 86_400_000;
const BASE = Date.UTC(2026, 0, 1);

let redis: Redis;
let probe: ScriptDef;
beforeAll(() => {
  redis = ioredis();
  probe = compileScripts(tempScriptsRoot({ 'scripts-lua/tz_period_probe.lua': PERIOD_PROBE })).find((s) => s.def.name === 'tz_period_probe')!.def;
});
afterAll(() => redis.quit());

const twinFail = (m: string): never => {
  throw new Error(m);
};

describe('calendar periods with tz_rules: Lua ≡ twin', () => {
  it('random IANA zones, units and instants inside the rule window', async () => {
    const rulesByZone = new Map(ZONES.map((z) => [z, tzRulesFor(z, BASE + YEAR_MS / 2)]));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ZONES), fc.constantFrom(...UNITS), fc.integer({ min: 0, max: 439 * 86_400_000 }), async (zone, unit, into) => {
        const w = rulesByZone.get(zone)!;
        const now = w.fromMs + into;
        const lua = (await runScript(redis, probe, [], [unit, w.rules, String(now)])) as number[];
        const twin = calendarPeriod(now, unit, parseTzRules(w.rules, twinFail));
        expect(lua).toEqual(twin);
        expect(twin[0]).toBeLessThanOrEqual(now);
        expect(now).toBeLessThan(twin[1]);
      }),
      { numRuns: 150 },
    );
  });

  it('random rule strings (offsets and transitions anywhere, midnight included)', async () => {
    const rules = fc
      .record({
        off0: fc.integer({ min: -14 * 4, max: 14 * 4 }).map((q) => q * 900_000),
        steps: fc.array(fc.record({ gap: fc.integer({ min: 1, max: 90 * 86_400 }).map((s) => s * 1000), off: fc.integer({ min: -14 * 4, max: 14 * 4 }).map((q) => q * 900_000) }), { maxLength: 8 }),
      })
      .map(({ off0, steps }) => {
        let t = BASE;
        return [String(off0), ...steps.map((s) => `${(t += s.gap)}:${s.off}`)].join(';');
      });
    await fc.assert(
      fc.asyncProperty(rules, fc.constantFrom(...UNITS), fc.integer({ min: -40 * 86_400_000, max: 400 * 86_400_000 }), async (raw, unit, into) => {
        const now = BASE + into;
        const lua = (await runScript(redis, probe, [], [unit, raw, String(now)])) as number[];
        const twin = calendarPeriod(now, unit, parseTzRules(raw, twinFail));
        expect(lua).toEqual(twin);
        expect(twin[0]).toBeLessThanOrEqual(now);
        expect(now).toBeLessThan(twin[1]);
      }),
      { numRuns: 200 },
    );
  });

  it('a fixed offset is unchanged: the same period as rules with that one offset', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: -56, max: 56 }).map((q) => q * 900_000), fc.constantFrom(...UNITS), fc.integer({ min: 0, max: 2 ** 45 }), async (off, unit, now) => {
        const lua = (await runScript(redis, probe, [], [unit, String(off), String(now)])) as number[];
        expect(lua).toEqual(calendarPeriod(now, unit, off));
      }),
      { numRuns: 100 },
    );
  });
});
