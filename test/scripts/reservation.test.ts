import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * reserve.lua and settle.lua on a real Redis, on a caller clock (now_ms) so every number is exact:
 * RPM 60 a minute with a burst of 10, TPM 1000 a minute (one token refills every 60 ms).
 */
const T0 = Date.UTC(2026, 0, 15, 10, 30);
let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('rsv');
});
afterAll(() => redis.quit());

/** A fresh subject: its rpm and tpm keys and a reservation key maker, all in one slot. */
function subject() {
  const tag = `s${n++}`;
  const rpm = `${prefix}{${tag}}:rpm`;
  const tpm = `${prefix}{${tag}}:tpm`;
  let r = 0;
  return { tag, rpm, tpm, record: () => `${prefix}{${tag}}:!rsv:${r++}` };
}

type S = ReturnType<typeof subject>;
const rpmSpec = { algo: 'gcra' as const, limit: 60, periodMs: 60_000, burst: 10 };
const tpmSpec = { algo: 'gcra' as const, limit: 1000, periodMs: 60_000 };

function reserve(s: S, record: string, estimate: number, nowMs = T0, ttlMs = 60_000) {
  return b.reserve(redis, { recordKey: record, ttlMs, nowMs, limits: [{ key: s.rpm, ...rpmSpec, cost: 1 }, { key: s.tpm, ...tpmSpec, cost: estimate }] });
}

function settle(s: S, record: string, actual: number, opts: { mode?: 'commit' | 'cancel'; overage?: 'debt' | 'cap'; nowMs?: number } = {}) {
  return b.settle(redis, { recordKey: record, mode: opts.mode ?? 'commit', overage: opts.overage, nowMs: opts.nowMs ?? T0, actuals: [{ key: s.rpm, actual: 1 }, { key: s.tpm, actual }] });
}

/** What TPM holds at `nowMs` (a peek). */
async function tpmLeft(s: S, nowMs = T0): Promise<number> {
  return (await b.gcraPeek(redis, { key: s.tpm, limit: 1000, periodMs: 60_000, cost: 0, nowMs })).remaining;
}

async function raw(...keys: string[]): Promise<(string | null)[]> {
  return Promise.all(keys.map((k) => redis.get(k)));
}

