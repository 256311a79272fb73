import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { runScript } from '../../src/runtime/index.js';
import { tzRulesFor } from '../../src/client/time-zone.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * tz_rules on every path a quota takes (real redis-server, clock overridden): quota v3,
 * quota_peek v2, quota_refund v2, batch v4, multi / multi_peek v3 and multi_batch v4 keep the
 * local calendar day of an IANA zone across a DST transition; bad rules are refused with BADARG
 * before anything is written; the previous ARGV layouts are refused.
 */
const H = 3_600_000;
let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('tzpath');
});
afterAll(() => redis.quit());

const key = (name: string) => `${prefix}{t${n}}:${name}`;
// 29 March 2026 00:00 CET: Berlin springs forward at 02:00, the day lasts 23 hours.
const dayStart = Date.UTC(2026, 2, 28, 23);
const berlin = tzRulesFor('Europe/Berlin', dayStart).rules;

async function badarg(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: Error) => e,
  );
  expect(err).toMatchObject({ redisCode: 'BADARG' });
  return err!.message;
}

describe('a quota in Europe/Berlin through every path: the 23-hour day of 29 March 2026', () => {
  it('quota, quota_peek, quota_refund', async () => {
    n++;
    const q = { key: key('q'), limit: 10, unit: 'day' as const, tzRules: berlin };
    expect(await b.quota(redis, { ...q, cost: 4, nowMs: dayStart + H })).toMatchObject({ allowed: true, remaining: 6, resetAfterMs: 22 * H });
    expect(await b.quotaPeek(redis, { ...q, cost: 6, nowMs: dayStart + 22 * H })).toEqual({ allowed: true, remaining: 6, resetAfterMs: H, retryAfterMs: 0 });
    expect(await b.quotaRefund(redis, { ...q, cost: 1, nowMs: dayStart + 22 * H })).toEqual({ remaining: 7, resetAfterMs: H });
    // 30 March 00:00 CEST is 23 hours after the day began: a new period
    expect(await b.quotaPeek(redis, { ...q, cost: 10, nowMs: dayStart + 23 * H })).toEqual({ allowed: true, remaining: 10, resetAfterMs: 0, retryAfterMs: 0 });
    // at the fixed offset (+1h, no tz_rules) the same day began at the same instant but lasts 24
    // hours: at dayStart + 23h it still holds what was used
    expect(await b.quotaPeek(redis, { key: key('q'), limit: 10, unit: 'day', utcOffsetMs: H, cost: 0, nowMs: dayStart + 23 * H })).toEqual({ allowed: true, remaining: 7, resetAfterMs: H, retryAfterMs: 0 });
  });

  it('an empty tz_rules is the fixed offset (the earlier versions exactly)', async () => {
    n++;
    const a = await b.quota(redis, { key: key('a'), limit: 10, unit: 'day', utcOffsetMs: H, cost: 3, nowMs: dayStart + H, tzRules: '' });
    const c = await b.quota(redis, { key: key('c'), limit: 10, unit: 'day', utcOffsetMs: H, cost: 3, nowMs: dayStart + H });
    expect(a).toEqual(c);
    expect(a.resetAfterMs).toBe(23 * H);
  });

  it('batch', async () => {
    n++;
    const r = await b.batch(redis, {
      algo: 'quota',
      limit: 10,
      unit: 'day',
      tzRules: berlin,
      nowMs: dayStart + 22 * H,
      decisions: [{ key: key('q'), cost: 6 }, { key: key('q'), cost: 5 }, { key: key('q'), cost: 4 }],
    });
    expect(r.decisions).toEqual([
      { allowed: 1, remaining: 4, resetAfterMs: H, retryAfterMs: 0 },
      { allowed: 0, remaining: 4, resetAfterMs: H, retryAfterMs: H },
      { allowed: 1, remaining: 0, resetAfterMs: H, retryAfterMs: 0 },
    ]);
  });

  it('multi and multi_peek: one rule entry per limit, empty for the others', async () => {
    n++;
    const limits = [
      { key: key('g'), algo: 'gcra' as const, limit: 5, periodMs: 1_000, cost: 1 },
      { key: key('q'), algo: 'quota' as const, limit: 10, unit: 'day' as const, cost: 3 },
      { key: key('f'), algo: 'quota' as const, limit: 10, unit: 'day' as const, offsetMs: H, cost: 3 },
    ];
    const tzRules = `|${berlin}|`;
    const peek = await b.multiPeek(redis, { nowMs: dayStart + H, tzRules, limits });
    expect(peek.limits.map((l) => l.resetAfterMs)).toEqual([0, 0, 0]);
    const r = await b.multi(redis, { nowMs: dayStart + H, tzRules, limits });
    expect(r.allowed).toBe(true);
    // the zoned quota ends at local midnight after 22 hours; the fixed +1h one after 23
    expect(r.limits.map((l) => [l.remaining, l.resetAfterMs])).toEqual([
      [4, 200],
      [7, 22 * H],
      [7, 23 * H],
    ]);
  });

  it('multi_batch: one rule entry per spec', async () => {
    n++;
    const r = await b.multiBatch(redis, {
      count: 2,
      specs: 'gcra,5,1000,,,;quota,10,,,0,day',
      tzRules: `|${berlin}`,
      nowMs: dayStart + 22 * H,
      items: [
        { key: key('g'), cost: 1 },
        { key: key('q'), cost: 8 },
        { key: key('g'), cost: 1 },
        { key: key('q'), cost: 8 },
      ],
    });
    expect(r.items[1]).toEqual({ allowed: 1, remaining: 2, resetAfterMs: H, retryAfterMs: 0 });
    expect(r.items[3]).toEqual({ allowed: 0, remaining: 2, resetAfterMs: H, retryAfterMs: H });
    expect(r.items[2]).toMatchObject({ allowed: 1 }); // the gcra of the denied decision admitted alone, nothing taken
  });
});

