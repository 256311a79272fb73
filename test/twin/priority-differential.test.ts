import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { MAX_REFILL_MS, msUntil } from '../../src/twin/bucket.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * Priority classes (share_ppm) and concurrency items in multi: the twin answers exactly as the
 * Lua does. Random sequences with a controlled clock run through the same generated bindings
 * against a real Redis and against the twin; every reply (or error) must be identical.
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('pdiff');
});
afterAll(() => redis.quit());

type Client = object;
type Step = { advance: number; op: (client: Client, nowMs: number) => Promise<unknown> };

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

/** Runs the steps on Redis and on a fresh twin, requiring identical outcomes at every step. */
async function agree(build: (tag: string) => Step[], t0: number): Promise<void> {
  const tag = `${prefix}{k${run++}}`;
  const twin = new TwinClient();
  let now = t0;
  for (const { advance, op } of build(tag)) {
    now += advance;
    const [onRedis, onTwin] = [await outcome(op(redis, now)), await outcome(op(twin, now))];
    expect(onTwin).toEqual(onRedis);
  }
}

const t0 = fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 });
/** A priority class: none (v1 ARGV), the edges, common classes, or anything in range. */
const share = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(0, 1, 333_333, 500_000, 800_000, 999_999, 1_000_000),
  fc.integer({ min: 0, max: 1_000_000 }),
);
const advance = fc.double({ min: 0, max: 1.5, noNaN: true });
const RUNS = { numRuns: 50 };

