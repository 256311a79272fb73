import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { gcra, tokenBucket } from '../../generated/index.js';
import { MAX_REFILL_MS, msUntil } from '../../src/twin/bucket.js';
import { BucketOracle } from '../support/bucket-oracle.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

let redis: Redis;
let prefix: string;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('equiv');
});
afterAll(() => redis.quit());

/** Parameters across the whole valid space, biased toward the awkward ends. */
const params = fc
  .record({
    limit: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 1_000_000_000 })),
    periodMs: fc.oneof(fc.integer({ min: 1, max: 5_000 }), fc.integer({ min: 1, max: 31_622_400_000 })),
    burstFactor: fc.oneof(fc.constant(1), fc.double({ min: 0.01, max: 4, noNaN: true })),
  })
  .map(({ limit, periodMs, burstFactor }) => ({ limit, periodMs, burst: Math.max(1, Math.min(1_000_000_000, Math.round(limit * burstFactor))) }))
  .filter((p) => msUntil(p.burst, 0, 0, p.limit, p.periodMs) <= MAX_REFILL_MS);

/** A call: how far the clock moved (relative to one unit's refill time) and the cost. */
const step = fc.record({
  advance: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 2, noNaN: true }), fc.integer({ min: 0, max: 3 })),
  costFactor: fc.oneof(fc.constant(0), fc.constant(1), fc.double({ min: 0, max: 1.3, noNaN: true })),
});

describe('gcra and token_bucket decide identically, and exactly', () => {
  it('agree with each other and with a BigInt oracle on random call sequences', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(params, fc.array(step, { minLength: 1, maxLength: 25 }), fc.integer({ min: 0, max: 2 ** 46 }), async (p, steps, t0) => {
        const id = run++;
        const oracle = new BucketOracle(p);
        const unitMs = Math.max(1, Math.ceil(p.periodMs / p.limit));
        let now = t0;
        for (const s of steps) {
          now += Math.round(s.advance * unitMs * Math.max(1, p.burst / 4));
          const cost = Math.min(1_000_000_000, Math.round(s.costFactor * p.burst));
          const args = { ...p, cost, nowMs: now };
          const [a, b] = await Promise.all([
            gcra(redis, { key: `${prefix}g${id}`, ...args }),
            tokenBucket(redis, { key: `${prefix}t${id}`, ...args }),
          ]);
          const expected = oracle.take(cost, now);
          expect(a).toEqual(expected);
          expect(b).toEqual(expected);
        }
      }),
      { numRuns: 150 },
    );
  });
});
