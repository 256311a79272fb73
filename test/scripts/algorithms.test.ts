import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { CrossSlotError, InvalidArgumentError } from '../../src/errors.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

const T0 = Date.UTC(2026, 0, 15, 10, 30); // a Thursday
const DAY = 86_400_000;
let redis: Redis;
let prefix: string;
let n = 0;
const key = () => `${prefix}{t}:${n++}`;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('algo');
});
afterAll(() => redis.quit());

describe('fixed_window', () => {
  it('counts per aligned window, denied calls do not count, and the next window starts fresh', async () => {
    const k = key();
    const args = { key: k, limit: 3, periodMs: 1000 };
    const start = Math.floor(T0 / 1000) * 1000;
    expect(await b.fixedWindow(redis, { ...args, cost: 2, nowMs: start + 100 })).toEqual({ allowed: true, remaining: 1, resetAfterMs: 900, retryAfterMs: 0 });
    expect(await b.fixedWindow(redis, { ...args, cost: 2, nowMs: start + 200 })).toEqual({ allowed: false, remaining: 1, resetAfterMs: 800, retryAfterMs: 800 });
    expect(await b.fixedWindow(redis, { ...args, cost: 1, nowMs: start + 300 })).toMatchObject({ allowed: true, remaining: 0 });
    expect(await b.fixedWindow(redis, { ...args, cost: 3, nowMs: start + 1000 })).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('aligns windows to an offset: calendar days in UTC+2 roll over at 22:00 UTC', async () => {
    const k = key();
    const offsetMs = DAY - 2 * 3_600_000; // local midnight at UTC+2 is 22:00 UTC
    const args = { key: k, limit: 1, periodMs: DAY, offsetMs };
    const day = Date.UTC(2026, 0, 15);
    expect(await b.fixedWindow(redis, { ...args, nowMs: day + 21 * 3_600_000 })).toMatchObject({ allowed: true, resetAfterMs: 3_600_000 });
    expect(await b.fixedWindow(redis, { ...args, nowMs: day + 22 * 3_600_000 - 1 })).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await b.fixedWindow(redis, { ...args, nowMs: day + 22 * 3_600_000 })).toMatchObject({ allowed: true });
  });

  it('reads back a window that started before the epoch (a caller clock near 0): "-start:count"', async () => {
    const k = key();
    const args = { key: k, limit: 2, periodMs: 1000, offsetMs: 5 };
    // now 0 with offset 5: the window is [-995, 5), stored as "-995:1".
    expect(await b.fixedWindow(redis, { ...args, nowMs: 0 })).toMatchObject({ allowed: true, remaining: 1, resetAfterMs: 5 });
    expect(await redis.get(k)).toBe('-995:1');
    expect(await b.fixedWindow(redis, { ...args, nowMs: 1 })).toMatchObject({ allowed: true, remaining: 0 });
    expect(await b.fixedWindow(redis, { ...args, nowMs: 2 })).toMatchObject({ allowed: false, retryAfterMs: 3 });
    expect(await b.fixedWindow(redis, { ...args, nowMs: 5 })).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('refuses an offset not below the period, in TS and in Lua', async () => {
    await expect(b.fixedWindow(redis, { key: key(), limit: 1, periodMs: 1000, offsetMs: 1000 })).rejects.toThrow(InvalidArgumentError);
    await expect(redis.eval(b.fixedWindowScript.source, 1, key(), '1', '1000', '1000')).rejects.toThrow(/offset_ms must be less than period_ms \(1000\), got 1000/);
  });
});

describe('sliding_window', () => {
  it('weights the previous window by overlap, exactly', async () => {
    const k = key();
    const args = { key: k, limit: 10, periodMs: 1000 };
    const w = Math.floor(T0 / 1000) * 1000;
    expect(await b.slidingWindow(redis, { ...args, cost: 10, nowMs: w + 900 })).toMatchObject({ allowed: true, remaining: 0 });
    // 250 ms into the next window the previous 10 weigh 7.5: 2 whole units are free.
    expect(await b.slidingWindow(redis, { ...args, cost: 0, nowMs: w + 1250 })).toMatchObject({ allowed: true, remaining: 2 });
    // Taking 3 needs the weight at 7: 300 ms in, so retry after 50 ms.
    expect(await b.slidingWindow(redis, { ...args, cost: 3, nowMs: w + 1250 })).toMatchObject({ allowed: false, retryAfterMs: 50 });
    expect(await b.slidingWindow(redis, { ...args, cost: 3, nowMs: w + 1300 })).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('never admits more than limit within an aligned window, nor more than 2x limit in any rolling window', async () => {
    const k = key();
    const limit = 20;
    const period = 1000;
    const admittedAt: number[] = [];
    const w = Math.floor(T0 / period) * period;
    // Adversarial-ish traffic: bursts at window ends and starts, plus steady arrivals.
    for (let t = w; t < w + 6 * period; t += 7) {
      const burst = (t - w) % period > 900 || (t - w) % period < 60 ? 3 : 1;
      for (let i = 0; i < burst; i++) {
        if ((await b.slidingWindow(redis, { key: k, limit, periodMs: period, nowMs: t })).allowed) admittedAt.push(t);
      }
    }
    for (let start = w; start < w + 6 * period; start += period) {
      expect(admittedAt.filter((t) => t >= start && t < start + period).length).toBeLessThanOrEqual(limit);
    }
    let worst = 0;
    for (const t of admittedAt) worst = Math.max(worst, admittedAt.filter((u) => u > t - period && u <= t).length);
    expect(worst).toBeLessThanOrEqual(2 * limit);
  });

  it('can exceed limit in a rolling window by the documented bound: limit + prev * elapsed / period', async () => {
    const k = key();
    const w = Math.floor(T0 / 1000) * 1000 + 5000;
    // 20 at the very end of one window, then as many as admitted 600 ms into the next.
    expect(await b.slidingWindow(redis, { key: k, limit: 20, periodMs: 1000, cost: 20, nowMs: w + 950 })).toMatchObject({ allowed: true });
    let later = 0;
    while ((await b.slidingWindow(redis, { key: k, limit: 20, periodMs: 1000, nowMs: w + 1600 })).allowed) later++;
    // prev weighs 20 * 0.4 = 8, so 12 more: 32 in the rolling second (w+600, w+1600].
    expect(later).toBe(12);
    expect(20 + later).toBe(20 + (20 * 600) / 1000);
  });
});

describe('sliding_log', () => {
  it('is an exact rolling window with costs, and keeps at most `limit` entries', async () => {
    const k = key();
    const args = { key: k, limit: 5, periodMs: 1000 };
    expect(await b.slidingLog(redis, { ...args, cost: 2, nowMs: T0 })).toMatchObject({ allowed: true, remaining: 3 });
    expect(await b.slidingLog(redis, { ...args, cost: 3, nowMs: T0 + 400 })).toMatchObject({ allowed: true, remaining: 0 });
    // The first 2 units leave at T0 + 1000 exactly.
    expect(await b.slidingLog(redis, { ...args, cost: 2, nowMs: T0 + 999 })).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await b.slidingLog(redis, { ...args, cost: 2, nowMs: T0 + 1000 })).toMatchObject({ allowed: true, remaining: 0 });
    // Needs 3 freed: the entry of 3 leaves at T0 + 1400.
    expect(await b.slidingLog(redis, { ...args, cost: 3, nowMs: T0 + 1100 })).toMatchObject({ allowed: false, retryAfterMs: 300 });
    for (let i = 0; i < 50; i++) await b.slidingLog(redis, { ...args, nowMs: T0 + 2000 + i * 37 });
    expect(await redis.zcard(k)).toBeLessThanOrEqual(5);
  });

  it('orders same-millisecond entries correctly past 9 units', async () => {
    const k = key();
    for (let i = 0; i < 12; i++) expect((await b.slidingLog(redis, { key: k, limit: 12, periodMs: 1000, nowMs: T0 })).remaining).toBe(11 - i);
    expect(await b.slidingLogPeek(redis, { key: k, limit: 12, periodMs: 1000, cost: 1, nowMs: T0 + 10 })).toMatchObject({ allowed: false, remaining: 0 });
  });
});

describe('quota', () => {
  it('resets on calendar months in a UTC offset, weighted by cost, up to 1e15', async () => {
    const k = key();
    const args = { key: k, limit: 1_000_000_000_000_000, unit: 'month' as const, utcOffsetMs: 3_600_000 };
    const jan31Local = Date.UTC(2026, 0, 31, 22, 0); // 23:00 in UTC+1
    expect(await b.quota(redis, { ...args, cost: 999_999_999_999_999, nowMs: jan31Local })).toEqual({
      allowed: true,
      remaining: 1,
      resetAfterMs: 3_600_000, // February starts at 23:00 UTC on Jan 31
      retryAfterMs: 0,
    });
    expect(await b.quota(redis, { ...args, cost: 2, nowMs: jan31Local + 3_599_999 })).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await b.quota(redis, { ...args, cost: 2, nowMs: jan31Local + 3_600_000 })).toMatchObject({ allowed: true, resetAfterMs: 28 * DAY });
  });

  it('weeks start on Monday; refund gives back within the period only', async () => {
    const k = key();
    const args = { key: k, limit: 10, unit: 'week' as const };
    const thursday = Date.UTC(2026, 0, 15, 12);
    expect(await b.quota(redis, { ...args, cost: 4, nowMs: thursday })).toMatchObject({ allowed: true, resetAfterMs: Date.UTC(2026, 0, 19) - thursday });
    expect(await b.quotaRefund(redis, { ...args, cost: 1, nowMs: thursday + 1 })).toEqual({ remaining: 7, resetAfterMs: Date.UTC(2026, 0, 19) - thursday - 1 });
    expect(await b.quotaPeek(redis, { ...args, cost: 0, nowMs: Date.UTC(2026, 0, 19) })).toMatchObject({ remaining: 10 });
  });

  it('on the server clock the key expires exactly at the period end (no TTL rounding)', async () => {
    const k = key();
    await b.quota(redis, { key: k, limit: 5, unit: 'day' });
    const expireAt = (await redis.call('PEXPIRETIME', k)) as number;
    const endOfDay = (Math.floor(Date.now() / DAY) + 1) * DAY;
    expect(expireAt).toBe(endOfDay);
  });
});

describe('concurrency', () => {
  it('holds at most limit leases; release frees; expiry frees a dead holder; double release is harmless', async () => {
    const k = key();
    const acquire = (id: string, nowMs: number) => b.concurrencyAcquire(redis, { key: k, limit: 2, periodMs: 1000, leaseId: id, nowMs });
    expect(await acquire('a', T0)).toEqual({ allowed: true, remaining: 1, resetAfterMs: 1000, retryAfterMs: 0 });
    expect(await acquire('b', T0 + 100)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await acquire('c', T0 + 200)).toEqual({ allowed: false, remaining: 0, resetAfterMs: 900, retryAfterMs: 800 });
    expect(await b.concurrencyRelease(redis, { key: k, leaseId: 'a', nowMs: T0 + 300 })).toEqual({ released: true, inFlight: 1 });
    expect(await b.concurrencyRelease(redis, { key: k, leaseId: 'a', nowMs: T0 + 301 })).toEqual({ released: false, inFlight: 1 });
    expect(await b.concurrencyRelease(redis, { key: k, leaseId: 'nobody', nowMs: T0 + 302 })).toEqual({ released: false, inFlight: 1 });
    expect(await acquire('c', T0 + 400)).toMatchObject({ allowed: true });
    // 'b' died without releasing: its lease ends at T0 + 1100.
    expect(await acquire('d', T0 + 1099)).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await acquire('d', T0 + 1100)).toMatchObject({ allowed: true });
    expect(await b.concurrencyPeek(redis, { key: k, limit: 2, nowMs: T0 + 1100 })).toEqual({ allowed: false, remaining: 0, resetAfterMs: 1000, inFlight: 2 });
  });
});

describe('gcra_reserve', () => {
  it('books slots fleet-wide: each caller gets its own wait, spaced by the emission interval', async () => {
    const k = key();
    const args = { key: k, limit: 10, periodMs: 1000, burst: 2, maxWaitMs: 350 };
    const waits = [];
    for (let i = 0; i < 6; i++) waits.push(await b.gcraReserve(redis, { ...args, nowMs: T0 }));
    expect(waits.map((w) => w.waitMs)).toEqual([0, 0, 100, 200, 300, 0]);
    expect(waits.map((w) => w.allowed)).toEqual([true, true, true, true, true, false]);
    expect(waits[5]).toMatchObject({ retryAfterMs: 50 }); // would need 400 ms: fits 50 ms later
    // A plain consume honours the bookings (the bucket is in debt until then).
    expect(await b.gcra(redis, { key: k, limit: 10, periodMs: 1000, burst: 2, nowMs: T0 + 350 })).toMatchObject({ allowed: false, retryAfterMs: 50 });
  });
});

describe('block and reset', () => {
  it('a block denies through multi until it ends; reset clears limits and blocks', async () => {
    const tag = `${prefix}{user-9}`;
    const limits = [
      { key: `${tag}:block`, algo: 'block' as const },
      { key: `${tag}:rpm`, algo: 'gcra' as const, limit: 100, periodMs: 60_000 },
    ];
    expect(await b.block(redis, { key: `${tag}:block`, durationMs: 5000, nowMs: T0 })).toEqual({ blockedUntilMs: T0 + 5000 });
    expect(await b.multi(redis, { limits, nowMs: T0 + 10 })).toMatchObject({ allowed: false, deniedIndex: 1, retryAfterMs: 4990 });
    expect(await b.multi(redis, { limits, nowMs: T0 + 5000 })).toMatchObject({ allowed: true });
    await b.block(redis, { key: `${tag}:block`, durationMs: 5000, nowMs: T0 + 6000 });
    expect(await b.reset(redis, { keys: [`${tag}:block`, `${tag}:rpm`] })).toEqual({ deleted: 2 });
    expect(await b.multi(redis, { limits, nowMs: T0 + 6001 })).toMatchObject({ allowed: true, limits: [{}, { remaining: 99 }] });
  });
});

describe('multi', () => {
  it('is all-or-nothing: a denial by one limit consumes from none', async () => {
    const tag = `${prefix}{agent-1}`;
    const rpm = { key: `${tag}:rpm`, algo: 'sliding_log' as const, limit: 5, periodMs: 60_000 };
    const tpm = { key: `${tag}:tpm`, algo: 'fixed_window' as const, limit: 1000, periodMs: 60_000 };
    const r1 = await b.multi(redis, { limits: [rpm, { ...tpm, cost: 900 }], nowMs: T0 });
    expect(r1).toMatchObject({ allowed: true, deniedIndex: 0, limits: [{ remaining: 4 }, { remaining: 100 }] });
    const r2 = await b.multi(redis, { limits: [rpm, { ...tpm, cost: 200 }], nowMs: T0 + 1 });
    expect(r2).toMatchObject({ allowed: false, deniedIndex: 2, limits: [{ allowed: true, remaining: 4 }, { allowed: false, remaining: 100 }] });
    expect(await redis.zcard(rpm.key)).toBe(1); // the RPM limit did not consume
    expect(r2.retryAfterMs).toBe(r2.limits[1]!.retryAfterMs);
  });

  it('reports -1 overall when one limit can never admit, and the max wait otherwise', async () => {
    const tag = `${prefix}{agent-2}`;
    const a = { key: `${tag}:a`, algo: 'gcra' as const, limit: 1, periodMs: 1000 };
    const c = { key: `${tag}:c`, algo: 'gcra' as const, limit: 1, periodMs: 5000 };
    await b.multi(redis, { limits: [a, c], nowMs: T0 });
    expect(await b.multi(redis, { limits: [a, c], nowMs: T0 })).toMatchObject({ allowed: false, deniedIndex: 1, retryAfterMs: 5000 });
    expect(await b.multi(redis, { limits: [a, { ...c, cost: 2 }], nowMs: T0 })).toMatchObject({ retryAfterMs: -1 });
  });

  it('rejects cross-slot keys and duplicate keys before sending, and Lua rejects duplicates too', async () => {
    await expect(
      b.multi(redis, { limits: [{ key: 'rl:{a}:x', algo: 'gcra', limit: 1, periodMs: 1000 }, { key: 'rl:{b}:x', algo: 'gcra', limit: 1, periodMs: 1000 }] }),
    ).rejects.toBeInstanceOf(CrossSlotError);
    const dup = { key: `${prefix}{d}:x`, algo: 'gcra' as const, limit: 1, periodMs: 1000 };
    await expect(b.multi(redis, { limits: [dup, dup] })).rejects.toThrow(/given twice/);
    await expect(redis.eval(b.multiScript.source, 2, dup.key, dup.key, '', '', 'gcra', '1', '1000', '', '', '', '', '', '', 'gcra', '1', '1000', '', '', '', '', '', '')).rejects.toThrow(
      /^BADARG redlimit multi: key .* is given twice \(items 1 and 2\)/,
    );
  });

  it('validates each item for its algorithm in TS and in Lua', async () => {
    await expect(b.multi(redis, { limits: [{ key: key(), algo: 'gcra', limit: 5 }] })).rejects.toThrow('redlimit multi: period_ms[1] is required for algo gcra');
    await expect(redis.eval(b.multiScript.source, 1, key(), '', '', 'gcra', '5', '', '', '', '', '', '', '')).rejects.toThrow(/^BADARG redlimit multi: period_ms\[1\] is required for algo gcra/);
    await expect(redis.eval(b.multiScript.source, 1, key(), '', '', 'sliding_log', '5', '1000', '', '', '', '', '', '')).resolves.toBeDefined();
    await expect(redis.eval(b.multiScript.source, 1, key(), '', '', 'gcra', '5', '1000')).rejects.toThrow(/expects 11 argument\(s\) for 1 key\(s\) \(2 fixed \+ 9 per key\), got 5/);
  });
});

describe('peek scripts are read-only', () => {
  it('carry the no-writes flag, so Redis runs them with EVALSHA_RO', async () => {
    const ro = b.allScripts.filter((d) => d.readOnly).map((d) => d.name).sort();
    expect(ro).toEqual(['concurrency_peek', 'fixed_window_peek', 'gcra_peek', 'multi_peek', 'policy_history', 'policy_read', 'quota_peek', 'sliding_log_peek', 'sliding_window_peek', 'tiers_peek', 'token_bucket_peek']);
    for (const d of b.allScripts.filter((x) => x.readOnly)) expect(d.source.startsWith('#!lua flags=no-writes\n')).toBe(true);
    const k = key();
    await b.gcra(redis, { key: k, limit: 5, periodMs: 1000, nowMs: T0 });
    expect(await redis.evalsha_ro(b.gcraPeekScript.sha1, 1, k, '5', '1000', '', '1', String(T0)).catch(() => redis.eval_ro(b.gcraPeekScript.source, 1, k, '5', '1000', '', '1', String(T0)))).toEqual([1, 4, 200, 0]); // now: 4 left, full in 200 ms
  });
});
