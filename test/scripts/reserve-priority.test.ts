import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { runScript } from '../../src/runtime/index.js';
import { compileLimit, type LimitPlan } from '../../src/client/plan.js';
import { reserveCall, reserveOnTwin, settleCall } from '../../src/client/reservations.js';
import { TwinClient } from '../../src/twin/client.js';
import { createRateLimiter } from '../../src/index.js';
import { ioredis, uniquePrefix, UNHURRIED } from '../support/redis.js';

/**
 * Priority classes on reserve (reserve v2, group field share_ppm): a reservation in a class of
 * share s is admitted only if capacity - floor(capacity * s / 1e6) units are left after its
 * estimate, exactly as limit() decides; denied, nothing is taken and no record written. On a
 * real Redis with the clock overridden, then through the client's reserveCall / reserveOnTwin.
 */
const T0 = Date.UTC(2026, 0, 15, 10, 30);
let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('rsvprio');
});
afterAll(() => redis.quit());

function subject() {
  const tag = `s${n++}`;
  let r = 0;
  return { tag, tpm: `${prefix}{${tag}}:tpm`, rpm: `${prefix}{${tag}}:rpm`, record: () => `${prefix}{${tag}}:!rsv:${r++}` };
}

// TPM: 1000 tokens a day; the batch class may use 70% of it, so it must leave 300.
const tpm = { algo: 'quota' as const, limit: 1000, unit: 'day' as const };
const BATCH = 700_000;

describe('reserve with a priority class (script)', () => {
  it('a batch-class reservation is denied when it would leave less than the floor; nothing is written', async () => {
    const s = subject();
    const reserve = (cost: number, sharePpm?: number) => {
      const recordKey = s.record();
      return b.reserve(redis, { recordKey, ttlMs: 60_000, nowMs: T0, limits: [{ key: s.tpm, ...tpm, cost, sharePpm }] }).then((r) => ({ r, recordKey }));
    };
    // 700 leaves exactly the floor of 300: admitted
    const first = await reserve(700, BATCH);
    expect(first.r).toMatchObject({ allowed: true, limits: [{ allowed: true, remaining: 300 }] });
    const state = await redis.get(s.tpm);
    // one more token in the batch class would leave 299 < 300: denied until the day ends
    const denied = await reserve(1, BATCH);
    expect(denied.r).toMatchObject({ allowed: false, deniedIndex: 1, limits: [{ allowed: false, remaining: 300 }] });
    expect(denied.r.retryAfterMs).toBeGreaterThan(0);
    expect(await redis.exists(denied.recordKey)).toBe(0);
    expect(await redis.get(s.tpm)).toBe(state);
    // without a class (or at share 1e6) the same reservation takes from the floor
    expect((await reserve(200)).r).toMatchObject({ allowed: true, limits: [{ remaining: 100 }] });
    expect((await reserve(100, 1_000_000)).r).toMatchObject({ allowed: true, limits: [{ remaining: 0 }] });
  });

  it('an estimate the class can never fit is refused with retry -1; share 0 can reserve only nothing', async () => {
    const s = subject();
    const r = await b.reserve(redis, { recordKey: s.record(), ttlMs: 60_000, nowMs: T0, limits: [{ key: s.tpm, ...tpm, cost: 701, sharePpm: BATCH }] });
    expect(r).toMatchObject({ allowed: false, retryAfterMs: -1 });
    const zero = await b.reserve(redis, { recordKey: s.record(), ttlMs: 60_000, nowMs: T0, limits: [{ key: s.tpm, ...tpm, cost: 1, sharePpm: 0 }] });
    expect(zero).toMatchObject({ allowed: false, retryAfterMs: -1 });
    expect(await redis.exists(s.tpm)).toBe(0);
  });

  it('cancelling a batch reservation gives its units back to the class', async () => {
    const s = subject();
    const recordKey = s.record();
    expect(await b.reserve(redis, { recordKey, ttlMs: 60_000, nowMs: T0, limits: [{ key: s.tpm, ...tpm, cost: 700, sharePpm: BATCH }] })).toMatchObject({ allowed: true });
    await b.settle(redis, { recordKey, mode: 'cancel', nowMs: T0, actuals: [{ key: s.tpm, actual: 0 }] });
    expect(await b.reserve(redis, { recordKey: s.record(), ttlMs: 60_000, nowMs: T0, limits: [{ key: s.tpm, ...tpm, cost: 700, sharePpm: BATCH }] })).toMatchObject({ allowed: true });
  });

  it('every limit decides at its own class: the call is denied by the one that would fall below its floor', async () => {
    const s = subject();
    const rpm = { algo: 'fixed_window' as const, limit: 10, periodMs: 60_000 };
    // rpm: the class may use half (leave 5); tpm: 70%
    const limits = (rpmCost: number, tpmCost: number) => [
      { key: s.rpm, ...rpm, cost: rpmCost, sharePpm: 500_000 },
      { key: s.tpm, ...tpm, cost: tpmCost, sharePpm: BATCH },
    ];
    expect(await b.reserve(redis, { recordKey: s.record(), ttlMs: 60_000, nowMs: T0, limits: limits(5, 100) })).toMatchObject({ allowed: true });
    const r = await b.reserve(redis, { recordKey: s.record(), ttlMs: 60_000, nowMs: T0, limits: limits(1, 100) });
    expect(r).toMatchObject({ allowed: false, deniedIndex: 1, limits: [{ allowed: false, remaining: 5 }, { allowed: true, remaining: 900 }] });
  });
});

