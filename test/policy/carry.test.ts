import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { parseScriptArgs } from '../../src/twin/args.js';
import { twinPolicyCarry } from '../../src/twin/policy.js';
import type { RedisClientLike } from '../../src/runtime/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('carry');
});
afterAll(() => redis.quit());

/** A twin client that also runs policy_carry (registered in src/twin/scripts.ts by the lead). */
function twinWithCarry(): { client: RedisClientLike; twin: TwinClient } {
  const twin = new TwinClient();
  const client = {
    redlimitTwinEval(sha: string, keys: string[], argv: string[]): Promise<unknown> {
      if (sha !== b.policyCarryScript.sha1) return twin.redlimitTwinEval(sha, keys, argv);
      try {
        const { args } = parseScriptArgs(b.policyCarryScript, keys, argv);
        const override = args.now_ms as number | undefined;
        return Promise.resolve(twinPolicyCarry({ store: twin.store, keys, args, now: override ?? Date.now(), simulated: override !== undefined }));
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
  return { client: client as unknown as RedisClientLike, twin };
}

type Algo = 'gcra' | 'token_bucket' | 'fixed_window' | 'sliding_window' | 'sliding_log' | 'quota';
interface Spec {
  algo: Algo;
  limit: number;
  periodMs: number;
  burst?: number;
  unit?: 'day' | 'week' | 'month';
}
const capacity = (s: Spec) => (s.algo === 'gcra' || s.algo === 'token_bucket' ? (s.burst ?? s.limit) : s.limit);
const fromOf = (s: Spec) => `${s.algo}:${s.limit}:${s.algo === 'quota' ? 0 : s.periodMs}:${s.burst ?? 0}:0:${s.unit ?? ''}`;
const item = (key: string, s: Spec, cost: number) => ({ key, algo: s.algo, limit: s.limit, cost, ...(s.algo === 'quota' ? { unit: s.unit! } : { periodMs: s.periodMs }), ...(s.burst ? { burst: s.burst } : {}) });
const markerOf = (target: string) => target.replace(/\}:/, '}:!carry:');
const carryArgs = (target: string, sources: string[], to: Spec, from: Spec[], nowMs: number) => ({
  targetKey: target,
  markerKey: markerOf(target),
  keys: sources,
  algo: to.algo,
  limit: to.limit,
  from: from.map(fromOf).join(','),
  ...(to.algo === 'quota' ? { unit: to.unit! } : { periodMs: to.periodMs }),
  ...(to.burst ? { burst: to.burst } : {}),
  nowMs,
});

const ALGOS: Algo[] = ['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota'];
const specOf = (algo: Algo) =>
  fc.record({ limit: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 1_000_000_000 })), periodMs: fc.integer({ min: 1_000, max: 86_400_000 }), burst: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }) }).map(
    (r): Spec => (algo === 'quota' ? { algo, limit: r.limit, periodMs: 0, unit: 'day' } : algo === 'gcra' || algo === 'token_bucket' ? { algo, ...r } : { algo, limit: r.limit, periodMs: r.periodMs }),
  );

