import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { MAX_REFILL_MS, msUntil } from '../../src/twin/bucket.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * The twin must answer exactly as the Lua does: random sequences of operations with a controlled
 * clock run through the same generated bindings against a real Redis and against the twin.
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('diff');
});
afterAll(() => redis.quit());

type Op = { fn: (client: object, args: never) => Promise<unknown>; args: Record<string, unknown> };

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

/** Runs ops (each with its clock advance) on Redis and the twin, requiring identical outcomes. */
async function agree(build: (key: string) => { advance: number; op: Op }[], t0: number): Promise<void> {
  const key = `${prefix}{k${run++}}`;
  const twin = new TwinClient();
  let now = t0;
  for (const { advance, op } of build(key)) {
    now += advance;
    const args = { ...op.args, nowMs: now } as never;
    const [onRedis, onTwin] = [await outcome(op.fn(redis, args)), await outcome(op.fn(twin, args))];
    expect(onTwin).toEqual(onRedis);
  }
}

const t0 = fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 });
const limit = fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 1_000_000_000 }));
const period = fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: 1, max: 31_622_400_000 }));
const opKind = fc.constantFrom('consume', 'consume', 'consume', 'peek', 'refund');

function steps<T>(arb: fc.Arbitrary<T>) {
  return fc.array(fc.tuple(fc.double({ min: 0, max: 1.5, noNaN: true }), opKind, arb), { minLength: 1, maxLength: 20 });
}

const RUNS = { numRuns: 60 };

