import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { msUntil } from '../../src/twin/bucket.js';
import { TwinClient } from '../../src/twin/client.js';
import type { TwinValue } from '../../src/twin/store.js';
import { StateDecodeError, decodeState, decodeTokenBucket, toTwinValue } from '../../src/twin/state.js';
import { TOKEN_BUCKET_CLOCK_SLACK_MS, tokenBucketStateValue } from '../../src/twin/token-bucket.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * token_bucket v4's compact form (issue 17): on the server clock a bucket with a fraction of a
 * unit left is stored as "-" and 19 digits (wd, fd, tokens, frac, ts_ms mod 10^e), which Redis
 * int-encodes, and read back to the exact ts_ms. Redis TIME cannot be set, so every call here runs
 * on the server clock between two TIME reads, and the twin is run at each ms of that bracket: the
 * ms whose reply and stored bytes (tokenBucketStateValue) are Redis' is the call's `now` (the
 * stored value names its ts_ms, so at most one ms fits a write). Time gaps come from states
 * written raw with a chosen age (the state "aged": its ts moved back by the gap, on Redis and the
 * twin alike).
 */
let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('tb-compact');
});
afterAll(() => redis.quit());

const SLACK = TOKEN_BUCKET_CLOCK_SLACK_MS;
const HOUR = 3_600_000;
const YEAR366 = 31_622_400_000;
const COMPACT = /^-([1-8])([1-9])(\d{17})$/;
const key = () => `${prefix}{k${n++}}`;

type Params = { limit: number; periodMs: number; burst: number };
type Kind = 'consume' | 'peek' | 'refund';
type Reply = { ok: unknown } | { error: string };

const FNS = { consume: b.tokenBucket, peek: b.tokenBucketPeek, refund: b.tokenBucketRefund } as unknown as Record<Kind, (c: object, a: object) => Promise<unknown>>;

async function outcome(p: Promise<unknown>): Promise<Reply> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