describe('policy_carry: twin ≡ Lua', () => {
  it('every algorithm: after uses under the old limits (and maybe under the new, before the carry), the carry and the new key read the same on Redis and on the twin', async () => {
    const arb = fc.constantFrom(...ALGOS).chain((algo) =>
      fc.record({
        algo: fc.constant(algo),
        from: specOf(algo),
        to: specOf(algo),
        uses: fc.array(fc.tuple(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 1, max: 8 })), { maxLength: 8 }),
        early: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 2 }),
        gap: fc.integer({ min: 0, max: 5_000 }),
        t0: fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ from, to, uses, early, gap, t0 }) => {
        const tag = `{c${run++}}`;
        const source = `${prefix}${tag}:old`;
        const target = `${prefix}${tag}:new`;
        const { client: twin } = twinWithCarry();
        let now = t0;
        for (const [advance, cost] of uses) {
          now += advance;
          const args = { nowMs: now, limits: [item(source, from, cost)] } as never;
          expect(await b.multi(twin, args)).toEqual(await b.multi(redis, args));
        }
        now += gap;
        // Calls on the new key before the carry (an instance whose carry failed): added to, not lost.
        let spentEarly = 0;
        for (const cost of early) {
          const a = { nowMs: now, limits: [item(target, to, cost)] } as never;
          const r = await b.multi(redis, a);
          expect(await b.multi(twin, a)).toEqual(r);
          if (r.allowed) spentEarly += cost;
        }
        const before = await b.multiPeek(redis, { nowMs: now, limits: [item(source, from, 0), item(target, to, 0)] } as never);
        const args = carryArgs(target, [source], to, [from], now);
        const onRedis = await b.policyCarry(redis, args);
        expect(await b.policyCarry(twin, args)).toEqual(onRedis);
        // What the carry promises: the same fraction left, floored, less what the new key already spent, never below empty.
        const left = Math.max(0, Math.min(before.limits[0]!.remaining, capacity(from)));
        // In BigInt: left × capacity passes 2^53 for limits near 1e9, and a float product divided back can land just under the integer.
        const share = Number((BigInt(left) * BigInt(capacity(to))) / BigInt(capacity(from)));
        const peek = { nowMs: now, limits: [item(target, to, 0)] } as never;
        const [r, t] = [await b.multiPeek(redis, peek), await b.multiPeek(twin, peek)];
        expect(t).toEqual(r);
        const room = before.limits[1]!.remaining;
        if (spentEarly === 0) expect(room).toBe(capacity(to));
        if (onRedis.source === 1) expect(r.limits[0]!.remaining).toBe(Math.max(0, room - (capacity(to) - share)));
        expect(r.limits[0]!.remaining).toBeLessThanOrEqual(capacity(to));
        // Twice is once: the target exists now (or nothing was used).
        const again = await b.policyCarry(redis, args);
        expect(await b.policyCarry(twin, args)).toEqual(again);
        expect(again.carried).toBe(false);
      }),
      {
        numRuns: 120,
        // Two runs CI met: a source left full with limits near 1e9, where a float share came out one short.
        examples: [
          [{ algo: 'fixed_window', from: { algo: 'fixed_window', limit: 999_999_982, periodMs: 1_000 }, to: { algo: 'fixed_window', limit: 794_857_817, periodMs: 1_000 }, uses: [[0, 1]], early: [], gap: 1, t0: 1_618_749_999_999 }],
          [{ algo: 'sliding_log', from: { algo: 'sliding_log', limit: 997_802_259, periodMs: 1_000 }, to: { algo: 'sliding_log', limit: 22_415_926, periodMs: 1_000 }, uses: [[0, 1]], early: [], gap: 1_000, t0: 1_600_000_000_000 }],
        ],
      },
    );
  });

  it('the newest existing source is read; refusals are the same (another algorithm, a count mismatch, bad limits)', async () => {
    const { client: twin } = twinWithCarry();
    const tag = `{c${run++}}`;
    const fw = (limit: number): Spec => ({ algo: 'fixed_window', limit, periodMs: 86_400_000 });
    const now = 1_700_000_000_000;
    for (const c of [redis, twin]) await b.multi(c, { nowMs: now, limits: [item(`${prefix}${tag}:e0`, fw(10), 6)] } as never);
    const args = carryArgs(`${prefix}${tag}:e2`, [`${prefix}${tag}:e1`, `${prefix}${tag}:e0`], fw(5), [fw(20), fw(10)], now);
    // keys of the form prefix{tag}:name: the marker is prefix{tag}:!carry:name
    const r = await b.policyCarry(redis, args);
    expect(await b.policyCarry(twin, args)).toEqual(r);
    expect(r).toEqual({ carried: true, source: 2, used: 3, remaining: 2 }); // 4 of 10 left -> 2 of 5
    const bad = [
      { ...args, from: 'gcra:10:1000:0:0:,fixed_window:10:86400000:0:0:' },
      { ...args, from: fromOf(fw(10)) },
      { ...args, from: 'fixed_window:0:86400000:0:0:,fixed_window:10:86400000:0:0:' },
      { ...args, from: 'nonsense,fixed_window:10:86400000:0:0:' },
    ];
    for (const a of bad) {
      const onRedis = await b.policyCarry(redis, { ...a, targetKey: `${prefix}${tag}:x` }).then(() => 'ok', (e: Error) => e.message.replace(/ script: .*$/s, ''));
      const onTwin = await b.policyCarry(twin, { ...a, targetKey: `${prefix}${tag}:x` }).then(() => 'ok', (e: Error) => e.message.replace(/ script: .*$/s, ''));
      expect(onRedis).toMatch(/BADARG redlimit policy_carry/);
      expect(onTwin).toBe(onRedis);
    }
  });
});
