import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * twin ≡ Lua for fair_share: random tenants, weights, costs and clock advances (past windows and
 * past the active window, so tenants leave and come back), with small max_tenants so the bound is
 * hit, on a real Redis and on the twin through the same generated binding.
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('fairdiff');
});
afterAll(() => redis.quit());

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

const params = fc.record({
  algo: fc.constantFrom('fixed_window' as const, 'sliding_window' as const),
  limit: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 1_000_000_000 })),
  periodMs: fc.integer({ min: 1, max: 5_000 }),
  extraWindowMs: fc.integer({ min: 0, max: 5_000 }),
  maxTenants: fc.integer({ min: 1, max: 6 }),
  t0: fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }),
});
const step = fc.record({
  advance: fc.double({ min: 0, max: 1.2, noNaN: true }),
  tenant: fc.integer({ min: 0, max: 7 }),
  weight: fc.constantFrom(1, 1, 1, 2, 3, 1_000_000),
  costShare: fc.double({ min: 0, max: 0.6, noNaN: true }),
  badWindow: fc.integer({ min: 0, max: 39 }).map((x) => x === 0),
});

describe('twin ≡ Lua: fair_share', () => {
  it('random tenants, weights, costs and clocks', async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(params, fc.array(step, { minLength: 1, maxLength: 30 }), async (p, steps) => {
        const tag = `${prefix}{k${run++}}`;
        const keys = { stateKey: `${tag}:state`, tenantsKey: `${tag}:tenants`, activeKey: `${tag}:active` };
        const twin = new TwinClient();
        const activeWindowMs = p.periodMs + p.extraWindowMs;
        let now = p.t0;
        for (const s of steps) {
          now += Math.round(s.advance * activeWindowMs);
          const args: b.FairShareArgs = {
            ...keys,
            algo: p.algo,
            limit: p.limit,
            periodMs: p.periodMs,
            activeWindowMs: s.badWindow ? p.periodMs - 1 || 1 : activeWindowMs,
            tenant: `t${s.tenant}`,
            weight: s.weight,
            cost: Math.max(1, Math.round(s.costShare * p.limit)),
            maxTenants: p.maxTenants,
            nowMs: now,
          };
          const onRedis = await outcome(b.fairShare(redis, args));
          const onTwin = await outcome(b.fairShare(twin, args));
          expect(onTwin).toEqual(onRedis);
          const reply = onRedis as { ok?: b.FairShareResult };
          if (reply.ok) seen.add(reply.ok.reason);
        }
      }),
      { numRuns: 80 },
    );
    // every branch of the decision was compared
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4]);
  });
});
