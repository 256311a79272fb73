import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRateLimiter, InvalidConfigError, type Decision, type RateLimiterOptions } from '../../src/index.js';
import { ioredis, UNHURRIED, uniquePrefix } from '../support/redis.js';

/**
 * Calendar quotas in an IANA time zone through createRateLimiter, on a real Redis: the limiter's
 * clock is moved across daylight saving time changes (sendClock: Redis decides at that time), and
 * a day's budget resets at local midnight — after 23 hours on the day clocks spring forward, 25
 * on the day they fall back. The same answers whichever way a decision travels: the quota's own
 * script, a coalesced batch, multi with another limit (and multi_batch), and the fallback twin.
 */
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

const HOUR = 3_600_000;
/** Local midnights around the 2026 changes (checked against Intl in the first test). */
const NY_SPRING = { zone: 'America/New_York', start: Date.UTC(2026, 2, 8, 5), end: Date.UTC(2026, 2, 9, 4), hours: 23 };
const NY_FALL = { zone: 'America/New_York', start: Date.UTC(2026, 10, 1, 4), end: Date.UTC(2026, 10, 2, 5), hours: 25 };
const BERLIN_SPRING = { zone: 'Europe/Berlin', start: Date.UTC(2026, 2, 28, 23), end: Date.UTC(2026, 2, 29, 22), hours: 23 };
const BERLIN_FALL = { zone: 'Europe/Berlin', start: Date.UTC(2026, 9, 24, 22), end: Date.UTC(2026, 9, 25, 23), hours: 25 };
type Day = typeof NY_SPRING;

type Path = 'single' | 'batch' | 'multi' | 'multi_batch' | 'twin';

/** A limiter deciding a day quota of 3 in `day.zone` the way `path` names, on a clock the test moves. */
function limiterFor(path: Path, day: Day, clock: { now: number }) {
  const quota = { name: 'daily', algo: 'quota' as const, limit: 3, unit: 'day' as const, timeZone: day.zone };
  // multi: a second limit that never denies (a week in the other zone, large).
  const other = { name: 'weekly', algo: 'quota' as const, limit: 1_000, unit: 'week' as const, timeZone: day.zone === 'Europe/Berlin' ? 'America/New_York' : 'Europe/Berlin' };
  const options: RateLimiterOptions = {
    ...UNHURRIED,
    prefix: uniquePrefix(`tz-${path}`),
    limits: path === 'multi' || path === 'multi_batch' ? [quota, other] : quota,
    clock: () => clock.now,
    sendClock: true,
    coalesce: path === 'batch' || path === 'multi_batch',
    denyCache: false,
  };
  const rl = createRateLimiter(path === 'twin' ? options : { ...options, redis });
  cleanup.push(() => rl.close());
  return rl;
}

/** The daily quota's part of a decision. */
const daily = (d: Decision) => {
  const x = d.limits.find((l) => l.name === 'daily')!;
  return { allowed: d.allowed, remaining: x.remaining, resetAfterMs: x.resetAfterMs, retryAfterMs: x.retryAfterMs };
};

/**
 * What each path answers across one day: 3 calls an hour after local midnight (coalesced paths
 * send them in one turn), a 4th denied until the next local midnight, a refund, and the budget
 * back at local midnight exactly — not a ms before.
 */
async function dayScenario(path: Path, day: Day) {
  const clock = { now: day.start + HOUR };
  const rl = limiterFor(path, day, clock);
  await rl.ready();
  const out: unknown[] = [];
  const coalesced = path === 'batch' || path === 'multi_batch';
  const first = coalesced ? await Promise.all([rl.limit('u'), rl.limit('u'), rl.limit('u'), rl.limit('u')]) : [await rl.limit('u'), await rl.limit('u'), await rl.limit('u'), await rl.limit('u')];
  out.push(first.map(daily));
  await rl.refund('u', { cost: { daily: 1 } });
  out.push(daily(await rl.peek('u')));
  out.push(daily(await rl.limit('u')));
  clock.now = day.end - 1;
  out.push(daily(await rl.limit('u')));
  clock.now = day.end;
  const next = coalesced ? await Promise.all([rl.limit('u'), rl.limit('u')]) : [await rl.limit('u'), await rl.limit('u')];
  out.push(next.map(daily));
  return out;
}

