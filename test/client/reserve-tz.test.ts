import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRateLimiter, type Decision, type RateLimiterOptions } from '../../src/index.js';
import { ioredis, UNHURRIED, uniquePrefix } from '../support/redis.js';

/**
 * limiter.reserve() with an RPM and a team's day budget in Europe/Berlin (a quota with timeZone),
 * across local midnight of the 23-hour day (2026-03-29, clocks spring forward): reserve v3 gets the
 * quota's rules, and settle gives back to / charges the day a reservation was made in — never the
 * next one. On a real Redis (sendClock: Redis decides at the limiter's clock) and on the twin
 * alone (no redis): the same answers.
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

const MIN = 60_000;
const HOUR = 60 * MIN;
/** Berlin's local midnights of the 23-hour day (UTC). */
const START = Date.UTC(2026, 2, 28, 23);
const END = Date.UTC(2026, 2, 29, 22);

function limiterFor(onRedis: boolean, clock: { now: number }) {
  const options: RateLimiterOptions = {
    ...UNHURRIED,
    prefix: uniquePrefix(`rsv-tz-${onRedis ? 'redis' : 'twin'}`),
    limits: [
      { name: 'rpm', algo: 'gcra', limit: 60, periodMs: MIN, burst: 10 },
      { name: 'daily', algo: 'quota', limit: 1_000, unit: 'day', timeZone: 'Europe/Berlin' },
    ],
    clock: () => clock.now,
    sendClock: true,
    denyCache: false,
  };
  const rl = createRateLimiter(onRedis ? { ...options, redis } : options);
  cleanup.push(() => rl.close());
  return rl;
}

const daily = (d: Decision) => {
  const x = d.limits.find((l) => l.name === 'daily')!;
  return { allowed: d.allowed, remaining: x.remaining, resetAfterMs: x.resetAfterMs };
};

/** What the daily budget says at each step; handles are compared by presence only. */
async function scenario(onRedis: boolean) {
  const clock = { now: START + HOUR };
  const rl = limiterFor(onRedis, clock);
  await rl.ready();
  const out: unknown[] = [];
  const settled = (o: { status: string; limits: { name: string; remaining: number; resetAfterMs: number }[] }) => ({ status: o.status, daily: o.limits.find((l) => l.name === 'daily') });

  // Early in the 23-hour day: reserve 300, commit 120 (180 back).
  const a = await rl.reserve('team', { cost: { rpm: 1, daily: 300 }, ttlMs: 2 * HOUR });
  out.push(daily(a), a.handle !== null);
  clock.now += HOUR;
  out.push(settled(await rl.commit(a.handle!, { rpm: 1, daily: 120 })));

  // 23:30 local: reserve 500 and 200; a commit above its estimate before midnight charges this day.
  clock.now = END - 30 * MIN;
  const b = await rl.reserve('team', { cost: { rpm: 1, daily: 500 }, ttlMs: 2 * HOUR });
  const c = await rl.reserve('team', { cost: { rpm: 1, daily: 200 }, ttlMs: 2 * HOUR });
  out.push(daily(b), daily(c));
  out.push(daily(await rl.reserve('team', { cost: { rpm: 1, daily: 400 }, ttlMs: 2 * HOUR }))); // 180 left: denied until local midnight
  clock.now = END - 10 * MIN;
  out.push(settled(await rl.commit(c.handle!, { rpm: 1, daily: 260 })));
  out.push(daily(await rl.peek('team')));

  // 00:10 local, a new day after 23 hours: fresh; the day's first reservation.
  clock.now = END + 10 * MIN;
  out.push(daily(await rl.peek('team')));
  const d = await rl.reserve('team', { cost: { rpm: 1, daily: 100 }, ttlMs: 2 * HOUR });
  out.push(daily(d));
  // b (yesterday's) settled now: nothing given to today (cancel or commit below), nothing charged.
  clock.now = END + 20 * MIN;
  out.push(settled(await rl.cancel(b.handle!)));
  out.push(daily(await rl.peek('team')));
  // d (today's) commits above its estimate: today is charged.
  out.push(settled(await rl.commit(d.handle!, { rpm: 1, daily: 150 })));
  out.push(daily(await rl.peek('team')));
  return out;
}

describe('reserve with a quota in a time zone (Europe/Berlin), across local midnight', () => {
  it('on Redis: settles each reservation in its own day, and the twin alone answers the same', async () => {
    const onRedis = await scenario(true);
    expect(onRedis).toEqual([
      { allowed: true, remaining: 700, resetAfterMs: END - START - HOUR },
      true,
      { status: 'committed', daily: { name: 'daily', remaining: 880, resetAfterMs: END - START - 2 * HOUR } },
      { allowed: true, remaining: 380, resetAfterMs: 30 * MIN },
      { allowed: true, remaining: 180, resetAfterMs: 30 * MIN },
      { allowed: false, remaining: 180, resetAfterMs: 30 * MIN },
      { status: 'committed', daily: { name: 'daily', remaining: 120, resetAfterMs: 10 * MIN } },
      { allowed: true, remaining: 120, resetAfterMs: 10 * MIN },
      { allowed: true, remaining: 1_000, resetAfterMs: 0 },
      { allowed: true, remaining: 900, resetAfterMs: 24 * HOUR - 10 * MIN },
      { status: 'cancelled', daily: { name: 'daily', remaining: -1, resetAfterMs: -1 } },
      { allowed: true, remaining: 900, resetAfterMs: 24 * HOUR - 20 * MIN },
      { status: 'committed', daily: { name: 'daily', remaining: 850, resetAfterMs: 24 * HOUR - 20 * MIN } },
      { allowed: true, remaining: 850, resetAfterMs: 24 * HOUR - 20 * MIN },
    ]);
    expect(await scenario(false)).toEqual(onRedis);
  });
});