describe('reserve', () => {
  it('takes every estimate or none: a denied reservation writes nothing, not even its record', async () => {
    const s = subject();
    const r1 = s.record();
    expect(await reserve(s, r1, 800)).toMatchObject({ allowed: true, deniedIndex: 0, limits: [{ remaining: 9 }, { remaining: 200 }] });
    expect(await redis.exists(r1)).toBe(1);
    const before = await raw(s.rpm, s.tpm);
    const r2 = s.record();
    expect(await reserve(s, r2, 300)).toMatchObject({ allowed: false, deniedIndex: 2, retryAfterMs: 6_000, limits: [{ allowed: true, remaining: 9 }, { allowed: false, remaining: 200 }] });
    expect(await raw(s.rpm, s.tpm)).toEqual(before);
    expect(await redis.exists(r2)).toBe(0);
  });

  it('refuses at once an estimate no limit could ever hold (retry -1), writing nothing', async () => {
    const s = subject();
    const r = s.record();
    expect(await reserve(s, r, 1001)).toMatchObject({ allowed: false, deniedIndex: 2, retryAfterMs: -1 });
    expect(await raw(s.rpm, s.tpm, r)).toEqual([null, null, null]);
  });

  it('a replay of the same reservation (a retry whose reply was lost) takes nothing more; a reused id is refused', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 300);
    expect(await reserve(s, r, 300, T0 + 10)).toEqual({ allowed: true, deniedIndex: 0, retryAfterMs: 0, limits: [{ allowed: true, remaining: 9, resetAfterMs: 1_000 - 10, retryAfterMs: 0 }, { allowed: true, remaining: 700, resetAfterMs: 18_000 - 10, retryAfterMs: 0 }] });
    await expect(reserve(s, r, 301)).rejects.toThrow(/BADARG.*already holds another reservation/);
    await settle(s, r, 300);
    await expect(reserve(s, r, 300)).rejects.toThrow(/BADARG/);
    expect(await tpmLeft(s)).toBe(700);
  });

  it('refuses sliding_log, a bad ttl and a record key that is also a state key (in TS and in Lua)', async () => {
    const s = subject();
    await expect(b.reserve(redis, { recordKey: s.record(), ttlMs: 1000, limits: [{ key: s.rpm, algo: 'sliding_log' as never, limit: 1, periodMs: 1000 }] })).rejects.toThrow(InvalidArgumentError);
    await expect(b.reserve(redis, { recordKey: s.record(), ttlMs: 0, limits: [{ key: s.rpm, ...rpmSpec }] })).rejects.toThrow(InvalidArgumentError);
    await expect(b.reserve(redis, { recordKey: s.record(), ttlMs: 86_400_001, limits: [{ key: s.rpm, ...rpmSpec }] })).rejects.toThrow(InvalidArgumentError);
    await expect(redis.eval(b.reserveScript.source, 2, s.record(), s.rpm, '1000', '', '', 'sliding_log', '1', '1000', '1', '', '', '', '')).rejects.toThrow(/^BADARG/);
    await expect(redis.eval(b.reserveScript.source, 2, s.rpm, s.rpm, '1000', '', '', 'gcra', '1', '1000', '1', '', '', '', '')).rejects.toThrow(/^BADARG.*also the state key/);
    // v1's ARGV (groups of 7, no share_ppm) and v2's (no tz_rules) are refused
    await expect(redis.eval(b.reserveScript.source, 2, s.record(), s.rpm, '1000', '', 'gcra', '1', '1000', '1', '', '', '')).rejects.toThrow(/^BADARG.*expects 11 argument\(s\) for 2 key\(s\) \(3 fixed \+ 8 per key\), got 9/);
    await expect(redis.eval(b.reserveScript.source, 2, s.record(), s.rpm, '1000', '', 'gcra', '1', '1000', '1', '', '', '', '')).rejects.toThrow(/^BADARG.*expects 11 argument\(s\) for 2 key\(s\) \(3 fixed \+ 8 per key\), got 10/);
    expect(await raw(s.rpm)).toEqual([null]);
  });

  it('a blocked subject cannot reserve; settle leaves the block alone', async () => {
    const s = subject();
    const blockKey = `${prefix}{${s.tag}}:!block:x`;
    const limits = [{ key: s.tpm, ...tpmSpec, cost: 10 }, { key: blockKey, algo: 'block' as const }];
    await b.block(redis, { key: blockKey, durationMs: 5_000, nowMs: T0 });
    expect(await b.reserve(redis, { recordKey: s.record(), ttlMs: 60_000, nowMs: T0, limits })).toMatchObject({ allowed: false, deniedIndex: 2, retryAfterMs: 5_000 });
    const r = s.record();
    expect(await b.reserve(redis, { recordKey: r, ttlMs: 60_000, nowMs: T0 + 5_000, limits })).toMatchObject({ allowed: true });
    expect(await b.settle(redis, { recordKey: r, mode: 'cancel', nowMs: T0 + 5_000, actuals: [{ key: s.tpm, actual: 0 }, { key: blockKey, actual: 0 }] })).toEqual({ status: 2, actuals: [{ remaining: 1000, resetAfterMs: 0 }, { remaining: -1, resetAfterMs: -1 }] });
  });
});