function expected(day: Day) {
  const left = day.end - (day.start + HOUR);
  return [
    [
      { allowed: true, remaining: 2, resetAfterMs: left, retryAfterMs: 0 },
      { allowed: true, remaining: 1, resetAfterMs: left, retryAfterMs: 0 },
      { allowed: true, remaining: 0, resetAfterMs: left, retryAfterMs: 0 },
      { allowed: false, remaining: 0, resetAfterMs: left, retryAfterMs: left },
    ],
    { allowed: true, remaining: 1, resetAfterMs: left, retryAfterMs: 0 },
    { allowed: true, remaining: 0, resetAfterMs: left, retryAfterMs: 0 },
    { allowed: false, remaining: 0, resetAfterMs: 1, retryAfterMs: 1 },
    [
      // The next day (24 hours: the change was the day before).
      { allowed: true, remaining: 2, resetAfterMs: 24 * HOUR, retryAfterMs: 0 },
      { allowed: true, remaining: 1, resetAfterMs: 24 * HOUR, retryAfterMs: 0 },
    ],
  ];
}

describe('quota in an IANA time zone, across daylight saving time', () => {
  it('the test days are what Intl says', () => {
    for (const day of [NY_SPRING, NY_FALL, BERLIN_SPRING, BERLIN_FALL]) {
      const local = (t: number) => new Intl.DateTimeFormat('en-US', { timeZone: day.zone, hourCycle: 'h23', hour: 'numeric', minute: 'numeric' }).format(t);
      expect([local(day.start), local(day.end)]).toEqual(['00:00', '00:00']);
      expect(day.end - day.start).toBe(day.hours * HOUR);
    }
  });

  for (const day of [NY_SPRING, NY_FALL, BERLIN_SPRING, BERLIN_FALL]) {
    it(`${day.zone}, a ${day.hours}-hour day: the budget resets at local midnight, the same on every path`, async () => {
      for (const path of ['single', 'batch', 'multi', 'multi_batch', 'twin'] as const) {
        expect({ path, answers: await dayScenario(path, day) }).toEqual({ path, answers: expected(day) });
      }
    });
  }

  it('keeps the key it had: the zone changes when a period starts, not where it is stored', async () => {
    const prefix = uniquePrefix('tz-key');
    const clock = { now: NY_SPRING.start + HOUR };
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix, limits: { name: 'daily', algo: 'quota', limit: 3, unit: 'day', timeZone: 'America/New_York' }, clock: () => clock.now, sendClock: true });
    cleanup.push(() => rl.close());
    await rl.limit('acme');
    expect(await redis.exists(`${prefix}:{acme}:daily`)).toBe(1);
  });

  it('a long-running limiter builds its rules again once its clock passes refreshAtMs', async () => {
    // Built on 2026-01-01: its rules cover 400 days ahead, so not the spring of 2027.
    const clock = { now: Date.UTC(2026, 0, 1) };
    const limits = { name: 'daily', algo: 'quota' as const, limit: 1, unit: 'day' as const, timeZone: 'America/New_York' };
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: uniquePrefix('tz-refresh'), limits, clock: () => clock.now, sendClock: true, denyCache: false });
    const twin = createRateLimiter({ ...UNHURRIED, limits, clock: () => clock.now });
    cleanup.push(() => rl.close(), () => twin.close());
    // 2027-03-14, the day New York springs forward: 23 hours from local midnight to local midnight.
    const start = Date.UTC(2027, 2, 14, 5);
    clock.now = start + HOUR;
    for (const l of [rl, twin]) {
      expect(await l.limit('u')).toMatchObject({ allowed: true, resetAfterMs: 22 * HOUR });
      expect(await l.limit('u')).toMatchObject({ allowed: false, retryAfterMs: 22 * HOUR });
    }
    // Back in time (a test clock): the rules follow it too.
    clock.now = NY_FALL.start + HOUR;
    for (const l of [rl, twin]) expect(await l.limit('v')).toMatchObject({ allowed: true, resetAfterMs: 24 * HOUR });
  });

  it('refuses a zone Intl does not know, or a zone with an offset, at construction', () => {
    const make = (extra: object) => () => createRateLimiter({ limits: { name: 'daily', algo: 'quota', limit: 3, unit: 'day', ...extra } as never });
    expect(make({ timeZone: 'Mars/Olympus_Mons' })).toThrow(InvalidConfigError);
    expect(make({ timeZone: 'Mars/Olympus_Mons' })).toThrow(/limit daily: timeZone must be an IANA time zone name/);
    expect(make({ timeZone: 'Europe/Berlin', utcOffsetMs: 3_600_000 })).toThrow(/give timeZone or utcOffsetMs, not both/);
    expect(make({ timeZone: '' })).toThrow(InvalidConfigError);
    expect(make({ timezone: 'Europe/Berlin' })).toThrow(/did you mean timeZone\?/);
    expect(() => createRateLimiter({ limits: { name: 'g', algo: 'gcra', limit: 3, periodMs: 1000, timeZone: 'Europe/Berlin' } as never })).toThrow(/unknown option "timeZone"/);
  });
});