describe('reserve with a priority class (client: reserveCall, reserveOnTwin)', () => {
  const plans: LimitPlan[] = [compileLimit({ name: 'rpm', algo: 'fixed_window', limit: 10, periodMs: 3_600_000 }, 1), compileLimit({ name: 'tpm', algo: 'quota', limit: 1000, unit: 'day' }, 1)];
  const keysOf = (s: ReturnType<typeof subject>) => [s.rpm, s.tpm];
  // the batch class: rpm whole ('' sends the default), tpm 70%
  const shares = ['', String(BATCH)];

  it('sends each limit its share, and Redis and the twin decide alike', async () => {
    const s = subject();
    const twin = new TwinClient();
    const outcomes: unknown[] = [];
    for (const est of [600, 100, 1, 250]) {
      const call = reserveCall(plans, false, keysOf(s), [1, est], 60_000, shares);
      expect(call.argv.slice(3)).toEqual(['fixed_window', '10', '3600000', '1', '', '0', '', '', 'quota', '1000', '', String(est), '', '0', 'day', String(BATCH)]);
      const onRedis = (await runScript(redis, call.def, call.keys, call.argv)) as number[];
      const { args, items } = reserveOnTwin(plans, false, [1, est], 60_000, shares);
      const onTwin = twin.runParsed(b.reserveScript, call.keys, args, items);
      // the clocks differ (server time, the twin's): compare the decisions and what is left
      const pick = (r: number[]) => [r[0], r[1], r[3], r[4], r[7], r[8]];
      expect(pick(onTwin)).toEqual(pick(onRedis));
      outcomes.push(onRedis[0]);
    }
    // 600 and 100 leave 300; 1 more would leave 299; no class needed for the rpm limit
    expect(outcomes).toEqual([1, 1, 0, 0]);
  });

  it('no shares: the class-free reservation of before (share_ppm empty everywhere)', async () => {
    const s = subject();
    const call = reserveCall(plans, true, [...keysOf(s), `${prefix}{${s.tag}}:!block`], [1, 900], 60_000);
    expect(call.argv.slice(3)).toEqual(['fixed_window', '10', '3600000', '1', '', '0', '', '', 'quota', '1000', '', '900', '', '0', 'day', '', 'block', '', '', '', '', '', '', '']);
    expect(((await runScript(redis, call.def, call.keys, call.argv)) as number[])[0]).toBe(1);
    const cancel = settleCall(call.handle, 'cancel', null);
    expect(((await runScript(redis, cancel.def, cancel.keys, cancel.argv)) as number[])[0]).toBe(2);
  });

  it('bad shares are refused before any round trip', () => {
    const s = subject();
    for (const bad of [['', '1000001'], ['', '-1'], ['x', ''], [''], ['', '0.5']]) {
      expect(() => reserveCall(plans, false, keysOf(s), [1, 1], 60_000, bad)).toThrow(InvalidArgumentError);
      expect(() => reserveOnTwin(plans, false, [1, 1], 60_000, bad)).toThrow(InvalidArgumentError);
    }
  });
});

describe('reserve with a priority class (limiter: reserve(subject, { cost, priority }))', () => {
  for (const [label, extra] of [
    ['Redis', {}],
    ['the in-memory twin', { redis: undefined }],
  ] as const) {
    it(`a batch reservation stops at the class's floor, a class-free one goes on — ${label}`, async () => {
      const rl = createRateLimiter({
        redis,
        prefix: uniquePrefix('rsvpriolim'),
        limits: [
          { name: 'rpm', algo: 'fixed_window', limit: 100, periodMs: 3_600_000 },
          { name: 'tpm', algo: 'quota', limit: 1000, unit: 'day' },
        ],
        priorities: { batch: 0.7 },
        ...UNHURRIED,
        ...extra,
      });
      try {
        const first = await rl.reserve('agent', { cost: { rpm: 1, tpm: 600 }, priority: 'batch' });
        expect(first).toMatchObject({ allowed: true, priority: { class: 'batch', shares: { rpm: 0.7, tpm: 0.7 } } });
        expect(first.handle).toEqual(expect.any(String));
        // 600 + 101 would leave 299 of the 300 the batch class must leave
        const denied = await rl.reserve('agent', { cost: { rpm: 1, tpm: 101 }, priority: 'batch' });
        expect(denied).toMatchObject({ allowed: false, handle: null, deniedBy: 'tpm', priority: { class: 'batch' } });
        expect(await rl.reserve('agent', { cost: { rpm: 1, tpm: 100 }, priority: 'batch' })).toMatchObject({ allowed: true });
        expect(await rl.reserve('agent', { cost: { rpm: 1, tpm: 300 } })).toMatchObject({ allowed: true });
        await rl.cancel(first.handle!);
        expect(await rl.reserve('agent', { cost: { rpm: 1, tpm: 600 }, priority: 'batch' })).toMatchObject({ allowed: false });
        expect(await rl.reserve('agent', { cost: { rpm: 1, tpm: 600 } })).toMatchObject({ allowed: true });
        await expect(rl.reserve('agent', { cost: 1, priority: 'nope' })).rejects.toThrow();
      } finally {
        await rl.close();
      }
    });
  }
});