describe('twin ≡ Lua with priority classes', () => {
  it('gcra and token_bucket: consume with a class, peek, refund', async () => {
    const params = fc
      .record({ limit: fc.integer({ min: 1, max: 20 }), periodMs: fc.integer({ min: 1, max: 5_000 }), burst: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }) })
      .filter((p) => msUntil(p.burst ?? p.limit, 0, 0, p.limit, p.periodMs) <= MAX_REFILL_MS);
    const step = fc.tuple(advance, fc.constantFrom('consume', 'consume', 'consume', 'peek', 'refund'), fc.integer({ min: 0, max: 12 }), share);
    await fc.assert(
      fc.asyncProperty(params, fc.array(step, { minLength: 1, maxLength: 20 }), t0, async (p, steps, start) => {
        const unit = Math.max(1, Math.ceil(p.periodMs / p.limit));
        for (const fns of [
          { consume: b.gcra, peek: b.gcraPeek, refund: b.gcraRefund },
          { consume: b.tokenBucket, peek: b.tokenBucketPeek, refund: b.tokenBucketRefund },
        ]) {
          await agree(
            (tag) =>
              steps.map(([adv, kind, cost, sharePpm]) => ({
                advance: Math.round(adv * unit * 2),
                op: (c, nowMs) => {
                  const args = { key: `${tag}:s`, ...p, cost, nowMs };
                  if (kind === 'consume') return fns.consume(c, { ...args, sharePpm });
                  return (kind === 'peek' ? fns.peek : fns.refund)(c, args);
                },
              })),
            start,
          );
        }
      }),
      RUNS,
    );
  });

  it('fixed_window, sliding_window, sliding_log and quota: consume with a class, peek, refund', async () => {
    const params = fc.record({ limit: fc.integer({ min: 1, max: 12 }), periodMs: fc.integer({ min: 1, max: 5_000 }), offsetFraction: fc.double({ min: 0, max: 0.999, noNaN: true }) });
    const step = fc.tuple(advance, fc.constantFrom('consume', 'consume', 'consume', 'peek', 'refund'), fc.integer({ min: 0, max: 6 }), share);
    await fc.assert(
      fc.asyncProperty(params, fc.array(step, { minLength: 1, maxLength: 20 }), t0, async (p, steps, start) => {
        const offsetMs = Math.floor(p.offsetFraction * p.periodMs);
        const base = { limit: p.limit, periodMs: p.periodMs };
        const algos = [
          { consume: b.fixedWindow, peek: b.fixedWindowPeek, refund: b.fixedWindowRefund, extra: { ...base, offsetMs }, span: p.periodMs },
          { consume: b.slidingWindow, peek: b.slidingWindowPeek, refund: b.slidingWindowRefund, extra: base, span: p.periodMs },
          { consume: b.slidingLog, peek: b.slidingLogPeek, refund: b.slidingLogPeek, extra: base, span: p.periodMs },
          { consume: b.quota, peek: b.quotaPeek, refund: b.quotaRefund, extra: { limit: p.limit, unit: 'day' as const }, span: 86_400_000 },
        ];
        for (const f of algos) {
          await agree(
            (tag) =>
              steps.map(([adv, kind, cost, sharePpm]) => ({
                advance: Math.round(adv * f.span * 0.7),
                op: (c, nowMs) => {
                  const args = { key: `${tag}:s`, ...f.extra, cost, nowMs } as never;
                  if (kind === 'consume') return (f.consume as (c: Client, a: object) => Promise<unknown>)(c, { ...(args as object), sharePpm });
                  return ((kind === 'peek' ? f.peek : f.refund) as (c: Client, a: object) => Promise<unknown>)(c, args);
                },
              })),
            start,
          );
        }
      }),
      RUNS,
    );
  });

  it('quota of up to 1e15 units: the keep is exact', async () => {
    const step = fc.tuple(advance, fc.double({ min: 0, max: 0.6, noNaN: true }), share);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000_000_000_000 }), fc.array(step, { minLength: 1, maxLength: 10 }), t0, async (limit, steps, start) => {
        await agree(
          (tag) =>
            steps.map(([adv, fraction, sharePpm]) => ({
              advance: Math.round(adv * 20_000_000),
              op: (c, nowMs) => b.quota(c, { key: `${tag}:q`, limit, unit: 'week', cost: Math.round(fraction * limit), sharePpm, nowMs }),
            })),
          start,
        );
      }),
      RUNS,
    );
  });

  it('concurrency_acquire and concurrency_peek with a class, release, renewals and expiry', async () => {
    const step = fc.tuple(advance, fc.constantFrom('acquire', 'acquire', 'release', 'peek'), fc.integer({ min: 0, max: 5 }), share);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 1_000 }), fc.array(step, { minLength: 1, maxLength: 25 }), t0, async (limit, ttl, steps, start) => {
        await agree(
          (tag) =>
            steps.map(([adv, kind, lease, sharePpm]) => ({
              advance: Math.round(adv * ttl * 0.6),
              op: (c, nowMs) => {
                const key = `${tag}:c`;
                if (kind === 'acquire') return b.concurrencyAcquire(c, { key, limit, periodMs: ttl, leaseId: `lease-${lease}`, sharePpm, nowMs });
                if (kind === 'release') return b.concurrencyRelease(c, { key, leaseId: `lease-${lease}`, nowMs });
                return b.concurrencyPeek(c, { key, limit, sharePpm, nowMs });
              },
            })),
          start,
        );
      }),
      RUNS,
    );
  });

  it('batch: every decision with its own class, on every algorithm', async () => {
    const algo = fc.constantFrom('gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota');
    const decision = fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 5 }), share);
    const step = fc.tuple(advance, fc.array(decision, { minLength: 1, maxLength: 6 }));
    await fc.assert(
      fc.asyncProperty(algo, fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 3_000 }), fc.array(step, { minLength: 1, maxLength: 8 }), t0, async (a, limit, periodMs, steps, start) => {
        await agree(
          (tag) =>
            steps.map(([adv, decisions]) => ({
              advance: Math.round(adv * periodMs),
              op: (c, nowMs) =>
                b.batch(c, {
                  algo: a as 'gcra',
                  limit,
                  ...(a === 'quota' ? { unit: 'day' as const } : { periodMs }),
                  nowMs,
                  decisions: decisions.map(([k, cost, sharePpm]) => ({ key: `${tag}:${k}`, cost, sharePpm })),
                }),
            })),
          start,
        );
      }),
      RUNS,
    );
  });

  it('multi_batch: every item of every decision with its own class', async () => {
    const step = fc.tuple(advance, fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 4 }), share, fc.integer({ min: 0, max: 4 }), share), { minLength: 1, maxLength: 4 }));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('gcra,6,3000,8,,', 'sliding_window,6,3000,,,', 'sliding_log,6,3000,,,', 'token_bucket,3,3000,,,'), fc.array(step, { minLength: 1, maxLength: 8 }), t0, async (spec, steps, start) => {
        await agree(
          (tag) =>
            steps.map(([adv, decisions]) => ({
              advance: Math.round(adv * 1_500),
              op: (c, nowMs) =>
                b.multiBatch(c, {
                  count: 2,
                  specs: `${spec};fixed_window,8,2000,,0,`,
                  nowMs,
                  items: decisions.flatMap(([k, c1, s1, c2, s2]) => [
                    { key: `${tag}:a${k}`, cost: c1, sharePpm: s1 },
                    { key: `${tag}:b${k}`, cost: c2, sharePpm: s2 },
                  ]),
                }),
            })),
          start,
        );
      }),
      RUNS,
    );
  });
});

