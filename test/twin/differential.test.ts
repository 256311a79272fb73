import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { InvalidArgumentError, KEY_ERROR_CODES, ScriptError } from '../../src/errors.js';
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
    expect(onRedis).toEqual({ error: `redlimit gcra: Redis replied: WRONGSTATE redlimit gcra: key ${key} does not hold gcra state` });
    expect(onTwin).toEqual(onRedis);
    const badArg = { key, limit: 1, periodMs: 1000, burst: 2_000_000_000, nowMs: 5 };
    const refused = [await redis.evalsha(b.gcraScript.sha1, 1, key, '1', '1000', '0').catch((e: Error) => e), await twin.redlimitTwinEval(b.gcraScript.sha1, [key], ['1', '1000', '0']).catch((e: Error) => e)];
    expect((refused[0] as Error).message.split(' ')[0]).toBe('BADARG'); // the reply's first word is its code
    expect((refused[1] as ScriptError).redisCode).toBe('BADARG'); // and the twin answers with the same
    await expect(b.gcra(twin, badArg)).rejects.toBeInstanceOf(InvalidArgumentError); // refused in TS first
  });

  /**
   * Every algorithm meeting another's state, in a script of its own, in batch and in multi_batch:
   * the Lua and the twin answer with the same code word (WRONGTYPE when the Redis types differ,
   * WRONGSTATE when a value of the right type is not this algorithm's) and, in a batch, the same
   * marker. Some pairs are not errors on either side of the Lua; they are left out: a gcra "ms:num"
   * and a window counter "start:count" read as each other; and (issue 17) the integer forms
   * Redis int-encodes, which carry no algorithm: gcra's integer read by sliding_window, and
   * block's (its end in ms) and gcra's / the windows' / token_bucket's integers read as each other
   * (a token bucket's integer is negative, so gcra and the windows refuse it, and it refuses theirs).
   */
  const writers: Record<string, (client: object, key: string) => Promise<unknown>> = {
    gcra: (c, key) => b.gcra(c, { key, limit: 5, periodMs: 60_000, nowMs: T }),
    token_bucket: (c, key) => b.tokenBucket(c, { key, limit: 5, periodMs: 60_000, nowMs: T }),
    fixed_window: (c, key) => b.fixedWindow(c, { key, limit: 5, periodMs: 60_000, nowMs: T }),
    sliding_window: (c, key) => b.slidingWindow(c, { key, limit: 5, periodMs: 60_000, nowMs: T }),
    sliding_log: (c, key) => b.slidingLog(c, { key, limit: 5, periodMs: 60_000, nowMs: T }),
    block: (c, key) => b.block(c, { key, durationMs: 60_000, nowMs: T }),
  };
  const readers: Record<string, { single: ((client: object, key: string) => Promise<unknown>) | null; spec: string }> = {
    gcra: { single: (c, key) => b.gcra(c, { key, limit: 5, periodMs: 60_000, nowMs: T + 1 }), spec: 'gcra,5,60000,,,' },
    token_bucket: { single: (c, key) => b.tokenBucket(c, { key, limit: 5, periodMs: 60_000, nowMs: T + 1 }), spec: 'token_bucket,5,60000,,,' },
    fixed_window: { single: (c, key) => b.fixedWindow(c, { key, limit: 5, periodMs: 60_000, nowMs: T + 1 }), spec: 'fixed_window,5,60000,,0,' },
    sliding_window: { single: (c, key) => b.slidingWindow(c, { key, limit: 5, periodMs: 60_000, nowMs: T + 1 }), spec: 'sliding_window,5,60000,,,' },
    sliding_log: { single: (c, key) => b.slidingLog(c, { key, limit: 5, periodMs: 60_000, nowMs: T + 1 }), spec: 'sliding_log,5,60000,,,' },
    quota: { single: (c, key) => b.quota(c, { key, limit: 5, unit: 'day', nowMs: T + 1 }), spec: 'quota,5,,,0,day' },
    block: { single: null, spec: 'block,,,,,' },
  };
  const readAsEachOther = new Set([
    'gcra>fixed_window', 'gcra>quota', 'fixed_window>gcra', 'fixed_window>quota',
    'gcra>sliding_window', 'gcra>block', 'token_bucket>block', 'block>gcra', 'block>fixed_window', 'block>sliding_window',
  ]);
  const pairs = Object.keys(writers).flatMap((w) => Object.keys(readers).filter((r) => r !== w && !readAsEachOther.has(`${w}>${r}`)).map((r) => [w, r] as const));

  it.each(pairs)('%s state read by %s: the same code from the Lua and the twin, alone and in batches', async (writer, reader) => {
    const key = `${prefix}{st${run++}}`;
    const twin = new TwinClient();
    await writers[writer]!(redis, `${key}x`);
    await writers[writer]!(twin, `${key}x`);
    const codes: string[] = [];
    const { single, spec } = readers[reader]!;
    if (single) {
      const [onRedis, onTwin] = [await outcome(single(redis, `${key}x`)), await outcome(single(twin, `${key}x`))];
      expect(onTwin).toEqual(onRedis);
      codes.push(((onRedis as { error?: string }).error ?? '').split(': Redis replied: ')[1]?.split(' ')[0] ?? 'none');
    }
    if (reader !== 'block') {
      const [algo, limit, periodMs, , offsetMs, unit] = spec.split(',');
      const args = {
        algo: algo as 'gcra',
        limit: Number(limit),
        periodMs: periodMs ? Number(periodMs) : undefined,
        offsetMs: offsetMs ? Number(offsetMs) : undefined,
        unit: (unit || undefined) as 'day' | undefined,
        nowMs: T + 2,
        decisions: [`${key}a`, `${key}x`, `${key}a`].map((k) => ({ key: k, cost: 1 })),
      };
      const [onRedis, onTwin] = [await b.batch(redis, args), await b.batch(twin, args)];
      expect(onTwin).toEqual(onRedis);
      expect(onRedis.decisions[1]!.allowed).toBe(-1);
      codes.push(KEY_ERROR_CODES[onRedis.decisions[1]!.remaining]!);
    }
    const mb = { count: 2, specs: `gcra,5,60000,,,;${spec}`, nowMs: T + 3, items: [`${key}g`, `${key}x`, `${key}h`, `${key}y`].map((k) => ({ key: k, cost: 1 })) };
    const [onRedis, onTwin] = [await b.multiBatch(redis, mb), await b.multiBatch(twin, mb)];
    expect(onTwin).toEqual(onRedis);
    expect(onRedis.items.map((x) => x.allowed)).toEqual([-1, -1, 1, 1]);
    codes.push(KEY_ERROR_CODES[onRedis.items[1]!.remaining]!);
    // One code for the pair, wherever it was met: another Redis type, or a value that is not this state.
    expect(new Set(codes).size).toBe(1);
    expect(['WRONGTYPE', 'WRONGSTATE']).toContain(codes[0]);
    expect(codes[0]).toBe(REDIS_TYPE[writer] === REDIS_TYPE[reader] ? 'WRONGSTATE' : 'WRONGTYPE');
  });
});

const T = 1_750_000_000_000;
const REDIS_TYPE: Record<string, string> = { gcra: 'string', fixed_window: 'string', quota: 'string', sliding_window: 'string', block: 'string', token_bucket: 'string', sliding_log: 'zset' };