async function serverMs(): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** The compact value for (whole, frac) counted at ts, built here with BigInt (an oracle independent of the twin's). */
function compactOf(whole: number, frac: number, ts: number): string {
  const w = String(whole);
  const f = String(frac);
  const e = 17 - w.length - f.length;
  const d = (BigInt(`${w.length}${f.length}${w}${f}`) * 10n ** BigInt(e)) + (BigInt(ts) % 10n ** BigInt(e));
  return `-${d}`;
}

/** Digits of ts the compact form keeps for (whole, frac). */
const tsDigits = (whole: number, frac: number) => 17 - String(whole).length - String(frac).length;

function bucketOf(v: TwinValue | undefined): { tokens: number; frac: number; tsMs: number } | undefined {
  if (!v) return undefined;
  if (v.kind !== 'token_bucket') throw new Error(`not a token bucket: ${JSON.stringify(v)}`);
  return v;
}

/** The key's value as its Redis type returns it. */
async function rawOf(k: string): Promise<string | Record<string, string> | null> {
  const type = await redis.type(k);
  if (type === 'hash') return redis.hgetall(k);
  return redis.get(k);
}

/**
 * One call on Redis' clock and the same call on a twin holding `before`, at the ms of the call.
 * Returns what the twin holds after it, the value Redis holds and that ms.
 */
async function both(k: string, p: Params, kind: Kind, cost: number, before: TwinValue | undefined): Promise<{ after: TwinValue | undefined; raw: string | Record<string, string> | null; now: number; reply: Reply }> {
  const t0 = await serverMs();
  const onRedis = await outcome(FNS[kind](redis, { key: k, ...p, cost }));
  const t1 = await serverMs();
  const raw = await rawOf(k);
  const t2 = await serverMs();
  const wrote = kind === 'refund' || (kind === 'consume' && cost > 0 && 'ok' in onRedis && (onRedis.ok as { allowed: boolean }).allowed);
  const tried: unknown[] = [];
  for (let now = t0; now <= t1; now++) {
    const twin = new TwinClient();
    if (before) twin.store.set(k, before, Infinity);
    const onTwin = await outcome(FNS[kind](twin, { key: k, ...p, cost, nowMs: now }));
    const after = twin.store.has(k, now) ? twin.store.get(k, 'token_bucket', now) : undefined;
    const reset = after ? msUntil(p.burst, after.tokens, after.frac, p.limit, p.periodMs) : 0;
    const expected = after ? tokenBucketStateValue(after.tokens, after.frac, after.tsMs, reset, now, false) : null;
    tried.push({ now, onTwin, expected });
    if (!isDeepStrictEqual(onTwin, onRedis)) continue;
    // Written as expected, or written and expired before the GET (PXAT ts + reset, gone once past).
    if (wrote && expected !== raw && !(raw === null && after && after.tsMs + reset < t2)) continue;
    return { after: 'error' in onRedis ? before : after, raw, now, reply: onRedis };
  }
  throw new Error(`no ms in [${t0}, ${t1}] gives Redis' answer ${JSON.stringify(onRedis)} and value ${JSON.stringify(raw)} on the twin holding ${JSON.stringify(before)}: ${JSON.stringify(tried)}`);
}

/** Moves a stored state's ts back by `gap` ms on Redis and in `v` (the same form), when the form can still say it. */
async function age(k: string, v: TwinValue | undefined, gap: number): Promise<TwinValue | undefined> {
  const s = bucketOf(v);
  if (!s || gap === 0 || s.tsMs - gap < 1e12) return v;
  const ts = s.tsMs - gap;
  if ((await redis.type(k)) === 'hash') {
    await redis.hset(k, 'ts_ms', String(ts));
    return { ...s, kind: 'token_bucket', tsMs: ts };
  }
  const raw = await redis.get(k);
  if (raw === null) return v;
  let aged: string;
  if (COMPACT.test(raw)) {
    // Only within the window does the compact form read exactly (the call comes a few ms later still).
    if ((await serverMs()) - ts + 10_000 >= 10 ** tsDigits(s.tokens, s.frac) - SLACK) return v;
    aged = compactOf(s.tokens, s.frac, ts);
  } else if (/^-\d+$/.test(raw)) aged = String(-(ts * 1000 + s.tokens));
  else aged = `${s.tokens},${s.frac},${ts}`;
  await redis.set(k, aged, 'PX', 600_000);
  return { ...s, kind: 'token_bucket', tsMs: ts };
}

describe('token_bucket compact state on the server clock', () => {
  it('the steady state (two or three decisions per id) is an int-encoded integer, decided as the twin', async () => {
    // limit/period/burst, and whether the value after the takes (of `cost`, default 1) must be the compact form.
    const cases: [Params, boolean, number?][] = [
      [{ limit: 4, periodMs: HOUR, burst: 4 }, true], // the bench's 4/h: frac < 3.6e6 (7 digits), e = 9
      [{ limit: 7, periodMs: HOUR, burst: 7 }, true],
      [{ limit: 100, periodMs: 60_000, burst: 100 }, true], // 100/min: wd 2, fd <= 5, e >= 10
      [{ limit: 10, periodMs: 1000, burst: 20 }, true],
      [{ limit: 1000, periodMs: 60_000, burst: 1000 }, true], // wd 3, fd <= 5: e >= 9
      [{ limit: 60, periodMs: 86_400_000, burst: 10 }, true], // 60/day: fd <= 8, e >= 8 (27 h) > 4 h to full + 120 s
      [{ limit: 4, periodMs: YEAR366, burst: 4 }, true], // 4 per 366 days: a few ms refill a frac of a few digits (e >= 14)
      [{ limit: 999_999_937, periodMs: 3_599_999, burst: 999_999_937 }, false], // tokens of 9 digits
      // 1e6/day, 1000 taken: tokens of 6 digits and frac of 7 or 8 (multiples of 1e6) leave e <= 4
      // (unless the ms between the takes are a multiple of 432, which refills whole units only).
      [{ limit: 1_000_000, periodMs: 86_400_000, burst: 1_000_000 }, false, 1000],
    ];
    for (const [p, compact, cost = 1] of cases) {
      const k = key();
      let v: TwinValue | undefined;
      const forms: string[] = [];
      for (let i = 0; i < 3; i++) {
        // 1 ms apart at least: the second take finds a fraction refilled.
        const r = await both(k, p, 'consume', cost, v);
        v = r.after;
        expect(r.reply).toMatchObject({ ok: { allowed: true } });
        forms.push(String(r.raw));
        await new Promise((done) => setTimeout(done, 2));
      }
      // (Takes a multiple of a unit's time apart leave no fraction: v3's integer, int-encoded too.)
      const raw = forms.at(-1)!;
      if (bucketOf(v)!.frac !== 0) expect(COMPACT.test(raw), `${JSON.stringify(p)}: ${forms.join(' ')}`).toBe(compact);
      if (compact) {
        expect(await redis.object('ENCODING', k)).toBe('int');
        expect(BigInt(raw) > -(2n ** 63n)).toBe(true);
      }
    }
  });

  it('multi, batch and multi_peek on the server clock write the compact form too, and read it', async () => {
    const tag = `${prefix}{m${n++}}`;
    const p = { limit: 4, periodMs: HOUR, burst: 4 };
    const k = `${tag}:t`;
    await b.tokenBucket(redis, { key: k, ...p });
    await new Promise((done) => setTimeout(done, 2));
    await b.multi(redis, { limits: [{ key: k, algo: 'token_bucket', ...p, cost: 1 }] });
    expect(await redis.get(k)).toMatch(COMPACT);
    expect(await redis.object('ENCODING', k)).toBe('int');
    await new Promise((done) => setTimeout(done, 2));
    const batch = await b.batch(redis, { algo: 'token_bucket', ...p, decisions: [{ key: k, cost: 1 }] });
    expect(batch.decisions[0]).toMatchObject({ allowed: 1, remaining: 1 });
    const raw = (await redis.get(k))!;
    expect(raw).toMatch(COMPACT);
    // batch answers the ms it decided at: the state was counted then.
    expect(decodeTokenBucket(raw, batch.nowMs)).toMatchObject({ form: 'compact', tokens: 1, tsMs: batch.nowMs });
    const peek = await b.multiPeek(redis, { limits: [{ key: k, algo: 'token_bucket', ...p, cost: 2 }] });
    expect(peek).toMatchObject({ allowed: false });
    expect((await b.tokenBucketPeek(redis, { key: k, ...p })).remaining).toBe(1);
  });

  it('other algorithms refuse the compact form (WRONGSTATE) and leave it as it was', async () => {
    const now = await serverMs();
    const raw = compactOf(2, 648, now);
    const calls: [string, (k: string) => Promise<unknown>][] = [
      ['gcra', (k) => b.gcra(redis, { key: k, limit: 4, periodMs: HOUR })],
      ['gcra_peek', (k) => b.gcraPeek(redis, { key: k, limit: 4, periodMs: HOUR })],
      ['fixed_window', (k) => b.fixedWindow(redis, { key: k, limit: 4, periodMs: HOUR })],
      ['sliding_window', (k) => b.slidingWindow(redis, { key: k, limit: 4, periodMs: HOUR })],
      ['quota', (k) => b.quota(redis, { key: k, limit: 4, unit: 'day' })],
      ['multi gcra', (k) => b.multi(redis, { limits: [{ key: k, algo: 'gcra', limit: 4, periodMs: HOUR, cost: 1 }] } as never)],
      ['multi fixed_window', (k) => b.multi(redis, { limits: [{ key: k, algo: 'fixed_window', limit: 4, periodMs: HOUR, cost: 1 }] } as never)],
    ];
    for (const [name, call] of calls) {
      const k = key();
      await redis.set(k, raw, 'PX', 600_000);
      await expect(call(k), name).rejects.toThrow(/WRONGSTATE/);
      expect(await redis.get(k)).toBe(raw);
    }
    // A 19-digit negative integer that is no compact state: wd 0 or 9, fd 0, fewer than one digit of ts.
    for (const bad of ['-0100000000000000001', '-9100000000000000001', '-1000000000000000001', '-8900000000000000001']) {
      const k = key();
      await redis.set(k, bad, 'PX', 600_000);
      await expect(b.tokenBucket(redis, { key: k, limit: 4, periodMs: HOUR }), bad).rejects.toThrow(/WRONGSTATE/);
      expect(() => decodeTokenBucket(bad, now)).toThrow(StateDecodeError);
    }
  });

  it('every earlier form is read on the server clock as before, and the next write with a fraction left is compact', async () => {
    const p = { limit: 4, periodMs: HOUR, burst: 4 };
    const now = await serverMs();
    const seeds: [string, (k: string) => Promise<unknown>, TwinValue][] = [
      ['v3 integer', (k) => redis.set(k, String(-((now - 1000) * 1000 + 2)), 'PX', 600_000), { kind: 'token_bucket', tokens: 2, frac: 0, tsMs: now - 1000 }],
      ['v3 string', (k) => redis.set(k, `1,59999,${now - 3000}`, 'PX', 600_000), { kind: 'token_bucket', tokens: 1, frac: 59_999, tsMs: now - 3000 }],
      ['v3 string in debt', (k) => redis.set(k, `-2,5,${now - 3000}`, 'PX', 600_000), { kind: 'token_bucket', tokens: -2, frac: 5, tsMs: now - 3000 }],
      // 20 characters starting with "-", as the compact form: told apart by its commas.
      ['v3 string in debt, 20 characters', (k) => redis.set(k, `-222,5,${now - 3000}`, 'PX', 600_000), { kind: 'token_bucket', tokens: -222, frac: 5, tsMs: now - 3000 }],
      ['v3 string counted later (a clock stepped back)', (k) => redis.set(k, `3,17,${now + 5000}`, 'PX', 600_000), { kind: 'token_bucket', tokens: 3, frac: 17, tsMs: now + 5000 }],
      [
        'v2 hash',
        async (k) => {
          await redis.hset(k, 'tokens', '2', 'frac', '77', 'ts_ms', String(now - 2000));
          await redis.pexpire(k, 600_000);
        },
        { kind: 'token_bucket', tokens: 2, frac: 77, tsMs: now - 2000 },
      ],
    ];
    for (const [name, seed, value] of seeds) {
      for (const kind of ['consume', 'peek', 'refund'] as const) {
        const k = key();
        await seed(k);
        const r = await both(k, p, kind, 1, value);
        expect(r.reply, name).toHaveProperty('ok');
        const after = bucketOf(r.after);
        if (kind !== 'peek' && name !== 'v3 string counted later (a clock stepped back)') {
          // The content now has a fraction of a unit: the compact form (unless in debt), read back as the twin's state.
          expect(COMPACT.test(String(r.raw)), `${name} ${kind}: ${JSON.stringify(r.raw)}`).toBe(after!.tokens >= 0);
          expect(toTwinValue(decodeTokenBucket(r.raw as string, r.now))).toEqual(r.after);
        }
        // Counted later than now: refills nothing, kept as counted, and not compact (its ts is not now).
        if (name === 'v3 string counted later (a clock stepped back)' && kind === 'consume') expect(r.raw).toBe(`2,17,${now + 5000}`);
      }
    }
  });

  it('twin ≡ Lua on the server clock: random limits, states, ages and calls (fast-check)', async () => {
    const params = fc
      .record({
        limit: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 11, max: 5000 }), fc.integer({ min: 5001, max: 1_000_000_000 })),
        periodMs: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1001, max: 86_400_000 }), fc.integer({ min: 1, max: YEAR366 })),
        burst: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 1_000_000_000 })),
      })
      .filter((p) => (p.burst * p.periodMs) / p.limit <= 315_360_000_000 * 0.99);
    // The state to start from: absent, or content (whole, frac) aged `ageFrac` of the way through the compact form's window.
    const seed = fc.option(
      fc.record({
        form: fc.constantFrom('compact', 'compact', 'compact', 'v3', 'text', 'hash'),
        whole: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 99_999_999 })),
        frac: fc.oneof(fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: 999_999_999 })),
        ageFrac: fc.double({ min: -1, max: 1, noNaN: true }),
      }),
      { nil: undefined },
    );
    const steps = fc.array(fc.tuple(fc.constantFrom<Kind>('consume', 'consume', 'consume', 'peek', 'refund'), fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2000 })), fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1000, max: 10_000_000 }))), {
      minLength: 1,
      maxLength: 8,
    });
    let compactSeen = 0;
    await fc.assert(
      fc.asyncProperty(params, seed, steps, async (p, s, ops) => {
        const k = key();
        let v: TwinValue | undefined;
        if (s) {
          const now = await serverMs();
          // Ages within [-slack, 10^e - slack) with 10 s to spare (the calls come a little later).
          // (At most 4e11 ms back, past the longest refill: a server clock is far from 0.)
          const span = s.form === 'compact' ? 10 ** tsDigits(s.whole, s.frac) : 1e7;
          fc.pre(s.form !== 'compact' || span >= 1e6);
          const ageMs = Math.round(s.ageFrac >= 0 ? s.ageFrac * Math.min(span - SLACK - 10_000, 4e11) : s.ageFrac * (SLACK - 10_000));
          const ts = now - ageMs;
          const frac = s.form === 'v3' ? 0 : s.frac;
          const whole = s.form === 'v3' ? s.whole % 1000 : s.whole;
          v = { kind: 'token_bucket', tokens: whole, frac, tsMs: ts };
          if (s.form === 'compact') await redis.set(k, compactOf(whole, frac, ts), 'PX', 600_000);
          else if (s.form === 'v3') await redis.set(k, String(-(ts * 1000 + whole)), 'PX', 600_000);
          else if (s.form === 'text') await redis.set(k, `${whole},${frac},${ts}`, 'PX', 600_000);
          else await redis.hset(k, 'tokens', String(whole), 'frac', String(frac), 'ts_ms', String(ts));
        }
        for (const [kind, cost, gap] of ops) {
          const r = await both(k, p, kind, cost, v);
          v = r.after;
          if (typeof r.raw === 'string') {
            if (COMPACT.test(r.raw)) compactSeen++;
            // The decoder reads what Redis holds as the twin's state (a key Redis still holds).
            if (v) expect(toTwinValue(decodeState('token_bucket', r.raw, r.now)!)).toEqual(v);
          }
          v = await age(k, v, gap);
        }
      }),
      {
        numRuns: 300,
        examples: [
          // 4/h with a fraction aged half an hour, then a take, a peek and a refund.
          [{ limit: 4, periodMs: HOUR, burst: 4 }, { form: 'compact', whole: 1, frac: 1_234_567, ageFrac: 0.003 }, [['consume', 1, 0], ['peek', 1, 1_800_000], ['refund', 1, 0]]],
          // At the edges of the read window: just after the slack before, just before 10^e - slack after.
          [{ limit: 7, periodMs: 60_000, burst: 9 }, { form: 'compact', whole: 3, frac: 41_999, ageFrac: -1 }, [['consume', 2, 0], ['consume', 1, 0]]],
          [{ limit: 7, periodMs: 60_000, burst: 9 }, { form: 'compact', whole: 3, frac: 41_999, ageFrac: 1 }, [['consume', 2, 0], ['consume', 1, 0]]],
        ],
      },
    );
    expect(compactSeen).toBeGreaterThan(0);
  });
});

