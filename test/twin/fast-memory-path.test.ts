import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { limitThen } from '../../src/client/limiter.js';
import { createRateLimiter, type Decision, type RateLimiter } from '../../src/index.js';

/**
 * A limiter without Redis decides a plain id's call without options on its in-memory fast path
 * (RateLimiter.decideInMemory: no target built for an id seen once, a target cached on the second
 * sighting). The reference is the general path of the same limiter's code, taken by passing an
 * empty options object: the same decision for every call, the same refusal of bad ids, and the
 * same expiry (keys coming back after their state expired, ids seen once, ids that recur).
 */
const T0 = 1_764_000_000_000;

type Outcome = { ok: unknown } | { error: string; name: string };

async function outcome(p: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: await p() };
  } catch (err) {
    return { error: (err as Error).message, name: (err as Error).name };
  }
}

const ALGOS = ['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota'] as const;

function limits(algo: (typeof ALGOS)[number], limit: number, periodMs: number) {
  // A quota counts per calendar unit (its own script: through runParsed, not a bound consume).
  return [algo === 'quota' ? { name: 'm', algo, limit, unit: 'day' } : { name: 'm', algo, limit, periodMs }] as never;
}

/** A few recurring ids, ids seen once (fresh), and bad ids (refused the same way on both paths). */
const idOf = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 7 }).map((i) => `r${i}`) },
  { weight: 3, arbitrary: fc.constant('fresh') },
  { weight: 1, arbitrary: fc.constantFrom('', 'a{b', 'c}d', 'x\uD800', 'y'.repeat(513)) },
);

describe('in-memory fast path', () => {
  it('decides exactly as the general path: every algorithm, recurring and fresh ids, expiry, bad ids', async () => {
    const step = fc.record({ id: idOf, advance: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 3_000 })) });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ALGOS),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(1, 10, 50, 1_000),
        fc.array(step, { minLength: 1, maxLength: 300 }),
        async (algo, limit, periodMs, steps) => {
          let now = T0;
          const clock = () => now;
          const fast = createRateLimiter({ limits: limits(algo, limit, periodMs), clock });
          const general = createRateLimiter({ limits: limits(algo, limit, periodMs), clock });
          let fresh = 0;
          for (const s of steps) {
            now += s.advance;
            const id = s.id === 'fresh' ? `f${fresh++}` : s.id;
            const a = await outcome(() => fast.limit(id));
            const b = await outcome(() => general.limit(id, {}));
            expect(a).toEqual(b);
          }
          expect(fast.stats().fallbackKeys).toBe(general.stats().fallbackKeys);
          await fast.close();
          await general.close();
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);

  it('an id seen once builds no target; an id that comes back is cached and its decisions stay the same', async () => {
    let now = T0;
    const lim = createRateLimiter({ limits: limits('gcra', 3, 100), clock: () => now });
    const ref = createRateLimiter({ limits: limits('gcra', 3, 100), clock: () => now });
    const byId = (l: RateLimiter) => (l as unknown as { subjects: { byId: Map<string, unknown> } }).subjects.byId;
    for (let i = 0; i < 5_000; i++) {
      expect(await lim.limit(`once:${i}`)).toEqual(await ref.limit(`once:${i}`, {}));
      if (i % 50 === 0) now++;
    }
    // A false positive of the once-seen filter caches an id a call early: a few, not all.
    expect(byId(lim).size).toBeLessThan(1_000);
    for (let pass = 0; pass < 4; pass++) {
      for (let i = 0; i < 500; i++) expect(await lim.limit(`again:${i}`)).toEqual(await ref.limit(`again:${i}`, {}));
      now += 30; // some state expires between passes, some not
    }
    for (let i = 0; i < 500; i++) expect(byId(lim).has(`again:${i}`)).toBe(true);
    await lim.close();
    await ref.close();
  });

  it('a limiter that sees few ids keeps a small once-seen filter (the full one only past 512 misses); the pinned table only on the fast path', async () => {
    let now = T0;
    const lim = createRateLimiter({ limits: limits('gcra', 3, 100), clock: () => now });
    const subjects = () => (lim as unknown as { subjects: { seen: Uint8Array | null; pinned: Uint8Array | null } }).subjects;
    // The general path (options given), as every Redis limiter resolves subjects.
    for (let i = 0; i < 300; i++) await lim.limit(`few:${i % 100}`, {});
    expect(subjects().seen!.length).toBeLessThanOrEqual(4_096);
    expect(subjects().pinned).toBeNull();
    for (let i = 0; i < 600; i++) await lim.limit(`many:${i}`, {});
    expect(subjects().seen!.length).toBe(1 << 18);
    await lim.limit('fast');
    expect(subjects().pinned).not.toBeNull();
    now++;
    await lim.close();
  });

  it('more recurring ids than the cache holds (it is cleared and refilled): the same decisions', async () => {
    let now = T0;
    const lim = createRateLimiter({ limits: limits('gcra', 2, 1_000), clock: () => now });
    const ref = createRateLimiter({ limits: limits('gcra', 2, 1_000), clock: () => now });
    for (let pass = 0; pass < 3; pass++) {
      for (let i = 0; i < 12_000; i++) {
        const a = await lim.limit(`many:${i}`);
        const b = await ref.limit(`many:${i}`, {});
        if (a.remaining !== b.remaining || a.allowed !== b.allowed || a.resetAfterMs !== b.resetAfterMs) expect(a).toEqual(b);
      }
      now += 400;
    }
    expect(lim.stats().fallbackKeys).toBe(ref.stats().fallbackKeys);
    await lim.close();
    await ref.close();
  }, 60_000);

  it('metrics and the policy hook (limitThen) see the fast path as any other call; a bad id rejects', async () => {
    const seen: string[] = [];
    const lim = createRateLimiter({ limits: limits('gcra', 1, 60_000), clock: () => T0, metrics: { decision: (e) => seen.push(`${e.outcome}:${e.source}`) } });
    expect((await lim.limit('u')).allowed).toBe(true);
    expect((await lim.limit('u')).allowed).toBe(false);
    await expect(lim.limit('')).rejects.toThrow(/non-empty/);
    expect(seen).toEqual(['allowed:fallback', 'denied:fallback']);
    const after = (d: Decision, arg: string) => ({ ...d, tag: arg });
    const fast = await limitThen(lim, 'v', undefined, after, 'x');
    const general = await limitThen(lim, 'w', {}, after, 'x');
    expect(fast).toEqual(general);
    expect(fast.tag).toBe('x');
    await expect(limitThen(lim, 'a{b', undefined, after, 'x')).rejects.toThrow(/without \{ or \}/);
    await lim.close();
  });
});
