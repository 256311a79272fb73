import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import type { TwinValue } from '../../src/twin/store.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * Issue 17, twin ≡ Lua on the compact state forms. gcra and token_bucket pack on a caller's clock
 * too: after every call, the state Redis holds (decoded from whichever form it took) must be the
 * twin's state exactly, and the form must be the integer exactly when it fits. fixed_window and
 * sliding_window pack only on the server clock (where the key expires with its window): their
 * packed form is written raw here, for windows around the call's, and a call on a caller's clock
 * must decide on it exactly as the twin decides on the same state (and as Redis decides on the v2
 * string form of it).
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('compact-diff');
});
afterAll(() => redis.quit());

const MAX_PACKED_MS = 9_007_199_254_739; // token_bucket's bound (ms * 1000 + tokens < 2^53)
const GCRA_MAX_PACKED_MS = 9_223_372_036_853; // gcra's: ms then six digits of num <= 2^63 - 1
const FW_TAGS = 2 ** 22;
const SW_TAGS = 2 ** 21;
const SW_COUNTS = 2 ** 16;
const FAR = 1e15;

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

/** Redis' stored gcra / token_bucket state as the twin keeps it, and whether it took the integer form. */
async function storedBucket(key: string, algo: 'gcra' | 'token_bucket'): Promise<{ value: TwinValue; packed: boolean } | undefined> {
  const raw = await redis.get(key);
  if (raw === null) return undefined;
  if (/^-?\d+$/.test(raw)) {
    expect(raw.startsWith('-')).toBe(algo === 'token_bucket'); // a token bucket's integer is negative, gcra's not
    if (algo === 'gcra') {
      // ms then num in six digits, sliced as a string (up to 19 digits: no double holds it).
      expect(BigInt(raw) <= 2n ** 63n - 1n).toBe(true);
      return { packed: true, value: { kind: 'gcra', tatMs: raw.length > 6 ? Number(raw.slice(0, -6)) : 0, tatNum: Number(raw.slice(-6)) } };
    }
    const n = BigInt(raw.replace('-', ''));
    const [hi, lo] = [Number(n / 1000n), Number(n % 1000n)];
    return { packed: true, value: { kind: 'token_bucket', tokens: lo, frac: 0, tsMs: hi } };
  }
  const parts = raw.split(algo === 'gcra' ? ':' : ',').map(Number);
  if (algo === 'gcra') return { packed: false, value: { kind: 'gcra', tatMs: parts[0]!, tatNum: parts[1]! } };
  return { packed: false, value: { kind: 'token_bucket', tokens: parts[0]!, frac: parts[1]!, tsMs: parts[2]! } };
}

function shouldPack(v: TwinValue): boolean {
  if (v.kind === 'gcra') return v.tatNum < 1_000_000 && v.tatMs >= 1 && v.tatMs <= GCRA_MAX_PACKED_MS;
  if (v.kind === 'token_bucket') return v.frac === 0 && v.tokens >= 0 && v.tokens < 1000 && v.tsMs <= MAX_PACKED_MS;
  return false;
}

