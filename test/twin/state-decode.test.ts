import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { ALGO_KIND, type TwinValue } from '../../src/twin/store.js';
import {
  StateDecodeError,
  decodeBlock,
  decodeConcurrency,
  decodeFixedWindow,
  decodeGcra,
  decodeQuota,
  decodeSlidingLog,
  decodeSlidingWindow,
  decodeState,
  decodeTokenBucket,
  fixedWindowCount,
  quotaCount,
  slidingWindowCounts,
  toTwinValue,
  type AlgoName,
  type RawHash,
} from '../../src/twin/state.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * src/twin/state.ts decodes what the Lua writes: after calls of the real scripts on a real
 * redis-server, the stored value (GET / HGETALL / ZRANGE WITHSCORES) decodes to the state the
 * twin holds after the same calls; the earlier forms still read (v2's token bucket hash, the
 * string forms) decode to the state the scripts decide on; and a value no version writes is
 * refused (wherever the Lua answers WRONGSTATE, the decoder refuses too).
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('state-decode');
});
afterAll(() => redis.quit());

const FAR = 1e15;
const KIND: Record<AlgoName, TwinValue['kind']> = ALGO_KIND;

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

/** The key's value as the Redis type it holds returns it (null: absent). */
async function rawOf(key: string): Promise<string | RawHash | string[] | null> {
  const type = await redis.type(key);
  if (type === 'string') return redis.get(key);
  if (type === 'hash') return redis.hgetall(key);
  if (type === 'zset') return redis.zrange(key, 0, -1, 'WITHSCORES');
  expect(type).toBe('none');
  return null;
}

function twinHeld(twin: TwinClient, key: string, algo: AlgoName, now: number): TwinValue | undefined {
  return twin.store.has(key, now) ? twin.store.get(key, KIND[algo], now, algo) : undefined;
}

function windowStart(now: number, periodMs: number, offsetMs = 0): number {
  return now - ((((now - offsetMs) % periodMs) + periodMs) % periodMs);
}

type Params = { limit: number; periodMs: number; burst?: number; offsetMs: number; unit: 'day' | 'week' | 'month'; utcOffsetMs: number };
type Op = (c: object, key: string, p: Params, nowMs: number, cost: number, who: string) => Promise<unknown>;
const call = (fn: unknown) => fn as (c: object, a: object) => Promise<unknown>;