describe('settle', () => {
  it('commit below the estimate gives the difference back; RPM (actual = estimate) is not read or written (-1)', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 800);
    const rpmBefore = await redis.get(s.rpm);
    expect(await settle(s, r, 500)).toEqual({ status: 1, actuals: [{ remaining: -1, resetAfterMs: -1 }, { remaining: 500, resetAfterMs: 30_000 }] });
    expect(await redis.get(s.rpm)).toBe(rpmBefore);
    expect(await tpmLeft(s)).toBe(500);
  });

  it('commit above the estimate goes into debt: later calls wait until it is repaid', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 100);
    expect(await settle(s, r, 1_500)).toEqual({ status: 1, actuals: [{ remaining: -1, resetAfterMs: -1 }, { remaining: 0, resetAfterMs: 90_000 }] });
    // 500 tokens of debt: 1 token fits again after 501 refills of 60 ms.
    expect(await reserve(s, s.record(), 1, T0 + 1_000)).toMatchObject({ allowed: false, deniedIndex: 2, retryAfterMs: 30_060 - 1_000 });
    expect(await reserve(s, s.record(), 1, T0 + 30_060)).toMatchObject({ allowed: true });
  });

  it('debt is bounded by one capacity: a huge overage leaves the limit at -burst, full again within 2 bursts of refill', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 0);
    expect(await settle(s, r, 1_000_000_000_000)).toMatchObject({ status: 1, actuals: [{}, { remaining: 0, resetAfterMs: 120_000 }] });
  });

  it('overage cap charges at most what is left: no debt', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 100);
    expect(await settle(s, r, 1_500, { overage: 'cap' })).toMatchObject({ status: 1, actuals: [{}, { remaining: 0, resetAfterMs: 60_000 }] });
    expect(await reserve(s, s.record(), 1, T0 + 60)).toMatchObject({ allowed: true });
  });

  it('cancel gives every estimate back', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 800);
    expect(await settle(s, r, 123, { mode: 'cancel' })).toEqual({ status: 2, actuals: [{ remaining: 10, resetAfterMs: 0 }, { remaining: 1000, resetAfterMs: 0 }] });
    expect(await raw(s.rpm, s.tpm)).toEqual([null, null]);
  });

  it('a second commit or cancel says already settled and writes nothing, for as long as the reservation would have lived and at least 10 minutes', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 800, T0, 1_000);
    await settle(s, r, 500);
    const before = await raw(s.rpm, s.tpm, r);
    const settled = { status: 3, actuals: [{ remaining: -1, resetAfterMs: -1 }, { remaining: -1, resetAfterMs: -1 }] };
    expect(await settle(s, r, 900)).toEqual(settled);
    expect(await settle(s, r, 0, { mode: 'cancel', nowMs: T0 + 600_000 })).toEqual(settled);
    expect(await raw(s.rpm, s.tpm, r)).toEqual(before);
    expect(await settle(s, r, 0, { nowMs: T0 + 600_001 })).toMatchObject({ status: 0 });
  });

  it('an expired reservation counts at its estimate, and a late commit says unknown and writes nothing', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 800, T0, 1_000);
    expect(await settle(s, r, 0, { nowMs: T0 + 1_000 + 1 })).toEqual({ status: 0, actuals: [{ remaining: -1, resetAfterMs: -1 }, { remaining: -1, resetAfterMs: -1 }] });
    expect(await tpmLeft(s, T0 + 1_001)).toBe(216); // 200 + 16 refilled: the 800 stayed taken
    expect(await settle(s, `${prefix}{${s.tag}}:!rsv:never`, 0)).toMatchObject({ status: 0 });
  });

  it('on the server clock the record really expires after ttl_ms', async () => {
    const s = subject();
    const r = s.record();
    await b.reserve(redis, { recordKey: r, ttlMs: 50_000, limits: [{ key: s.tpm, ...tpmSpec, cost: 5 }] });
    const ttl = await redis.pttl(r);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(50_000);
  });

  it('a handle for other keys (another subject, other limits, another order) is a mismatch and writes nothing', async () => {
    const s = subject();
    const other = subject();
    const r = s.record();
    await reserve(s, r, 800);
    const before = await raw(s.rpm, s.tpm, r);
    const mismatch = (k1: string, k2: string) => b.settle(redis, { recordKey: r, mode: 'cancel', nowMs: T0, actuals: [{ key: k1, actual: 0 }, { key: k2, actual: 0 }] });
    expect(await mismatch(s.tpm, s.rpm)).toMatchObject({ status: 4 });
    expect(await mismatch(`${prefix}{${s.tag}}:x`, s.tpm)).toMatchObject({ status: 4 });
    expect(await b.settle(redis, { recordKey: r, mode: 'cancel', nowMs: T0, actuals: [{ key: s.rpm, actual: 0 }] })).toMatchObject({ status: 4 });
    expect(await raw(s.rpm, s.tpm, r)).toEqual(before);
    expect(await b.settle(redis, { recordKey: `${prefix}{${other.tag}}:!rsv:0`, mode: 'cancel', nowMs: T0, actuals: [{ key: other.rpm, actual: 0 }, { key: other.tpm, actual: 0 }] })).toMatchObject({ status: 0 });
  });

  it('refuses actual < 0, NaN, fractions and a bad mode, in TS before the round trip and in Lua', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 800);
    const before = await raw(s.rpm, s.tpm, r);
    for (const actual of [-1, Number.NaN, 1.5, Number.POSITIVE_INFINITY]) {
      await expect(settle(s, r, actual)).rejects.toThrow(InvalidArgumentError);
    }
    await expect(b.settle(redis, { recordKey: r, mode: 'keep' as never, actuals: [{ key: s.rpm, actual: 1 }, { key: s.tpm, actual: 1 }] })).rejects.toThrow(InvalidArgumentError);
    for (const argv of [['commit', '', '', '1', '-1'], ['commit', '', '', '1', 'nan'], ['commit', '', '', '1', '1e3'], ['keep', '', '', '1', '1'], ['commit', 'owe', '', '1', '1'], ['commit', '', '', '1']]) {
      await expect(redis.eval(b.settleScript.source, 3, r, s.rpm, s.tpm, ...argv)).rejects.toThrow(/^BADARG/);
    }
    expect(await raw(s.rpm, s.tpm, r)).toEqual(before);
  });

  it('refuses a foreign value under a record key (WRONGSTATE), not guessing at it', async () => {
    const s = subject();
    const r = s.record();
    await redis.set(r, 'x');
    await expect(settle(s, r, 1)).rejects.toThrow(/WRONGSTATE/);
    await expect(reserve(s, r, 1)).rejects.toThrow(/WRONGSTATE/);
    expect(await raw(s.rpm, s.tpm)).toEqual([null, null]);
  });

  it('publishes each key it changed on redlimit:refund, as the refund scripts do', async () => {
    const s = subject();
    const r = s.record();
    await reserve(s, r, 800);
    const sub = redis.duplicate();
    const heard: string[] = [];
    sub.on('message', (_channel: string, key: string) => heard.push(key));
    await sub.subscribe('redlimit:refund');
    await settle(s, r, 100);
    await redis.ping();
    for (let i = 0; i < 100 && !heard.includes(s.tpm); i++) await new Promise((res) => setTimeout(res, 20));
    await sub.quit();
    expect(heard.filter((k) => k === s.tpm || k === s.rpm)).toEqual([s.tpm]);
  });
});