describe('compact state: twin ≡ Lua', () => {
  it('gcra and token_bucket: Redis holds the twin state after every call, as the integer exactly when it fits', async () => {
    // Limits around the radices (gcra: num < 1e6 packs; token_bucket: tokens < 1000), clocks from 0 to past the packed bounds.
    const params = fc.record({
      limit: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 995, max: 1005 }), fc.integer({ min: 2990, max: 3010 }), fc.integer({ min: 999_990, max: 1_000_010 })),
      periodMs: fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 3_600_000 })),
      burst: fc.option(fc.integer({ min: 1, max: 1500 }), { nil: undefined }),
      t0: fc.oneof(
        fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }),
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: MAX_PACKED_MS - 5000, max: MAX_PACKED_MS + 10 }),
        fc.integer({ min: GCRA_MAX_PACKED_MS - 5000, max: GCRA_MAX_PACKED_MS + 10 }),
      ),
    });
    const ops = fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.constantFrom('consume', 'consume', 'peek', 'refund'), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 15 });
    let packedSeen = 0;
    let stringSeen = 0;
    await fc.assert(
      fc.asyncProperty(params, ops, async (p, steps) => {
        for (const algo of ['gcra', 'token_bucket'] as const) {
          const key = `${prefix}{b${run++}}`;
          const twin = new TwinClient();
          const fns =
            algo === 'gcra' ? { consume: b.gcra, peek: b.gcraPeek, refund: b.gcraRefund } : { consume: b.tokenBucket, peek: b.tokenBucketPeek, refund: b.tokenBucketRefund };
          let now = p.t0;
          for (const [advance, kind, cost] of steps) {
            now += advance;
            const args = { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost, nowMs: now };
            const fn = fns[kind as 'consume'] as (c: object, a: typeof args) => Promise<unknown>;
            const [onRedis, onTwin] = [await outcome(fn(redis, args)), await outcome(fn(twin, args))];
            expect(onTwin).toEqual(onRedis);
            const expected = twin.store.has(key, now) ? twin.store.get(key, algo, now, algo) : undefined;
            if (!expected) continue; // the twin dropped it (full or expired): Redis may still hold what it no longer reads
            const stored = await storedBucket(key, algo);
            expect(stored?.value).toEqual({ ...expected });
            expect(stored!.packed).toBe(shouldPack(expected));
            if (stored!.packed) packedSeen++;
            else stringSeen++;
          }
        }
      }),
      { numRuns: 60 },
    );
    expect(packedSeen).toBeGreaterThan(0);
    expect(stringSeen).toBeGreaterThan(0);
  });

  it('fixed_window and sliding_window decide on the packed form as on the v2 string and as the twin', async () => {
    const cases = fc.record({
      algo: fc.constantFrom('fixed_window', 'sliding_window'),
      limit: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 65_530, max: 140_000 })),
      periodMs: fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 86_400_000 }), fc.constantFrom(FW_TAGS - 1, FW_TAGS + 1, SW_TAGS - 1, 3 * SW_TAGS)),
      offsetFrac: fc.double({ min: 0, max: 0.999, noNaN: true }),
      // which window the state belongs to, relative to the call's: 0 this one, 1 the previous, ...
      back: fc.constantFrom(0, 0, 1, 1, 2, 3, 17),
      cur: fc.oneof(fc.integer({ min: 0, max: 25 }), fc.constantFrom(SW_COUNTS - 1), fc.integer({ min: 60_000, max: SW_COUNTS - 1 })),
      prev: fc.oneof(fc.integer({ min: 0, max: 25 }), fc.constantFrom(SW_COUNTS - 1), fc.integer({ min: 60_000, max: SW_COUNTS - 1 })),
      now: fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }),
      into: fc.double({ min: 0, max: 0.9999, noNaN: true }),
      kind: fc.constantFrom('consume', 'peek', 'refund'),
      cost: fc.integer({ min: 0, max: 30 }),
    });
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const fw = c.algo === 'fixed_window';
        const offsetMs = fw ? Math.floor(c.offsetFrac * c.periodMs) : 0;
        const thisStart = c.now - ((((c.now - offsetMs) % c.periodMs) + c.periodMs) % c.periodMs);
        const start = thisStart - c.back * c.periodMs;
        const tags = fw ? FW_TAGS : SW_TAGS;
        // The documented bound: a state whose start is off by a nonzero multiple of the tag range reads as another window's.
        fc.pre(c.back === 0 || ((c.back * c.periodMs) % tags !== 0 && (fw || ((c.back - 1) * c.periodMs) % tags !== 0 || c.back === 1)));
        const packed = fw ? c.cur * FW_TAGS + (start % FW_TAGS) : (c.cur * SW_COUNTS + c.prev) * SW_TAGS + (start % SW_TAGS);
        const text = fw ? `${start}:${c.cur}` : `${start}:${c.cur}:${c.prev}`;
        const value: TwinValue = fw ? { kind: 'counter', start, count: c.cur } : { kind: 'sliding_window', start, cur: c.cur, prev: c.prev };
        const fns = fw
          ? { consume: b.fixedWindow, peek: b.fixedWindowPeek, refund: b.fixedWindowRefund }
          : { consume: b.slidingWindow, peek: b.slidingWindowPeek, refund: b.slidingWindowRefund };
        const fn = fns[c.kind as 'consume'] as (cl: object, a: object) => Promise<unknown>;
        const nowMs = thisStart + Math.floor(c.into * c.periodMs);
        const args = { limit: c.limit, periodMs: c.periodMs, ...(fw ? { offsetMs } : {}), cost: c.cost, nowMs };
        const keyP = `${prefix}{w${run}}p`;
        const keyS = `${prefix}{w${run++}}s`;
        await redis.set(keyP, String(packed), 'PX', 600_000);
        await redis.set(keyS, text, 'PX', 600_000);
        expect(await redis.object('ENCODING', keyP)).toBe('int');
        const twin = new TwinClient();
        twin.store.set(keyP, value, FAR);
        const [onPacked, onText, onTwin] = [await outcome(fn(redis, { ...args, key: keyP })), await outcome(fn(redis, { ...args, key: keyS })), await outcome(fn(twin, { ...args, key: keyP }))];
        expect(onPacked).toEqual(onText);
        expect(onTwin).toEqual(onPacked);
      }),
      { numRuns: 300 },
    );
  });
});
