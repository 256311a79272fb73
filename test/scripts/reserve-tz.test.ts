import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { tzRulesFor } from '../../src/client/time-zone.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * reserve v3 / settle v3 on a real Redis with a quota in an IANA time zone (tz_rules), on a caller
 * clock (now_ms): Europe/Berlin's 23-hour day (2026-03-29, clocks spring forward), a day quota of
 * 100 beside an RPM gcra. The record keeps the quota's period as reserved; settle gives back to and
 * charges that period only, and leaves a later period alone.
 */
const HOUR = 3_600_000;
/** Local midnights of Berlin's 23-hour day. */
const START = Date.UTC(2026, 2, 28, 23);
const END = Date.UTC(2026, 2, 29, 22);
const RULES = tzRulesFor('Europe/Berlin', START).rules;
/** Berlin's standard offset: a fixed-offset quota at it ends the day an hour later (23:00 UTC). */
const CET = 3_600_000;

let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('rsvtz');
});
afterAll(() => redis.quit());

function subject() {
  const tag = `s${n++}`;
  let r = 0;
  return { rpm: `${prefix}{${tag}}:rpm`, day: `${prefix}{${tag}}:day`, record: () => `${prefix}{${tag}}:!rsv:${r++}` };
}
type S = ReturnType<typeof subject>;

const rpm = { algo: 'gcra' as const, limit: 60, periodMs: 60_000, burst: 10 };
const day = { algo: 'quota' as const, limit: 100, unit: 'day' as const, offsetMs: CET };

function reserve(s: S, record: string, estimate: number, nowMs: number, tzRules = `|${RULES}`) {
  return b.reserve(redis, { recordKey: record, ttlMs: 86_400_000, nowMs, tzRules, limits: [{ key: s.rpm, ...rpm, cost: 1 }, { key: s.day, ...day, cost: estimate }] });
}

function settle(s: S, record: string, mode: 'commit' | 'cancel', actual: number, nowMs: number, overage?: 'debt' | 'cap') {
  return b.settle(redis, { recordKey: record, mode, overage, nowMs, actuals: [{ key: s.rpm }, { key: s.day, actual }] });
}

/** What the day quota holds at `nowMs` in Berlin (quota_peek v2 with the rules). */
async function dayLeft(s: S, nowMs: number) {
  const p = await b.quotaPeek(redis, { key: s.day, limit: 100, unit: 'day', utcOffsetMs: CET, cost: 0, nowMs, tzRules: RULES });
  return { remaining: p.remaining, resetAfterMs: p.resetAfterMs };
}