describe('settle, per algorithm: refund below the estimate, debt above it, bounded', () => {
  const W = 60_000;
  const start = Math.floor(T0 / W) * W;
  const cases = [
    { name: 'token_bucket', spec: { algo: 'token_bucket' as const, limit: 100, periodMs: W }, fresh: 100 },
    { name: 'fixed_window', spec: { algo: 'fixed_window' as const, limit: 100, periodMs: W }, fresh: 100 },
    { name: 'sliding_window', spec: { algo: 'sliding_window' as const, limit: 100, periodMs: W }, fresh: 100 },
    { name: 'quota', spec: { algo: 'quota' as const, limit: 100, unit: 'day' as const }, fresh: 100 },
  ];
  for (const c of cases) {
    it(`${c.name}: a commit below gives back, above goes into debt that refunds repay first, at most one capacity`, async () => {
      const s = subject();
      const key = s.tpm;
      const reserveAt = async (est: number, nowMs = start) => {
        const recordKey = s.record();
        return { recordKey, reply: await b.reserve(redis, { recordKey, ttlMs: 60_000, nowMs, limits: [{ key, ...c.spec, cost: est }] }) };
      };
      const settleAt = (recordKey: string, actual: number, mode: 'commit' | 'cancel' = 'commit') => b.settle(redis, { recordKey, mode, nowMs: start, actuals: [{ key, actual }] });
      const first = await reserveAt(60);
      expect(await settleAt(first.recordKey, 20)).toMatchObject({ status: 1, actuals: [{ remaining: 80 }] });
      const a = await reserveAt(40);
      expect(a.reply).toMatchObject({ allowed: true, limits: [{ remaining: 40 }] });
      const over = await reserveAt(10);
      expect(await settleAt(over.recordKey, 100)).toMatchObject({ status: 1, actuals: [{ remaining: 0 }] }); // 60 in debt
      expect((await reserveAt(1)).reply).toMatchObject({ allowed: false });
      // A refund repays the debt first: 40 back leaves 20 owed, still nothing free.
      expect(await settleAt(a.recordKey, 0, 'cancel')).toMatchObject({ status: 2, actuals: [{ remaining: 0 }] });
      expect((await reserveAt(1)).reply).toMatchObject({ allowed: false });

      // The bound, on a fresh key: one capacity of debt at most, however large the overage.
      const t = subject();
      const rk = t.record();
      await b.reserve(redis, { recordKey: rk, ttlMs: 60_000, nowMs: start, limits: [{ key: t.tpm, ...c.spec, cost: 0 }] });
      await b.settle(redis, { recordKey: rk, mode: 'commit', nowMs: start, actuals: [{ key: t.tpm, actual: 1_000_000 }] });
      const res = (cost: number, nowMs: number) => b.reserve(redis, { recordKey: t.record(), ttlMs: 60_000, nowMs, limits: [{ key: t.tpm, ...c.spec, cost }] });
      if (c.name === 'token_bucket') {
        // -100 held: 101 units of refill (600 ms each) before one unit fits.
        expect(await res(1, start + 101 * 600 - 1)).toMatchObject({ allowed: false });
        expect(await res(1, start + 101 * 600)).toMatchObject({ allowed: true });
      } else if (c.name === 'fixed_window' || c.name === 'quota') {
        // Counted 200 of 100: nothing until the window ends, then fresh.
        const end = c.name === 'quota' ? Date.UTC(2026, 0, 16) : start + W;
        expect(await res(1, end - 1)).toMatchObject({ allowed: false, retryAfterMs: 1 });
        expect(await res(100, end)).toMatchObject({ allowed: true });
      } else {
        // 200 counted in this window weigh 100 halfway through the next: still nothing free.
        expect(await res(1, start + W + W / 2)).toMatchObject({ allowed: false });
        expect(await res(100, start + 2 * W)).toMatchObject({ allowed: true });
      }
    });
  }
});
