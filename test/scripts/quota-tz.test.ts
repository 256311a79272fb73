import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { compileScripts } from '../../codegen/generate.js';
import { runScript, type ScriptDef } from '../../src/runtime/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { checkTzRules, tzRulesFor } from '../../src/client/time-zone.js';
import { ioredis, uniquePrefix } from '../support/redis.js';
import { tempScriptsRoot } from '../support/temp-scripts.js';
import { PERIOD_PROBE } from '../support/tz-probe.js';

/**
 * Calendar quotas in an IANA time zone, on a real redis-server with the clock overridden: the
 * rules come from src/client/time-zone.ts, lib/calendar.lua picks the period that contains the
 * server's now. Probes run the shipped library (rl_tz_rules, rl_calendar_period, rl_quota_eval)
 * exactly as quota.lua will once it takes tz_rules.
 */
const QUOTA_PROBE = [
  '--- @script quota_tz_probe',
  '--- @version 1',
  '--- @summary Test probe: quota.lua with tz_rules.',
  '--- @key state The quota state.',
  '--- @arg limit int required 1..1000000000000000 Units per period.',
  '--- @arg unit enum:day|week|month required The calendar period.',
  '--- @arg tz_rules string required maxlen=1024 The zone\'s rules.',
  '--- @arg cost int required 0..1000000000000000 Units.',
  '--- @arg now_ms int required 0..140737488355328 The instant.',
  '--- @return allowed bool Admitted.',
  '--- @return remaining int Left.',
  '--- @return reset_after_ms int Until full.',
  '--- @return retry_after_ms int Until admitted.',
  '--- @include "lib/algo_quota"',
  '--- @include "lib/clock"',
  '--- @args',
  "local allowed, remaining, reset, retry, writes = rl_quota_eval(KEYS[1], limit, unit, rl_tz_rules('quota_tz_probe', tz_rules), cost, now_ms, true, 0)",
  'if allowed == 1 then rl_apply(writes) end',
  'return rl_reply({ allowed, remaining, reset, retry })',
].join('\n');

const H = 3_600_000;
let redis: Redis;
let prefix: string;
let periodProbe: ScriptDef;
let quotaProbe: ScriptDef;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('qtz');
  const compiled = compileScripts(tempScriptsRoot({ 'scripts-lua/tz_period_probe.lua': PERIOD_PROBE, 'scripts-lua/quota_tz_probe.lua': QUOTA_PROBE }));
  periodProbe = compiled.find((s) => s.def.name === 'tz_period_probe')!.def;
  quotaProbe = compiled.find((s) => s.def.name === 'quota_tz_probe')!.def;
});
afterAll(() => redis.quit());

