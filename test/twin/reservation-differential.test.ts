import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * reserve and settle: the twin answers exactly as the Lua does. Random sequences of reservations
 * (ids drawn from a small pool, so replays, reused ids and second settles happen), commits and
 * cancels with random actuals in both overage modes, reservations in random priority classes (share_ppm), settles with the keys swapped (mismatch), and
 * clock advances that pass the reservations' ttl — on one subject with two limits of random
 * algorithms, through the same generated bindings on a real Redis and on the twin.
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('rsvdiff');
});
afterAll(() => redis.quit());

type Algo = 'gcra' | 'token_bucket' | 'fixed_window' | 'sliding_window' | 'quota';
interface Spec {
  algo: Algo;
  limit: number;
  periodMs?: number;
  burst?: number;
  offsetMs?: number;
  unit?: 'day' | 'week' | 'month';
}

const spec: fc.Arbitrary<Spec> = fc.oneof(
  fc.record({ algo: fc.constantFrom('gcra', 'token_bucket') as fc.Arbitrary<Algo>, limit: fc.integer({ min: 1, max: 20 }), periodMs: fc.integer({ min: 1, max: 5_000 }), burst: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }) }),
  fc
    .record({ algo: fc.constant('fixed_window' as Algo), limit: fc.integer({ min: 1, max: 20 }), periodMs: fc.integer({ min: 1, max: 5_000 }), offsetFraction: fc.double({ min: 0, max: 0.99, noNaN: true }) })
    .map(({ offsetFraction, ...s }) => ({ ...s, offsetMs: Math.floor(offsetFraction * s.periodMs) })),
  fc.record({ algo: fc.constant('sliding_window' as Algo), limit: fc.integer({ min: 1, max: 20 }), periodMs: fc.integer({ min: 1, max: 5_000 }) }),
  fc.record({ algo: fc.constant('quota' as Algo), limit: fc.integer({ min: 1, max: 20 }), unit: fc.constant('day' as const), offsetMs: fc.integer({ min: -50_400_000, max: 50_400_000 }) }),
);

const share = fc.option(fc.oneof(fc.constantFrom(0, 250_000, 500_000, 700_000, 999_999, 1_000_000), fc.integer({ min: 0, max: 1_000_000 })), { nil: undefined });

const op = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      rid: fc.integer({ min: 0, max: 3 }),
      ttl: fc.integer({ min: 1, max: 8 }),
      est: fc.tuple(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 24 })),
      // a priority class (share_ppm per limit; undefined: the default, the whole capacity)
      share: fc.option(fc.tuple(share, share), { nil: undefined }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      rid: fc.integer({ min: 0, max: 3 }),
      mode: fc.constantFrom('commit', 'commit', 'cancel') as fc.Arbitrary<'commit' | 'cancel'>,
      overage: fc.constantFrom('debt', 'cap', undefined) as fc.Arbitrary<'debt' | 'cap' | undefined>,
      actual: fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 60 })),
      swap: fc.boolean().map((x) => x && Math.random() < 0.2),
    }),
  },
);
// Time moves in quarters of the longest period, and ttls are whole quarters: deadlines are met exactly.
const step = fc.tuple(fc.integer({ min: 0, max: 5 }), op);

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).constructor.name, message: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

const RUNS = { numRuns: 80 };

describe('twin ≡ Lua: reserve and settle', () => {
  it('every reply and every refusal agree, across replays, second settles, mismatches and expiry', async () => {
    await fc.assert(
      fc.asyncProperty(fc.tuple(spec, spec), fc.array(step, { minLength: 1, maxLength: 25 }), fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }), async (specs, steps, t0) => {
        const tag = `k${run++}`;
        const keys = [`${prefix}{${tag}}:a`, `${prefix}{${tag}}:b`];
        const record = (rid: number) => `${prefix}{${tag}}:!rsv:${rid}`;
        const twin = new TwinClient();
        const quarter = Math.max(1, Math.round(Math.max(...specs.map((s) => s.periodMs ?? 3_600_000)) / 4));
        let now = t0;
        for (const [advance, o] of steps) {
          now += advance * quarter;
          const call = (client: object) => {
            if (o.kind === 'reserve') {
              const limits = specs.map((s, i) => ({ key: keys[i]!, ...s, cost: o.est[i]!, sharePpm: o.share?.[i] }));
              return b.reserve(client as Redis, { recordKey: record(o.rid), ttlMs: o.ttl * quarter, nowMs: now, limits });
            }
            const order = o.swap ? [1, 0] : [0, 1];
            const actuals = order.map((i) => ({ key: keys[i]!, actual: o.actual[i]! }));
            return b.settle(client as Redis, { recordKey: record(o.rid), mode: o.mode, overage: o.overage, nowMs: now, actuals });
          };
          const onRedis = await outcome(call(redis));
          const onTwin = await outcome(call(twin));
          expect(onTwin).toEqual(onRedis);
        }
      }),
      RUNS,
    );
  });

  it('errors agree too: a foreign value under the record key, a record key among the state keys', async () => {
    const tag = `k${run++}`;
    const twin = new TwinClient();
    const r = `${prefix}{${tag}}:!rsv:x`;
    const state = `${prefix}{${tag}}:a`;
    await redis.set(r, 'not a record');
    twin.store.set(r, { kind: 'reservation', text: 'not a record' } as never, Infinity);
    const limits = [{ key: state, algo: 'gcra' as const, limit: 10, periodMs: 1_000 }];
    for (const call of [
      (c: object) => b.reserve(c as Redis, { recordKey: r, ttlMs: 1_000, nowMs: 1e12, limits }),
      (c: object) => b.settle(c as Redis, { recordKey: r, mode: 'commit', nowMs: 1e12, actuals: [{ key: state, actual: 1 }] }),
      (c: object) => b.reserve(c as Redis, { recordKey: state, ttlMs: 1_000, nowMs: 1e12, limits }),
    ]) {
      const onRedis = await outcome(call(redis));
      expect(onRedis).toHaveProperty('error');
      expect(await outcome(call(twin))).toEqual(onRedis);
    }
  });

  it('the tombstone boundary (10 minutes, or the reservation ttl when longer) agrees', async () => {
    const tag = `k${run++}`;
    const twin = new TwinClient();
    const state = `${prefix}{${tag}}:a`;
    const limits = [{ key: state, algo: 'gcra' as const, limit: 10, periodMs: 1_000 }];
    const t = 1_700_000_000_000;
    const steps = [
      { rid: 's', ttl: 1_000, at: [600_000, 600_001] },
      { rid: 'l', ttl: 900_000, at: [900_000, 900_001] },
    ];
    for (const st of steps) {
      const recordKey = `${prefix}{${tag}}:!rsv:${st.rid}`;
      for (const c of [redis, twin] as object[]) {
        await b.reserve(c as Redis, { recordKey, ttlMs: st.ttl, nowMs: t, limits });
        await b.settle(c as Redis, { recordKey, mode: 'cancel', nowMs: t, actuals: [{ key: state, actual: 0 }] });
      }
      for (const dt of st.at) {
        const call = (c: object) => b.settle(c as Redis, { recordKey, mode: 'commit', nowMs: t + dt, actuals: [{ key: state, actual: 0 }] });
        const onRedis = await call(redis);
        expect(onRedis.status).toBe(dt === st.at[0] ? 3 : 0);
        expect(await call(twin)).toEqual(onRedis);
      }
    }
  });
});