describe('reserve v3 / settle v3: a quota in a time zone', () => {
  it('reserves in the zone and records the period [local midnight, next local midnight) of the 23-hour day', async () => {
    const s = subject();
    const r = s.record();
    const at = START + HOUR;
    const res = await reserve(s, r, 40, at);
    expect(res).toMatchObject({ allowed: true, limits: [{ remaining: 9 }, { remaining: 60, resetAfterMs: END - at }] });
    const stored = (await redis.get(r))!;
    expect(stored.startsWith(`r:${at + 86_400_000}:|${START},${END}#gcra,60,60000,10,0,,1;quota,100,,100,${CET},day,40\n`)).toBe(true);
    // The same reservation without the zone would have ended the day an hour later.
    const fixed = s.record();
    await b.reserve(redis, { recordKey: fixed, ttlMs: 60_000, nowMs: at, limits: [{ key: `${s.day}:fixed`, ...day, cost: 1 }] });
    expect((await redis.get(fixed))!).toContain(`:${START},${END + HOUR}#quota,`);
  });

  it('commit and cancel before local midnight settle the reserved day, across the 23-hour day', async () => {
    const s = subject();
    const r1 = s.record();
    const r2 = s.record();
    expect((await reserve(s, r1, 40, START + HOUR)).allowed).toBe(true);
    expect((await reserve(s, r2, 30, START + 2 * HOUR)).allowed).toBe(true);
    expect(await dayLeft(s, START + 3 * HOUR)).toEqual({ remaining: 30, resetAfterMs: END - START - 3 * HOUR });
    // r1 used 70 of its 40: 30 more charged; r2 cancelled a ms before local midnight: 30 given back.
    expect(await settle(s, r1, 'commit', 70, END - HOUR)).toMatchObject({ status: 1, actuals: [{ remaining: -1 }, { remaining: 0, resetAfterMs: HOUR }] });
    expect(await settle(s, r2, 'cancel', 0, END - 1)).toMatchObject({ status: 2, actuals: [{ remaining: 10 }, { remaining: 30, resetAfterMs: 1 }] });
    expect(await dayLeft(s, END - 1)).toEqual({ remaining: 30, resetAfterMs: 1 });
    // Local midnight after 23 hours: a fresh day.
    expect(await dayLeft(s, END)).toEqual({ remaining: 100, resetAfterMs: 0 });
  });

  it('a settle after local midnight gives nothing to the new day and charges nothing on it', async () => {
    const s = subject();
    const late = s.record();
    const over = s.record();
    // 23:30 and 23:40 local (CEST): 50 and 20 reserved in the old day.
    expect((await reserve(s, late, 50, END - 30 * 60_000)).allowed).toBe(true);
    expect((await reserve(s, over, 20, END - 20 * 60_000)).allowed).toBe(true);
    // The new day: 5 used at 00:15.
    expect((await b.quota(redis, { key: s.day, limit: 100, unit: 'day', utcOffsetMs: CET, cost: 5, nowMs: END + 15 * 60_000, tzRules: RULES })).remaining).toBe(95);
    // 00:30: the cancel gives nothing back (the old day is over); the commit above its estimate charges nothing.
    // (The RPM's 1 is given back: a gcra has no periods.)
    expect(await settle(s, late, 'cancel', 0, END + 30 * 60_000)).toEqual({ status: 2, actuals: [{ remaining: 10, resetAfterMs: 0 }, { remaining: -1, resetAfterMs: -1 }] });
    expect(await settle(s, over, 'commit', 90, END + 30 * 60_000)).toEqual({ status: 1, actuals: [{ remaining: -1, resetAfterMs: -1 }, { remaining: -1, resetAfterMs: -1 }] });
    expect(await dayLeft(s, END + 30 * 60_000)).toEqual({ remaining: 95, resetAfterMs: END + 24 * HOUR - (END + 30 * 60_000) });
    // Settled once each: tombstones.
    expect((await settle(s, late, 'cancel', 0, END + HOUR)).status).toBe(3);
  });

  it('a settle between the zone’s midnight and the fixed offset’s (22:00–23:00 UTC) is in the new day', async () => {
    const s = subject();
    const r = s.record();
    expect((await reserve(s, r, 40, END - HOUR)).allowed).toBe(true);
    // 22:30 UTC is 00:30 local: past the reserved day (the fixed offset's day would still run).
    expect((await settle(s, r, 'cancel', 0, END + 30 * 60_000)).actuals[1]).toEqual({ remaining: -1, resetAfterMs: -1 });
    expect(await dayLeft(s, END + 30 * 60_000)).toEqual({ remaining: 100, resetAfterMs: 0 });
  });

  it('a fixed-offset quota is settled the same way: its reserved period only (settle v3)', async () => {
    const s = subject();
    const r = s.record();
    const dayEnd = Date.UTC(2026, 0, 15, 23); // local midnight at +1h
    expect((await reserve(s, r, 40, dayEnd - HOUR, '')).allowed).toBe(true);
    await b.quota(redis, { key: s.day, limit: 100, unit: 'day', utcOffsetMs: CET, cost: 5, nowMs: dayEnd + 1 });
    expect((await settle(s, r, 'cancel', 0, dayEnd + 2)).actuals[1]).toEqual({ remaining: -1, resetAfterMs: -1 });
    expect((await b.quotaPeek(redis, { key: s.day, limit: 100, unit: 'day', utcOffsetMs: CET, cost: 0, nowMs: dayEnd + 3 })).remaining).toBe(95);
  });

  it('a record of reserve v2 (no periods) is settled as settle v2 did: the period of settle’s now at offset_ms', async () => {
    const s = subject();
    const r = s.record();
    const at = Date.UTC(2026, 0, 15, 12);
    await b.quota(redis, { key: s.day, limit: 100, unit: 'day', utcOffsetMs: CET, cost: 40, nowMs: at });
    const keys = `${Buffer.byteLength(s.day)}:${s.day}`;
    await redis.set(r, `r:${at + 60_000}:quota,100,,100,${CET},day,40\n${keys}`, 'PX', 120_000);
    expect(await b.settle(redis, { recordKey: r, mode: 'commit', nowMs: at + 1, actuals: [{ key: s.day, actual: 10 }] })).toMatchObject({ status: 1, actuals: [{ remaining: 90 }] });
  });

  it('a replay in the next period is the same reservation (the period is not its identity)', async () => {
    const s = subject();
    const r = s.record();
    expect((await reserve(s, r, 40, END - 1)).allowed).toBe(true);
    const again = await reserve(s, r, 40, END + 1);
    expect(again).toMatchObject({ allowed: true, limits: [{}, { remaining: 100 }] });
    expect(await dayLeft(s, END + 1)).toEqual({ remaining: 100, resetAfterMs: 0 });
  });

  it('bad tz_rules are refused (BADARG) before anything is read or written', async () => {
    const s = subject();
    const cases: [string, RegExp][] = [
      ['garbage', /^BADARG redlimit reserve: tz_rules has 1 entries for 2 limit\(s\)/],
      [`${RULES}|`, /^BADARG redlimit reserve: tz_rules\[1\] is for algo quota only, limit 1 is gcra/],
      ['|abc', /^BADARG redlimit reserve: tz_rules entry 1 needs an integer offset in ms/],
      ['|3600000;5:7200000;4:3600000', /^BADARG redlimit reserve: tz_rules transition times must increase/],
      [`|${'3600000;'.repeat(130)}3600000`, /^BADARG redlimit reserve: tz_rules\[2\] must be at most 1024 bytes/],
      [`|${RULES}|`, /^BADARG redlimit reserve: tz_rules has 3 entries for 2 limit\(s\)/],
    ];
    for (const [tz, message] of cases) {
      const r = s.record();
      // Lua: sent raw, past the binding's checks.
      const argv = ['60000', String(START + HOUR), tz, 'gcra', '60', '60000', '1', '10', '', '', '', 'quota', '100', '', '40', '', String(CET), 'day', ''];
      await expect(redis.eval(b.reserveScript.source, 3, r, s.rpm, s.day, ...argv)).rejects.toThrow(message);
      expect(await redis.exists(r, s.rpm, s.day)).toBe(0);
    }
  });
});