async function period(unit: string, rules: string, nowMs: number): Promise<[number, number]> {
  return (await runScript(redis, periodProbe, [], [unit, rules, String(nowMs)])) as [number, number];
}
/** The local wall time of an instant in a zone, "YYYY-MM-DD HH:MM". */
function wall(zone: string, t: number): string {
  return new Intl.DateTimeFormat('sv-SE', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(t);
}

describe('calendar periods in an IANA zone (Lua, server clock overridden)', () => {
  const cases = [
    // zone, an instant inside the transition day, the day's length in hours
    { zone: 'Europe/Berlin', at: Date.UTC(2026, 2, 29, 12), hours: 23, start: '2026-03-29 00:00' }, // spring forward
    { zone: 'Europe/Berlin', at: Date.UTC(2026, 9, 25, 12), hours: 25, start: '2026-10-25 00:00' }, // fall back
    { zone: 'America/New_York', at: Date.UTC(2026, 2, 8, 17), hours: 23, start: '2026-03-08 00:00' },
    { zone: 'America/New_York', at: Date.UTC(2026, 10, 1, 17), hours: 25, start: '2026-11-01 00:00' },
  ];
  it.each(cases)('$zone: the day of $start lasts $hours hours, from local midnight to local midnight', async ({ zone, at, hours, start }) => {
    const { rules } = tzRulesFor(zone, at);
    const [s, e] = await period('day', rules, at);
    expect((e - s) / H).toBe(hours);
    expect(wall(zone, s)).toBe(start);
    expect(wall(zone, e).slice(11)).toBe('00:00');
    // the instants on either side of each boundary fall in the neighbouring periods
    expect(await period('day', rules, s - 1)).toEqual([expect.any(Number), s]);
    expect((await period('day', rules, e))[0]).toBe(e);
    expect(await period('day', rules, e - 1)).toEqual([s, e]);
  });

  it('weeks start on Monday at local midnight and span the transition (167 / 169 hours)', async () => {
    const { rules } = tzRulesFor('Europe/Berlin', Date.UTC(2026, 2, 29));
    const [s, e] = await period('week', rules, Date.UTC(2026, 2, 27, 12));
    expect(wall('Europe/Berlin', s)).toBe('2026-03-23 00:00');
    expect(new Date(s + 2 * H).getUTCDay()).toBe(1);
    expect((e - s) / H).toBe(167);
    const [s2, e2] = await period('week', rules, Date.UTC(2026, 9, 21));
    expect(wall('Europe/Berlin', s2)).toBe('2026-10-19 00:00');
    expect((e2 - s2) / H).toBe(169);
  });

  it('months are calendar months at local midnight, ends of month and of year included', async () => {
    const zone = 'America/New_York';
    const { rules } = tzRulesFor(zone, Date.UTC(2026, 1, 1));
    const [s, e] = await period('month', rules, Date.UTC(2026, 2, 31, 12));
    expect([wall(zone, s), wall(zone, e)]).toEqual(['2026-03-01 00:00', '2026-04-01 00:00']);
    expect((e - s) / H).toBe(31 * 24 - 1);
    // 23:30 local on 28 February 2026 is still February (04:30 UTC on 1 March)
    const [fs, fe] = await period('month', rules, Date.UTC(2026, 2, 1, 4, 30));
    expect([wall(zone, fs), wall(zone, fe)]).toEqual(['2026-02-01 00:00', '2026-03-01 00:00']);
    const [ds, de] = await period('month', tzRulesFor(zone, Date.UTC(2026, 11, 1)).rules, Date.UTC(2027, 0, 1, 4, 59));
    expect([wall(zone, ds), wall(zone, de)]).toEqual(['2026-12-01 00:00', '2027-01-01 00:00']);
  });

  it('a transition at midnight: the day starts when the clocks do (a gap) or the first time (an overlap)', async () => {
    // A made-up zone: +2h, then at 2026-04-01 00:00 local (+2h) clocks jump to 01:00 (+3h)
    const jump = Date.UTC(2026, 2, 31, 22);
    const rules = `7200000;${jump}:10800000;${jump + 30 * 24 * H}:7200000`;
    const [s, e] = await period('day', rules, jump + H);
    expect([s, e - s]).toEqual([jump, 23 * H]);
  });

  it('clocks falling back over midnight: the recurring local hour belongs to the day that began', async () => {
    // +2h, +3h from 1 April; at 1 May 00:30 (+3h) clocks go back to 30 April 23:30 (+2h)
    const jump = Date.UTC(2026, 2, 31, 22);
    const back = Date.UTC(2026, 3, 30, 21, 30);
    const rules = `7200000;${jump}:10800000;${back}:7200000`;
    const may1 = Date.UTC(2026, 3, 30, 21); // 1 May 00:00 at +3h
    expect(await period('day', rules, may1 - 1)).toEqual([may1 - 24 * H, may1]);
    expect(await period('day', rules, back - 1)).toEqual([may1, may1 + 25 * H]);
    expect(await period('day', rules, back + 15 * 60_000)).toEqual([may1, may1 + 25 * H]); // 30 April 23:45 again
  });
});

describe('a quota in an IANA zone takes and resets on the local day (Lua)', () => {
  it('Berlin, spring forward: the 23-hour day holds the budget, the key expires at local midnight', async () => {
    const zone = 'Europe/Berlin';
    const dayStart = Date.UTC(2026, 2, 28, 23); // 29 March 00:00 CET
    const { rules } = tzRulesFor(zone, dayStart);
    const key = `${prefix}:berlin`;
    const call = (cost: number, nowMs: number) => runScript(redis, quotaProbe, [key], ['100', 'day', rules, String(cost), String(nowMs)]);
    expect(await call(60, dayStart + H)).toEqual([1, 40, 22 * H, 0]);
    expect(await call(50, dayStart + 10 * H)).toEqual([0, 40, 13 * H, 13 * H]);
    expect(await call(40, dayStart + 23 * H - 1)).toEqual([1, 0, 1, 0]);
    expect(await call(100, dayStart + 23 * H)).toEqual([1, 0, 24 * H, 0]); // 30 March, a 24-hour day
  });

  it('New York, fall back: the 25-hour day is one period', async () => {
    const dayStart = Date.UTC(2026, 10, 1, 4); // 1 November 00:00 EDT
    const { rules } = tzRulesFor('America/New_York', dayStart);
    const key = `${prefix}:ny`;
    const call = (cost: number, nowMs: number) => runScript(redis, quotaProbe, [key], ['10', 'day', rules, String(cost), String(nowMs)]);
    expect(await call(10, dayStart)).toEqual([1, 0, 25 * H, 0]);
    expect(await call(1, dayStart + 24 * H)).toEqual([0, 0, H, H]); // 23:00 EST, still 1 November
    expect(await call(1, dayStart + 25 * H)).toEqual([1, 9, 24 * H, 0]);
  });
});

describe('bad rule strings', () => {
  const bad = [
    'x',
    '3600000;',
    '3600000;1000',
    '3600000;2000:7200000;1000:3600000',
    '3600000;2000:7200000;2000:3600000',
    '99999999',
    '3600000;1e3:7200000',
    '3600000;1000:7200000.5',
    '1;1234567890123456:2',
    ['0', ...Array.from({ length: 64 }, (_, i) => `${i + 1}:0`)].join(';'),
  ];
  it.each(bad)('"%s" is refused with BADARG by the script and InvalidArgumentError by the client, same words', async (rules) => {
    const err = await runScript(redis, periodProbe, [], ['day', rules, '0']).then(() => null, (e: Error) => e);
    expect(err).toMatchObject({ redisCode: 'BADARG' });
    let ts: unknown;
    try {
      checkTzRules(rules, 'tz_period_probe');
    } catch (e) {
      ts = e;
    }
    expect(ts).toBeInstanceOf(InvalidArgumentError);
    expect(err!.message).toContain(`BADARG redlimit tz_period_probe: ${(ts as InvalidArgumentError).detail}`);
    expect((ts as InvalidArgumentError).detail).toMatch(/^tz_rules /);
  });

  it('an unknown time zone name is an InvalidArgumentError', () => {
    expect(() => tzRulesFor('Mars/Olympus_Mons')).toThrow(InvalidArgumentError);
  });
});