/** Each algorithm's scripts as (client, key, params, now, cost, holder) calls. */
const OPS: Record<AlgoName, Record<string, Op>> = {
  gcra: {
    consume: (c, key, p, nowMs, cost) => call(b.gcra)(c, { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost, nowMs }),
    peek: (c, key, p, nowMs, cost) => call(b.gcraPeek)(c, { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost, nowMs }),
    refund: (c, key, p, nowMs, cost) => call(b.gcraRefund)(c, { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost, nowMs }),
  },
  token_bucket: {
    consume: (c, key, p, nowMs, cost) => call(b.tokenBucket)(c, { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost, nowMs }),
    peek: (c, key, p, nowMs, cost) => call(b.tokenBucketPeek)(c, { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost, nowMs }),
    refund: (c, key, p, nowMs, cost) => call(b.tokenBucketRefund)(c, { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost, nowMs }),
  },
  fixed_window: {
    consume: (c, key, p, nowMs, cost) => call(b.fixedWindow)(c, { key, limit: p.limit, periodMs: p.periodMs, offsetMs: p.offsetMs, cost, nowMs }),
    peek: (c, key, p, nowMs, cost) => call(b.fixedWindowPeek)(c, { key, limit: p.limit, periodMs: p.periodMs, offsetMs: p.offsetMs, cost, nowMs }),
    refund: (c, key, p, nowMs, cost) => call(b.fixedWindowRefund)(c, { key, limit: p.limit, periodMs: p.periodMs, offsetMs: p.offsetMs, cost, nowMs }),
  },
  quota: {
    consume: (c, key, p, nowMs, cost) => call(b.quota)(c, { key, limit: p.limit, unit: p.unit, utcOffsetMs: p.utcOffsetMs, cost, nowMs }),
    peek: (c, key, p, nowMs, cost) => call(b.quotaPeek)(c, { key, limit: p.limit, unit: p.unit, utcOffsetMs: p.utcOffsetMs, cost, nowMs }),
    refund: (c, key, p, nowMs, cost) => call(b.quotaRefund)(c, { key, limit: p.limit, unit: p.unit, utcOffsetMs: p.utcOffsetMs, cost, nowMs }),
  },
  sliding_window: {
    consume: (c, key, p, nowMs, cost) => call(b.slidingWindow)(c, { key, limit: p.limit, periodMs: p.periodMs, cost, nowMs }),
    peek: (c, key, p, nowMs, cost) => call(b.slidingWindowPeek)(c, { key, limit: p.limit, periodMs: p.periodMs, cost, nowMs }),
    refund: (c, key, p, nowMs, cost) => call(b.slidingWindowRefund)(c, { key, limit: p.limit, periodMs: p.periodMs, cost, nowMs }),
  },
  sliding_log: {
    consume: (c, key, p, nowMs, cost) => call(b.slidingLog)(c, { key, limit: p.limit, periodMs: p.periodMs, cost, nowMs }),
    peek: (c, key, p, nowMs, cost) => call(b.slidingLogPeek)(c, { key, limit: p.limit, periodMs: p.periodMs, cost, nowMs }),
  },
  concurrency: {
    consume: (c, key, p, nowMs, _cost, who) => call(b.concurrencyAcquire)(c, { key, limit: Math.min(p.limit, 1_000_000), periodMs: p.periodMs, leaseId: who, nowMs }),
    peek: (c, key, p, nowMs) => call(b.concurrencyPeek)(c, { key, limit: Math.min(p.limit, 1_000_000), nowMs }),
    refund: (c, key, _p, nowMs, _cost, who) => call(b.concurrencyRelease)(c, { key, leaseId: who, nowMs }),
  },
  block: {
    consume: (c, key, p, nowMs, cost) => call(b.block)(c, { key, durationMs: cost * Math.min(p.periodMs, 1000), nowMs }),
  },
};

const ALGOS = Object.keys(OPS) as AlgoName[];