describe('twin ≡ Lua for multi with classes and concurrency items', () => {
  it('multi and multi_peek over random mixes with a concurrency item, blocks, releases and expiry', async () => {
    const rate = fc.record({
      algo: fc.constantFrom('gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota') as fc.Arbitrary<'gcra'>,
      limit: fc.integer({ min: 1, max: 12 }),
      periodMs: fc.integer({ min: 1, max: 5_000 }),
      cost: fc.integer({ min: 0, max: 4 }),
      sharePpm: share,
    });
    const slots = fc.record({ limit: fc.integer({ min: 1, max: 4 }), periodMs: fc.integer({ min: 1, max: 3_000 }), sharePpm: share, first: fc.boolean() });
    const step = fc.tuple(advance, fc.constantFrom('multi', 'multi', 'multi', 'peek', 'release', 'block', 'ask'), fc.integer({ min: 0, max: 4 }), share);
    await fc.assert(
      fc.asyncProperty(fc.array(rate, { minLength: 0, maxLength: 3 }), slots, fc.array(step, { minLength: 1, maxLength: 25 }), t0, async (rates, sl, steps, start) => {
        await agree(
          (tag) =>
            steps.map(([adv, kind, holder, classShare]) => ({
              advance: Math.round(adv * sl.periodMs * 0.5),
              op: (c, nowMs) => {
                const slotKey = `${tag}:slots`;
                if (kind === 'release') return b.concurrencyRelease(c, { key: slotKey, leaseId: `h${holder}`, nowMs });
                if (kind === 'block') return b.block(c, { key: `${tag}:block`, durationMs: sl.periodMs, nowMs });
                const concurrency = { key: slotKey, algo: 'concurrency' as const, limit: sl.limit, periodMs: sl.periodMs, holder: `h${holder}`, sharePpm: classShare ?? sl.sharePpm, cost: kind === 'ask' ? 0 : 1 };
                const others = rates.map((r, i) => ({ key: `${tag}:r${i}`, ...r, ...(r.algo === ('quota' as string) ? { periodMs: undefined, unit: 'day' as const } : {}) }));
                const limits = [{ key: `${tag}:block`, algo: 'block' as const }, ...(sl.first ? [concurrency, ...others] : [...others, concurrency])];
                return (kind === 'peek' ? b.multiPeek : b.multi)(c, { limits, nowMs });
              },
            })),
          start,
        );
      }),
      RUNS,
    );
  });

  it('a holder id whose slot expired is a new holder, also where nothing trimmed it (multi_peek)', async () => {
    const item = (tag: string, holder: string, limit: number, sharePpm?: number) => [{ key: `${tag}:slots`, algo: 'concurrency' as const, limit, periodMs: 100, holder, sharePpm }];
    await agree(
      (tag) => [
        { advance: 0, op: (c, nowMs) => b.multi(c, { limits: item(tag, 'h0', 2), nowMs }) },
        { advance: 50, op: (c, nowMs) => b.multi(c, { limits: item(tag, 'h1', 2), nowMs }) },
        // h0 expired at +100 and is still in the set: it must count as a new holder needing 1 + 1 free
        { advance: 70, op: (c, nowMs) => b.multiPeek(c, { limits: item(tag, 'h0', 2, 500_000), nowMs }) },
        { advance: 0, op: (c, nowMs) => b.multiPeek(c, { limits: item(tag, 'h1', 2, 500_000), nowMs }) },
        { advance: 0, op: (c, nowMs) => b.multiPeek(c, { limits: item(tag, 'h0', 1), nowMs }) },
        { advance: 0, op: (c, nowMs) => b.multi(c, { limits: item(tag, 'h0', 2, 500_000), nowMs }) },
      ],
      1_750_000_000_000,
    );
    const twin = new TwinClient();
    const tag = `${prefix}{exp}`;
    await b.multi(twin, { limits: item(tag, 'h0', 2), nowMs: 0 });
    await b.multi(twin, { limits: item(tag, 'h1', 2), nowMs: 50 });
    expect(await b.multiPeek(twin, { limits: item(tag, 'h0', 2, 500_000), nowMs: 120 })).toMatchObject({ allowed: false, retryAfterMs: 30 });
  });

  it('refuses the same bad input with the same BADARG reply', async () => {
    const key = `${prefix}{bad}:x`;
    const twin = new TwinClient();
    const cases: [{ sha1: string; source: string }, string[]][] = [
      [b.gcraScript, ['5', '1000', '', '', '', '1000001']],
      [b.quotaScript, ['5', 'day', '', '', '', '-1']],
      [b.slidingLogScript, ['5', '1000', '', '', 'x']],
      [b.concurrencyAcquireScript, ['5', '1000', 'l', '', '2000000']],
      [b.concurrencyPeekScript, ['5', '', '1000001']],
      [b.batchScript, ['gcra', '5', '1000', '', '', '', '', '', '1', '1000001']],
      [b.multiBatchScript, ['1', 'gcra,5,1000,,,', '', '', '1', '-3']],
      [b.multiScript, ['', '', 'gcra', '5', '1000', '1', '', '', '', '1000001', '']],
      [b.multiScript, ['', '', 'concurrency', '2', '1000', '1', '', '', '', '', '']],
      [b.multiScript, ['', '', 'concurrency', '2', '1000', '1', '', '', '', '', 'x'.repeat(129)]],
      [b.multiScript, ['', '', 'concurrency', '2', '1000', '2', '', '', '', '', 'h']],
      [b.multiScript, ['', '', 'concurrency', '1000001', '1000', '1', '', '', '', '', 'h']],
      [b.multiScript, ['', '', 'concurrency', '2', '', '1', '', '', '', '', 'h']],
      [b.multiPeekScript, ['', '', 'concurrency', '2', '1000', '1', '', '', '', '', '']],
      [b.multiScript, ['', '', 'gcra', '5', '1000', '1', '', '', '']], // a v1 group of 7: refused by its count
    ];
    for (const [def, argv] of cases) {
      const onRedis = (await redis.eval(def.source, 1, key, ...argv).catch((e: Error) => e)) as Error;
      const onTwin = (await twin.redlimitTwinEval(def.sha1, [key], argv).catch((e: Error) => e)) as Error;
      expect(onRedis).toBeInstanceOf(Error);
      expect(onRedis.message.split(' ')[0]).toBe('BADARG');
      expect(onTwin.message.replace(/^redlimit \w+: Redis replied: /, '')).toBe(onRedis.message.replace(/ script: .*$/s, ''));
    }
    expect(await redis.exists(key)).toBe(0);
  });
});