describe('twin ≡ Lua', () => {
  it('gcra and token_bucket: consume, peek, refund, reserve', async () => {
    const params = fc
      .record({ limit, periodMs: period, burst: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }) })
      .filter((p) => msUntil(p.burst ?? p.limit, 0, 0, p.limit, p.periodMs) <= MAX_REFILL_MS);
    await fc.assert(
      fc.asyncProperty(params, steps(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 3 }))), t0, async (p, ops, start) => {
        const unit = Math.max(1, Math.ceil(p.periodMs / p.limit));
        for (const algo of ['gcra', 'token_bucket'] as const) {
          await agree(
            (key) =>
              ops.map(([adv, kind, [cost, wait]]) => {
                const base = { key, limit: p.limit, periodMs: p.periodMs, burst: p.burst, cost };
                const fns = algo === 'gcra' ? { consume: b.gcra, peek: b.gcraPeek, refund: b.gcraRefund } : { consume: b.tokenBucket, peek: b.tokenBucketPeek, refund: b.tokenBucketRefund };
                if (algo === 'gcra' && wait > 1 && cost > 0) {
                  return { advance: Math.round(adv * unit), op: { fn: b.gcraReserve as Op['fn'], args: { ...base, maxWaitMs: Math.min(wait * unit, 1_000_000) } } };
                }
                return { advance: Math.round(adv * unit * 3), op: { fn: fns[kind as 'consume'] as Op['fn'], args: base } };
              }),
            start,
          );
        }
      }),
      RUNS,
    );
  });

  it('fixed_window, sliding_window, sliding_log: consume, peek, refund', async () => {
    const params = fc.record({ limit: fc.integer({ min: 1, max: 12 }), periodMs: fc.integer({ min: 1, max: 5_000 }), offsetFraction: fc.double({ min: 0, max: 0.999, noNaN: true }) });
    await fc.assert(
      fc.asyncProperty(params, steps(fc.integer({ min: 0, max: 5 })), t0, async (p, ops, start) => {
        const offsetMs = Math.floor(p.offsetFraction * p.periodMs);
        const algos = {
          fixed_window: { consume: b.fixedWindow, peek: b.fixedWindowPeek, refund: b.fixedWindowRefund, extra: { offsetMs } },
          sliding_window: { consume: b.slidingWindow, peek: b.slidingWindowPeek, refund: b.slidingWindowRefund, extra: {} },
          sliding_log: { consume: b.slidingLog, peek: b.slidingLogPeek, refund: b.slidingLog, extra: {} },
        };
        for (const f of Object.values(algos)) {
          await agree(
            (key) =>
              ops.map(([adv, kind, cost]) => ({
                advance: Math.round(adv * p.periodMs * 0.7),
                op: { fn: f[kind as 'consume'] as Op['fn'], args: { key, limit: p.limit, periodMs: p.periodMs, cost, ...f.extra } },
              })),
            start,
          );
        }
      }),
      RUNS,
    );
  });

  it('windows with large limits and periods (the split-product paths) agree too', async () => {
    const params = fc.record({ limit: fc.integer({ min: 1_000_000, max: 1_000_000_000 }), periodMs: fc.integer({ min: 1_000_000, max: 31_622_400_000 }) });
    await fc.assert(
      fc.asyncProperty(params, steps(fc.double({ min: 0, max: 0.7, noNaN: true })), t0, async (p, ops, start) => {
        const algos = {
          sliding_window: { consume: b.slidingWindow, peek: b.slidingWindowPeek, refund: b.slidingWindowRefund },
          fixed_window: { consume: b.fixedWindow, peek: b.fixedWindowPeek, refund: b.fixedWindowRefund },
        };
        for (const f of Object.values(algos)) {
          await agree(
            (key) =>
              ops.map(([adv, kind, share]) => ({
                advance: Math.round(adv * p.periodMs * 0.9),
                op: { fn: f[kind as 'consume'] as Op['fn'], args: { key, limit: p.limit, periodMs: p.periodMs, cost: Math.round(share * p.limit) } },
              })),
            start,
          );
        }
      }),
      RUNS,
    );
  });

  it('quota across days, weeks and months in UTC offsets', async () => {
    const params = fc.record({
      limit: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 1_000_000_000_000_000 })),
      unit: fc.constantFrom('day', 'week', 'month') as fc.Arbitrary<'day' | 'week' | 'month'>,
      utcOffsetMs: fc.integer({ min: -50_400_000, max: 50_400_000 }),
    });
    await fc.assert(
      fc.asyncProperty(params, steps(fc.integer({ min: 0, max: 8 })), t0, async (p, ops, start) => {
        const span = { day: 86_400_000, week: 604_800_000, month: 2_678_400_000 }[p.unit];
        await agree(
          (key) =>
            ops.map(([adv, kind, cost]) => ({
              advance: Math.round(adv * span * 0.4),
              op: { fn: { consume: b.quota, peek: b.quotaPeek, refund: b.quotaRefund }[kind as 'consume'] as Op['fn'], args: { key, ...p, cost } },
            })),
          start,
        );
      }),
      RUNS,
    );
  });

  it('concurrency: acquire, release, peek with renewals and expiry', async () => {
    const op = fc.tuple(fc.constantFrom('acquire', 'acquire', 'release', 'peek'), fc.integer({ min: 0, max: 4 }));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 1_000 }), fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), op), { minLength: 1, maxLength: 25 }), t0, async (lim, ttl, ops, start) => {
        await agree(
          (key) =>
            ops.map(([adv, [kind, lease]]) => ({
              advance: Math.round(adv * ttl * 0.6),
              op:
                kind === 'acquire'
                  ? { fn: b.concurrencyAcquire as Op['fn'], args: { key, limit: lim, periodMs: ttl, leaseId: `lease-${lease}` } }
                  : kind === 'release'
                    ? { fn: b.concurrencyRelease as Op['fn'], args: { key, leaseId: `lease-${lease}` } }
                    : { fn: b.concurrencyPeek as Op['fn'], args: { key, limit: lim } },
            })),
          start,
        );
      }),
      RUNS,
    );
  });

  it('multi and multi_peek over random mixes, with blocks', async () => {
    const item = fc.record({
      algo: fc.constantFrom('gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota') as fc.Arbitrary<string>,
      limit: fc.integer({ min: 1, max: 12 }),
      periodMs: fc.integer({ min: 1, max: 5_000 }),
      cost: fc.integer({ min: 0, max: 4 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(item, { minLength: 1, maxLength: 4 }), steps(fc.integer({ min: 0, max: 3 })), t0, async (items, ops, start) => {
        await agree((key) => {
          const limits = (multiplier: number) =>
            items.map((it, i) => ({
              key: `${key}:${i}`,
              algo: it.algo as 'gcra',
              ...(it.algo === 'quota' ? { limit: it.limit, unit: 'day' as const } : { limit: it.limit, periodMs: it.periodMs }),
              cost: it.cost * multiplier,
            }));
          return ops.map(([adv, kind, m]) => {
            if (kind === 'refund' && m === 3) {
              return { advance: 0, op: { fn: b.block as Op['fn'], args: { key: `${key}:block`, durationMs: 500 } } };
            }
            const withBlock = [{ key: `${key}:block`, algo: 'block' as const }, ...limits(m)];
            return { advance: Math.round(adv * 1_000), op: { fn: (kind === 'peek' ? b.multiPeek : b.multi) as Op['fn'], args: { limits: withBlock } } };
          });
        }, start);
      }),
      RUNS,
    );
  });

  it('reports bad state and bad arguments the same way', async () => {
    const key = `${prefix}{bad}`;
    await redis.set(key, 'not-a-state');
    const twin = new TwinClient();
    twin.store.set(key, { kind: 'block', untilMs: 0 }, Infinity);
    const onRedis = await outcome(b.gcra(redis, { key, limit: 1, periodMs: 1000, nowMs: 5 }));
    const onTwin = await outcome(b.gcra(twin, { key, limit: 1, periodMs: 1000, nowMs: 5 }));
    expect(onRedis).toEqual({ error: `redlimit gcra: Redis replied: ERR redlimit gcra: key ${key} does not hold gcra state` });
    expect(onTwin).toEqual(onRedis);
  });
});