describe('bad tz_rules: BADARG, nothing written', () => {
  const cases: [string, (nowMs: number) => Promise<unknown>, RegExp][] = [
    ['batch: rules for a gcra limit', (nowMs) => b.batch(redis, { algo: 'gcra', limit: 5, periodMs: 1_000, tzRules: berlin, nowMs, decisions: [{ key: key('g') }] }), /tz_rules is for algo quota only, got algo gcra/],
    ['batch: malformed rules', (nowMs) => b.batch(redis, { algo: 'quota', limit: 5, unit: 'day', tzRules: '3600000;later:0', nowMs, decisions: [{ key: key('q') }, { key: key('q') }] }), /tz_rules entry 2 must be/],
    [
      'multi: fewer entries than limits',
      (nowMs) => b.multi(redis, { nowMs, tzRules: berlin, limits: [{ key: key('g'), algo: 'gcra', limit: 5, periodMs: 1_000 }, { key: key('q'), algo: 'quota', limit: 5, unit: 'day' }] }),
      /tz_rules has 1 entries for 2 limit\(s\)/,
    ],
    [
      'multi: rules for a limit that is not quota',
      (nowMs) => b.multi(redis, { nowMs, tzRules: `${berlin}|${berlin}`, limits: [{ key: key('g'), algo: 'gcra', limit: 5, periodMs: 1_000 }, { key: key('q'), algo: 'quota', limit: 5, unit: 'day' }] }),
      /tz_rules\[1\] is for algo quota only, limit 1 is gcra/,
    ],
    [
      'multi: an entry over 1024 bytes',
      (nowMs) => b.multi(redis, { nowMs, tzRules: `|${'0;'.repeat(600)}0`, limits: [{ key: key('g'), algo: 'gcra', limit: 5, periodMs: 1_000 }, { key: key('q'), algo: 'quota', limit: 5, unit: 'day' }] }),
      /tz_rules\[2\] must be at most 1024 bytes, got 1201/,
    ],
    [
      'multi: transitions out of order in the second limit',
      (nowMs) => b.multi(redis, { nowMs, tzRules: `|3600000;2000:0;1000:3600000`, limits: [{ key: key('g'), algo: 'gcra', limit: 5, periodMs: 1_000 }, { key: key('q'), algo: 'quota', limit: 5, unit: 'day' }] }),
      /tz_rules transition times must increase/,
    ],
    [
      'multi_batch: rules for a gcra spec',
      (nowMs) => b.multiBatch(redis, { count: 2, specs: 'quota,5,,,0,day;gcra,5,1000,,,', tzRules: `|${berlin}`, nowMs, items: [{ key: key('q') }, { key: key('g') }] }),
      /tz_rules\[2\] is for algo quota only, limit 2 is gcra/,
    ],
    [
      'multi_batch: one entry per spec, not per item',
      (nowMs) => b.multiBatch(redis, { count: 1, specs: 'quota,5,,,0,day', tzRules: `${berlin}|${berlin}`, nowMs, items: [{ key: key('q') }, { key: key('q') }] }),
      /tz_rules has 2 entries for 1 limit\(s\)/,
    ],
  ];
  it.each(cases)('%s', async (_, call, message) => {
    n++;
    expect(await badarg(call(dayStart + H))).toMatch(message);
    expect(await redis.exists(key('g'), key('q'))).toBe(0);
  });

  it('a refused call leaves earlier state as it was', async () => {
    n++;
    await b.quota(redis, { key: key('q'), limit: 5, unit: 'day', tzRules: berlin, cost: 2, nowMs: dayStart + H });
    const before = await redis.get(key('q'));
    await badarg(b.multi(redis, { nowMs: dayStart + 2 * H, tzRules: `${berlin}|x`, limits: [{ key: key('q'), algo: 'quota', limit: 5, unit: 'day' }, { key: key('r'), algo: 'quota', limit: 5, unit: 'day' }] }));
    await badarg(b.batch(redis, { algo: 'quota', limit: 5, unit: 'day', tzRules: `${berlin};`, nowMs: dayStart + 2 * H, decisions: [{ key: key('q') }] }));
    expect(await redis.get(key('q'))).toBe(before);
    expect(await redis.exists(key('r'))).toBe(0);
  });
});

describe('the previous ARGV layouts are refused (argument count)', () => {
  it('batch v3, multi v2, multi_peek v2, multi_batch v3', async () => {
    n++;
    const now = String(dayStart);
    // batch v3: algo, limit, period_ms, burst, offset_ms, unit, now_ms, then cost, share_ppm per key
    expect(await badarg(runScript(redis, b.batchScript, [key('g')], ['gcra', '5', '1000', '', '0', '', now, '1', '']))).toMatch(/expects 10 argument\(s\) for 1 key\(s\) \(8 fixed \+ 2 per key\), got 9/);
    // multi v2: now_ms, then 9 fields per limit
    const group = ['gcra', '5', '1000', '1', '', '0', '', '', ''];
    expect(await badarg(runScript(redis, b.multiScript, [key('g')], [now, ...group]))).toMatch(/expects 11 argument\(s\)/);
    expect(await badarg(runScript(redis, b.multiPeekScript, [key('g')], [now, ...group]))).toMatch(/expects 11 argument\(s\)/);
    // multi_batch v3: count, specs, now_ms, then cost, share_ppm per key
    expect(await badarg(runScript(redis, b.multiBatchScript, [key('g')], ['1', 'gcra,5,1000,,,', now, '1', '']))).toMatch(/expects 6 argument\(s\)/);
    expect(await redis.exists(key('g'))).toBe(0);
  });
});