describe('the compact form at its bounds', () => {
  /** A fresh key at 1 unit per ms: a take of `cost` leaves burst - cost, no fraction, full again in `cost` ms. */
  async function takeFresh(burst: number, cost: number): Promise<{ raw: string; now: number }> {
    const k = key();
    const p = { limit: 1, periodMs: 1, burst };
    const r = await both(k, p, 'consume', cost, undefined);
    expect(r.reply).toMatchObject({ ok: { allowed: true, remaining: burst - cost, resetAfterMs: cost } });
    return { raw: r.raw as string, now: r.now };
  }

  it('10^e against the time to full plus twice the slack: written when it is above, not when equal', async () => {
    // tokens 10^7 (wd 8), frac 0 (fd 1): e = 8, so 10^8 > reset + 120000 is the rule.
    const fits = await takeFresh(10_000_000 + 100_000_000 - 2 * SLACK - 1, 100_000_000 - 2 * SLACK - 1);
    expect(fits.raw).toBe(compactOf(10_000_000, 0, fits.now));
    expect(fits.raw).toMatch(/^-81/);
    const over = await takeFresh(10_000_000 + 100_000_000 - 2 * SLACK, 100_000_000 - 2 * SLACK);
    expect(over.raw).toBe(`10000000,0,${over.now}`);
  });

  it('tokens of 8 digits are compact, of 9 are not', async () => {
    // A take of 1e6 at a unit per ms: the key lives 1e6 ms (e = 8 for 8 digits of tokens).
    const eight = await takeFresh(99_999_999 + 1_000_000, 1_000_000);
    expect(eight.raw).toBe(compactOf(99_999_999, 0, eight.now));
    expect(eight.raw.length).toBe(20);
    const nine = await takeFresh(100_000_000 + 1_000_000, 1_000_000);
    expect(nine.raw).toBe(`100000000,0,${nine.now}`);
  });

  it('frac of 9 digits is compact, of 10 is not', async () => {
    // 1e9 units per 1e9 ms: a unit per ms, so the refill adds whole units and frac stays as stored.
    const p = { limit: 1_000_000_000, periodMs: 1_000_000_000, burst: 1000 };
    const k9 = key();
    const now = await serverMs();
    await redis.set(k9, `20,999999999,${now}`, 'PX', 600_000);
    const r9 = await both(k9, p, 'consume', 1, { kind: 'token_bucket', tokens: 20, frac: 999_999_999, tsMs: now });
    expect(r9.raw).toMatch(COMPACT);
    const d9 = decodeTokenBucket(r9.raw as string, r9.now);
    expect(d9).toMatchObject({ form: 'compact', frac: 999_999_999, tsMs: r9.now, tsDigits: tsDigits(d9.tokens, 999_999_999) });
    // 1 unit per 366 days: frac counts ms, 1e9 and up is 10 digits.
    const q = { limit: 1, periodMs: YEAR366, burst: 5 };
    const k10 = key();
    await redis.set(k10, `3,1000000000,${now}`, 'PX', 600_000);
    const r10 = await both(k10, q, 'consume', 1, { kind: 'token_bucket', tokens: 3, frac: 1_000_000_000, tsMs: now });
    expect(r10.raw).toMatch(/^2,\d{10},\d+$/);
  });

  it('a state read at an age just inside [-slack, 10^e - slack) finds its ts; just outside, the one 10^e away', async () => {
    // 2 tokens and 648 / 3.6e6 of a unit: e = 13 (10^13 ms, 317 years) at 4/h; wd 1, fd 7 at 7 per
    // day gives e = 9 (11.6 days), which the outer side of the window can be placed at.
    const p = { limit: 7, periodMs: 86_400_000, burst: 10 };
    const [whole, frac] = [2, 1_234_567];
    const span = 10 ** tsDigits(whole, frac);
    expect(span).toBe(1e9);
    const cases: [string, number, number][] = [
      // [name, true age when written, the ts the Lua must read]
      ['just after -slack', -SLACK + 10_000, 0],
      ['just before -slack (a clock stepped back further)', -SLACK - 10_000, -span],
      ['just before 10^e - slack', span - SLACK - 10_000, 0],
      ['just after 10^e - slack (a key that would have expired)', span - SLACK + 10_000, span],
    ];
    for (const [name, ageMs, shift] of cases) {
      const k = key();
      const now = await serverMs();
      const ts = now - ageMs;
      await redis.set(k, compactOf(whole, frac, ts), 'PX', 600_000);
      // The ts read: its remainder mod 10^e is the one stored, in the window around the read.
      const read = ts + shift;
      expect(decodeTokenBucket(compactOf(whole, frac, ts), now).tsMs, name).toBe(read);
      for (const kind of ['peek', 'consume'] as const) {
        const r = await both(k, p, kind, 1, { kind: 'token_bucket', tokens: whole, frac, tsMs: read });
        expect(r.reply, name).toHaveProperty('ok');
      }
    }
  });

  it('the twin writes the bytes the Lua writes (tokenBucketStateValue), including v3 forms and deletion', () => {
    const T = 1_796_211_254_299;
    expect(tokenBucketStateValue(2, 648, T, 1_799_838, T, false)).toBe('-1326481796211254299');
    expect(tokenBucketStateValue(2, 648, T, 1_799_838, T, false)).toBe(compactOf(2, 648, T));
    expect(tokenBucketStateValue(2, 648, T, 1_799_838, T, true)).toBe(`2,648,${T}`); // a caller's clock
    expect(tokenBucketStateValue(2, 648, T + 5, 1_799_838, T, false)).toBe(`2,648,${T + 5}`); // counted later than now
    expect(tokenBucketStateValue(3, 0, T, 900_000, T, false)).toBe(`-${T}003`);
    expect(tokenBucketStateValue(-1, 648, T, 2_000_000, T, false)).toBe(`-1,648,${T}`);
    expect(tokenBucketStateValue(4, 0, T, 0, T, false)).toBeNull();
    // e = 6 (wd 2, fd 9): 10^6 > reset + 120000 up to reset 879999.
    expect(tokenBucketStateValue(10, 999_999_999, T, 879_999, T, false)).toBe(compactOf(10, 999_999_999, T));
    expect(tokenBucketStateValue(10, 999_999_999, T, 880_000, T, false)).toBe(`10,999999999,${T}`);
  });

  it('the decoder: the compact form read at a time, strict about what the Lua never writes', () => {
    const T = 1_796_211_254_299;
    expect(decodeTokenBucket('-1326481796211254299', T + 5)).toEqual({ algo: 'token_bucket', form: 'compact', tokens: 2, frac: 648, tsMs: T, tsMod: T, tsDigits: 13 });
    // A remainder of 9 digits: the ts in the window around the read.
    const v = compactOf(2, 1_234_567, T);
    expect(v).toBe(`-1721234567${String(T % 1e9).padStart(9, '0')}`);
    expect(decodeTokenBucket(v, T + 3_600_000)).toMatchObject({ tokens: 2, frac: 1_234_567, tsMs: T, tsDigits: 9 });
    expect(decodeTokenBucket(v, T - SLACK)).toMatchObject({ tsMs: T });
    expect(decodeTokenBucket(v, T - SLACK - 1)).toMatchObject({ tsMs: T - 1e9 });
    expect(decodeTokenBucket(v, T + 1e9 - SLACK - 1)).toMatchObject({ tsMs: T });
    expect(decodeTokenBucket(v, T + 1e9 - SLACK)).toMatchObject({ tsMs: T + 1e9 });
    // v3's integer (16 digits) is still the packed form.
    expect(decodeTokenBucket(`-${T}003`)).toEqual({ algo: 'token_bucket', form: 'packed', tokens: 3, frac: 0, tsMs: T });
    for (const bad of [
      '-0126481796211254299', // wd 0
      '-9126481796211254299', // wd 9: past 2^63
      '-1026481796211254299', // fd 0
      '-8912345678123456789', // e = 0
      '-8512345678123451234', // e = 4: never written (10^e must pass 120 s)
      '-2302648796211254299', // tokens with a leading zero
      '-1320481796211254299', // frac with a leading zero
    ]) {
      expect(() => decodeTokenBucket(bad, T), bad).toThrow(StateDecodeError);
    }
    // As a number the 19 digits are lost: refused, not misread.
    expect(() => decodeTokenBucket(-1326481796211254299, T)).toThrow(StateDecodeError);
  });
});