describe('state decoders (src/twin/state.ts) ≡ what the Lua writes', () => {
  it('every algorithm: after each call, the value Redis stores decodes to the state the twin holds', async () => {
    const params = fc.record({
      // Around the radices: gcra packs num < 1e6, token_bucket tokens < 1000 with no fraction.
      limit: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 995, max: 1005 }), fc.integer({ min: 999_990, max: 1_000_010 }), fc.integer({ min: 1_000_001, max: 1_000_000_000 })),
      periodMs: fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 3_600_000 })),
      burst: fc.option(fc.integer({ min: 1, max: 1500 }), { nil: undefined }),
      offsetFrac: fc.double({ min: 0, max: 0.999, noNaN: true }),
      unit: fc.constantFrom('day' as const, 'week' as const, 'month' as const),
      utcOffsetMs: fc.integer({ min: -50_400_000, max: 50_400_000 }),
      t0: fc.oneof(fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }), fc.integer({ min: 3_000_000_000, max: 4_000_000_000 })), // past any window or period starting before the epoch
    });
    const steps = fc.array(
      fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.constantFrom('consume', 'consume', 'consume', 'peek', 'refund'), fc.integer({ min: 0, max: 4 }), fc.constantFrom('h1', 'h2', 'h3')),
      { minLength: 1, maxLength: 12 },
    );
    const forms = new Set<string>();
    await fc.assert(
      fc.asyncProperty(params, steps, async (q, ops) => {
        const p: Params = { ...q, offsetMs: Math.floor(q.offsetFrac * q.periodMs) };
        for (const algo of ALGOS) {
          const key = `${prefix}{a${run++}}`;
          const twin = new TwinClient();
          let now = q.t0;
          for (const [advance, kind, cost, who] of ops) {
            now += advance;
            const op = OPS[algo][kind] ?? OPS[algo].consume!;
            const [onRedis, onTwin] = [await outcome(op(redis, key, p, now, cost, who)), await outcome(op(twin, key, p, now, cost, who))];
            expect(onTwin).toEqual(onRedis);
            const held = twinHeld(twin, key, algo, now);
            const raw = await rawOf(key);
            if (!held) continue; // the twin dropped it (full or expired): Redis may still hold what it no longer reads
            const decoded = decodeState(algo, raw)!;
            expect(decoded, `${algo} ${JSON.stringify(raw)}`).toBeDefined();
            forms.add(`${algo}:${decoded.form}`);
            // A caller's clock: the windows write their text forms, which carry their start.
            expect(toTwinValue(decoded)).toEqual(held);
          }
        }
      }),
      {
        numRuns: 40,
        // Always among the runs, so that the forms checked below are met whatever the seed: a
        // limit past gcra's radix (its text form) whose token bucket holds 1000+ tokens (the
        // bucket's text form), and a small limit refilled part-way (a fraction: text again).
        examples: [
          [{ limit: 999_999_937, periodMs: 3_599_999, burst: undefined, offsetFrac: 0, unit: 'day', utcOffsetMs: 0, t0: 1_700_000_000_000 }, [[0, 'consume', 1, 'h1'], [7, 'consume', 3, 'h1']]],
          [{ limit: 7, periodMs: 1000, burst: undefined, offsetFrac: 0, unit: 'day', utcOffsetMs: 0, t0: 1_700_000_000_000 }, [[0, 'consume', 2, 'h1'], [100, 'consume', 1, 'h2']]],
        ],
      },
    );
    // Both forms of the buckets were met (the windows pack on the server clock only: below).
    for (const f of ['gcra:packed', 'gcra:text', 'token_bucket:packed', 'token_bucket:text', 'fixed_window:text', 'quota:text', 'sliding_window:text', 'sliding_log:zset', 'concurrency:zset', 'block:text']) {
      expect(forms, f).toContain(f);
    }
  });

  it("the server clock's packed window forms decode to the twin's state for the window they are read in", async () => {
    const serverNow = async () => {
      const [s, us] = await redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    // Periods that are no multiple of the tag ranges (2^22, 2^21 ms), one short enough to step into the next window.
    for (const periodMs of [997, 3_600_001]) {
      for (const algo of ['fixed_window', 'sliding_window'] as const) {
        const p: Params = { limit: 100_000, periodMs, offsetMs: algo === 'fixed_window' ? 123 % periodMs : 0, unit: 'day', utcOffsetMs: 0 };
        const costs = [3, 1, 4];
        for (let attempt = 0; ; attempt++) {
          const key = `${prefix}{s${run++}}`;
          const twin = new TwinClient();
          const t1 = await serverNow();
          for (const cost of costs) await OPS[algo].consume!(redis, key, p, undefined as unknown as number, cost, '');
          const t2 = await serverNow();
          const start = windowStart(t1, periodMs, p.offsetMs);
          // Every call ran in one window (a window boundary in between: try again).
          if (windowStart(t2, periodMs, p.offsetMs) !== start) {
            expect(attempt).toBeLessThan(5);
            continue;
          }
          for (const cost of costs) await OPS[algo].consume!(twin, key, p, t1, cost, '');
          const raw = await redis.get(key);
          expect(await redis.object('ENCODING', key)).toBe('int');
          const decoded = algo === 'fixed_window' ? decodeFixedWindow(raw!) : decodeSlidingWindow(raw!);
          expect(decoded.form).toBe('packed');
          expect(toTwinValue(decoded, { start, periodMs })).toEqual(twinHeld(twin, key, algo, t1));
          if (decoded.algo === 'fixed_window') {
            expect(fixedWindowCount(decoded, start)).toBe(8);
            expect(fixedWindowCount(decoded, start + periodMs)).toBe(0);
          } else {
            expect(slidingWindowCounts(decoded, start, periodMs)).toEqual([8, 0]);
            // Read in the next window, the same state is that window's previous one.
            expect(slidingWindowCounts(decoded, start + periodMs, periodMs)).toEqual([0, 8]);
            expect(toTwinValue(decoded, { start: start + periodMs, periodMs })).toEqual(twinHeld(twin, key, algo, t1));
            expect(slidingWindowCounts(decoded, start + 2 * periodMs, periodMs)).toEqual([0, 0]);
          }
          break;
        }
      }
    }
  });

  it('the forms still read (v2 hash and strings, raw packed integers) decode to the state the scripts decide on', async () => {
    const now = 1_700_000_123_457;
    const limit = 7;
    const periodMs = 60_000;
    const fwStart = windowStart(now, periodMs, 500);
    const swStart = windowStart(now, periodMs);
    const dayStart = windowStart(now, 86_400_000);
    type Fixture = { algo: AlgoName; write: (key: string) => Promise<unknown>; value: TwinValue; form: string; window?: { start: number; periodMs: number } };
    const fixtures: Fixture[] = [
      // v2's token bucket hash, in credit and in debt, with and without a fraction
      ...[
        [3, 0, now - 5000],
        [5, 12_345, now - 100],
        [-2, 17, now - 10],
      ].map(([tokens, frac, ts]) => ({
        algo: 'token_bucket' as const,
        write: (key: string) => redis.hset(key, 'tokens', String(tokens), 'frac', String(frac), 'ts_ms', String(ts)),
        value: { kind: 'token_bucket' as const, tokens: tokens!, frac: frac!, tsMs: ts! },
        form: 'hash',
      })),
      // gcra's v2 "ms:num" (v3 would pack these), and v3's text past the integer's radix
      { algo: 'gcra', write: (key) => redis.set(key, `${now + 20_000}:3`), value: { kind: 'gcra', tatMs: now + 20_000, tatNum: 3 }, form: 'text' },
      { algo: 'gcra', write: (key) => redis.set(key, `${now + 20_000}:0`), value: { kind: 'gcra', tatMs: now + 20_000, tatNum: 0 }, form: 'text' },
      { algo: 'gcra', write: (key) => redis.set(key, `${now + 9000}000004`), value: { kind: 'gcra', tatMs: now + 9000, tatNum: 4 }, form: 'packed' },
      // token bucket v3 forms written raw
      { algo: 'token_bucket', write: (key) => redis.set(key, `-${now - 3000}004`), value: { kind: 'token_bucket', tokens: 4, frac: 0, tsMs: now - 3000 }, form: 'packed' },
      { algo: 'token_bucket', write: (key) => redis.set(key, `1,59999,${now - 3000}`), value: { kind: 'token_bucket', tokens: 1, frac: 59_999, tsMs: now - 3000 }, form: 'text' },
      // fixed_window: v2's "start:count" for this window and the previous one, and the packed form
      { algo: 'fixed_window', write: (key) => redis.set(key, `${fwStart}:5`), value: { kind: 'counter', start: fwStart, count: 5 }, form: 'text' },
      { algo: 'fixed_window', write: (key) => redis.set(key, `${fwStart - periodMs}:5`), value: { kind: 'counter', start: fwStart - periodMs, count: 5 }, form: 'text' },
      { algo: 'fixed_window', write: (key) => redis.set(key, String(6 * 2 ** 22 + (fwStart % 2 ** 22))), value: { kind: 'counter', start: fwStart, count: 6 }, form: 'packed', window: { start: fwStart, periodMs } },
      // quota's "start:count"
      { algo: 'quota', write: (key) => redis.set(key, `${dayStart}:2`), value: { kind: 'counter', start: dayStart, count: 2 }, form: 'text' },
      // sliding_window: v2's "start:cur:prev" (this window, the previous one) and the packed form (read in this window and the next)
      { algo: 'sliding_window', write: (key) => redis.set(key, `${swStart}:2:3`), value: { kind: 'sliding_window', start: swStart, cur: 2, prev: 3 }, form: 'text' },
      { algo: 'sliding_window', write: (key) => redis.set(key, `${swStart - periodMs}:4:1`), value: { kind: 'sliding_window', start: swStart - periodMs, cur: 4, prev: 1 }, form: 'text' },
      {
        algo: 'sliding_window',
        write: (key) => redis.set(key, String((2 * 2 ** 16 + 3) * 2 ** 21 + (swStart % 2 ** 21))),
        value: { kind: 'sliding_window', start: swStart, cur: 2, prev: 3 },
        form: 'packed',
        window: { start: swStart, periodMs },
      },
      {
        algo: 'sliding_window',
        write: (key) => redis.set(key, String((4 * 2 ** 16 + 1) * 2 ** 21 + ((swStart - periodMs) % 2 ** 21))),
        value: { kind: 'sliding_window', start: swStart - periodMs, cur: 4, prev: 1 },
        form: 'packed',
        window: { start: swStart, periodMs },
      },
      // sliding_log and concurrency: sorted sets
      {
        algo: 'sliding_log',
        write: (key) => redis.zadd(key, now - 50_000, '0000000000000002:2', now - 100, '0000000000000003:1'),
        value: { kind: 'sliding_log', entries: [{ ts: now - 50_000, cum: 2, cost: 2 }, { ts: now - 100, cum: 3, cost: 1 }] },
        form: 'zset',
      },
      { algo: 'concurrency', write: (key) => redis.zadd(key, now + 5000, 'h1', now + 100, 'h2'), value: { kind: 'leases', leases: new Map([['h2', now + 100], ['h1', now + 5000]]) }, form: 'zset' },
      { algo: 'block', write: (key) => redis.set(key, String(now + 2500)), value: { kind: 'block', untilMs: now + 2500 }, form: 'text' },
    ];
    const p: Params = { limit, periodMs, offsetMs: 500, unit: 'day', utcOffsetMs: 0 };
    for (const f of fixtures) {
      const key = `${prefix}{o${run++}}`;
      await f.write(key);
      await redis.pexpire(key, 600_000);
      const decoded = decodeState(f.algo, await rawOf(key))!;
      expect(decoded.form, JSON.stringify(f.value)).toBe(f.form);
      expect(toTwinValue(decoded, f.window)).toEqual(f.value);
      // The scripts decide on it as the twin decides on the decoded state: a peek, then a call that writes.
      const twin = new TwinClient();
      twin.store.set(key, toTwinValue(decoded, f.window)!, FAR);
      for (const kind of ['peek', 'consume'] as const) {
        const op = OPS[f.algo][kind] ?? OPS[f.algo].consume!;
        const [onRedis, onTwin] = [await outcome(op(redis, key, p, now, 1, 'h3')), await outcome(op(twin, key, p, now, 1, 'h3'))];
        expect(onTwin, `${f.algo} ${kind} on ${JSON.stringify(f.value)}`).toEqual(onRedis);
      }
      const held = twinHeld(twin, key, f.algo, now);
      if (held) expect(toTwinValue(decodeState(f.algo, await rawOf(key))!)).toEqual(held);
    }
    // A token bucket's next write replaces v2's hash with a string.
    const tb = `${prefix}{o${run++}}`;
    await redis.hset(tb, 'tokens', '3', 'frac', '0', 'ts_ms', String(now));
    await OPS.token_bucket.consume!(redis, tb, p, now, 1, '');
    expect(await redis.type(tb)).toBe('string');
    expect(decodeTokenBucket(await redis.get(tb))).toEqual({ algo: 'token_bucket', form: 'packed', tokens: 2, frac: 0, tsMs: now });
    // A window start before the epoch (a caller's clock near 0, an offset): the text form carries the sign.
    const early = `${prefix}{o${run++}}`;
    const twin = new TwinClient();
    const edge: Params = { limit: 10, periodMs: 10, offsetMs: 5, unit: 'day', utcOffsetMs: 0 };
    await OPS.fixed_window.consume!(redis, early, edge, 0, 1, '');
    await OPS.fixed_window.consume!(twin, early, edge, 0, 1, '');
    expect(await redis.get(early)).toBe('-5:1');
    expect(toTwinValue(decodeFixedWindow((await redis.get(early))!))).toEqual(twinHeld(twin, early, 'fixed_window', 0));
  });

  it('absent keys decode to nothing; numbers as a client parses them decode as their text', () => {
    for (const algo of ALGOS) expect(decodeState(algo, null)).toBeUndefined();
    expect(decodeTokenBucket({})).toBeUndefined();
    expect(decodeSlidingLog([])).toBeUndefined();
    expect(decodeConcurrency([])).toBeUndefined();
    expect(decodeGcra(1_700_000_000_000_123)).toEqual(decodeGcra('1700000000000123'));
    expect(decodeTokenBucket(-1_700_000_000_000_005)).toEqual({ algo: 'token_bucket', form: 'packed', tokens: 5, frac: 0, tsMs: 1_700_000_000_000 });
    expect(decodeBlock(42)).toEqual({ algo: 'block', form: 'text', untilMs: 42 });
    // RESP3's [member, score] pairs read as the flat reply does.
    expect(decodeConcurrency([['h1', 5], ['h2', '6']])).toEqual(decodeConcurrency(['h1', '5', 'h2', '6']));
    expect(() => decodeGcra(2 ** 60)).toThrow(StateDecodeError);
    expect(() => decodeGcra(1.5)).toThrow(/not an exact integer/);
  });

  it('garbage and spellings no version writes are refused, and wherever the Lua answers WRONGSTATE the decoder refuses', async () => {
    const now = 1_700_000_123_457;
    const strings = [
      '', 'abc', ' 12', '12 ', '1e3', '0x10', '+5', '-0', '007', '1.5', 'inf', 'nan', '-', ':', '1:', ':1', '1:2:3:4', '1,2', '1,2,3,4', '-1,-2,3', '1,2,-3',
      '99999999999999999999', '9223372036854775807', '12345', '123456', '0', '0:0', '5:0', '0:0:0', '5:0:0', '1:2:x', '-1:2', '01:2', '1700000000000:-1',
      '1700000000000:1000000000', '-00', '--5', '-1700000000000005x', '9007199254740000000', '01,2,3', '1,02,3', '-01,2,3', '1:02:3',
      // what the algorithms write, each read by the others
      `${now + 9000}000004`, `${now}:3`, `-${now}004`, `1,59999,${now}`, `${now}:2:3`, String(6 * 2 ** 22 + 77), String((2 * 2 ** 16 + 3) * 2 ** 21 + 5), String(now + 2500),
    ];
    // Spellings a Lua read takes that no version writes: the decoders are stricter. The windows read
    // an integer with tonumber (spaces, a sign, exponents, hex, inf); gcra any digits (six or fewer
    // as ms 0, a leading zero, ms past the integer form's bound) and any num; counts of 0 are
    // deleted, never stored.
    const TONUMBER = /^\s*[-+]?(0x[0-9a-f]+|(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|inf|nan)\s*$/i;
    // Every text form read with %d+ also takes a number with a leading zero.
    const LEADING_ZERO = /(^|[:,-])0\d/;
    const lenient: Partial<Record<AlgoName, (raw: string) => boolean>> = {
      gcra: (raw) => /^\d+$/.test(raw) || (/^\d+:\d+$/.test(raw) && LEADING_ZERO.test(raw)) || /^\d+:\d{10,}$/.test(raw), // num >= 1e9: past any limit
      token_bucket: (raw) => /^-?\d+,\d+,\d+$/.test(raw) && LEADING_ZERO.test(raw),
      fixed_window: (raw) => TONUMBER.test(raw) || /^\d+:0$/.test(raw) || (/^\d+:\d+$/.test(raw) && LEADING_ZERO.test(raw)),
      sliding_window: (raw) => TONUMBER.test(raw) || /^\d+:0:0$/.test(raw) || (/^\d+:\d+:\d+$/.test(raw) && LEADING_ZERO.test(raw)),
      quota: (raw) => /^\d+:0$/.test(raw) || (/^\d+:\d+$/.test(raw) && LEADING_ZERO.test(raw)),
    };
    const decoders: Record<string, (raw: string) => unknown> = { gcra: decodeGcra, token_bucket: decodeTokenBucket, fixed_window: decodeFixedWindow, quota: decodeQuota, sliding_window: decodeSlidingWindow, block: decodeBlock };
    const p: Params = { limit: 7, periodMs: 60_000, offsetMs: 0, unit: 'day', utcOffsetMs: 0 };
    const refusedEverywhere = ['', 'abc', ' 12', '1e3', '0x10', '+5', '1.5', 'inf', 'nan', '-', ':', '1:2:3:4', '1,2', '1,2,3,4', '1:2:x', '99999999999999999999', '-1700000000000005x'];
    for (const raw of strings) {
      for (const algo of Object.keys(decoders) as AlgoName[]) {
        let refusal: unknown;
        try {
          decoders[algo]!(raw);
        } catch (err) {
          refusal = err;
        }
        if (refusal !== undefined) expect(refusal, `${algo} ${JSON.stringify(raw)}`).toBeInstanceOf(StateDecodeError);
        if (refusedEverywhere.includes(raw)) expect(refusal, `${algo} ${JSON.stringify(raw)}`).toBeDefined();
        if (algo === 'block') continue; // block has no script that only reads; its read is tonumber's
        const key = `${prefix}{g${run++}}`;
        await redis.set(key, raw, 'PX', 600_000);
        const onRedis = (await outcome(OPS[algo].peek!(redis, key, p, now, 1, ''))) as { error?: string };
        const wrongState = /^WRONGSTATE/.test(onRedis.error?.replace(/^.*Redis replied: /, '') ?? '');
        if (wrongState) expect(refusal, `${algo} takes ${JSON.stringify(raw)}, which the Lua refuses`).toBeDefined();
        if (!wrongState && refusal !== undefined) expect(lenient[algo]?.(raw), `${algo} refuses ${JSON.stringify(raw)}, which the Lua reads: ${(refusal as Error).message}`).toBe(true);
      }
    }
    // Hashes v2 never wrote, and sorted sets no script writes.
    for (const h of <RawHash[]>[{ tokens: 'x', frac: '0', ts_ms: '1' }, { tokens: '1' }, { tokens: '1', frac: '0', ts_ms: '1', extra: '2' }, { tokens: '1', frac: '-1', ts_ms: '1' }, { tokens: '1.5', frac: '0', ts_ms: '1' }]) {
      expect(() => decodeTokenBucket(h), JSON.stringify(h)).toThrow(StateDecodeError);
    }
    expect(() => decodeState('gcra', { tatMs: '1' })).toThrow(/not a hash/);
    expect(() => decodeState('gcra', ['a', '1'])).toThrow(/not a sorted set/);
    expect(() => decodeState('sliding_log', 'abc')).toThrow(/sorted set/);
    for (const z of [['abc', '1'], ['0000000000000001:0', '1'], ['0000000000000001:2', '1'], ['1:1', '1'], ['0000000000000001:1', '1.5'], ['0000000000000001:1'], ['00000000000000001:1', '1']]) {
      expect(() => decodeSlidingLog(z), JSON.stringify(z)).toThrow(StateDecodeError);
    }
    for (const z of [['h1', 'x'], ['h1', '1.5'], ['', '5'], ['h1']]) expect(() => decodeConcurrency(z), JSON.stringify(z)).toThrow(StateDecodeError);
    // The log's foreign members are what its Lua refuses too.
    const log = `${prefix}{g${run++}}`;
    await redis.zadd(log, now - 10, 'abc');
    expect(await outcome(OPS.sliding_log.peek!(redis, log, p, now, 1, ''))).toMatchObject({ error: expect.stringMatching(/WRONGSTATE/) });
    const foreign = await redis.zrange(log, 0, -1, 'WITHSCORES');
    expect(() => decodeSlidingLog(foreign)).toThrow(StateDecodeError);
    // The error names the algorithm and the value.
    expect(() => decodeGcra('abc')).toThrow('redlimit gcra: "abc" is not gcra state');
    expect(quotaCount(decodeQuota('100:3'), 100)).toBe(3);
    expect(quotaCount(decodeQuota('100:3'), 200)).toBe(0);
  });
});
