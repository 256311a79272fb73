import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createPolicyLimiter, createRateLimiter, InvalidConfigError, ReservationError, type LimitSpec, type RateLimiter } from '../../src/index.js';
import { encodeHandle, newReservation, parseHandle, settleCall } from '../../src/client/reservations.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

// The default layout ('auto') keeps every limit of a subject in one key where the tiers scripts
// can hold them (several gcra / token_bucket / window / quota limits keyed by the id, no blocks;
// on a Cluster too: test/runtime/cluster-subject-layout), and a key per limit elsewhere. A subject whose limits were kept a key per limit
// (an earlier release, or layout: 'per-limit') carries its counts over: its key, holding nothing,
// takes over its limits' own keys' states and deletes them. On the server clock those states are
// in their packed forms (a window's tag, a bucket's clock remainder), read as their own scripts
// read them. Deadlines are not what these tests are about (a generous timeoutMs).
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const HOUR = 3_600_000;
const tiers: LimitSpec[] = [
  { name: 'm', algo: 'gcra', limit: 100, periodMs: HOUR, burst: 100 },
  { name: 'h', algo: 'sliding_window', limit: 100, periodMs: HOUR },
  { name: 'f', algo: 'fixed_window', limit: 100, periodMs: HOUR },
  { name: 't', algo: 'token_bucket', limit: 1000, periodMs: 24 * HOUR, burst: 1000 },
  { name: 'd', algo: 'quota', limit: 1000, unit: 'day' },
];
const names = tiers.map((l) => l.name);

const make = (prefix: string, extra: Record<string, unknown> = {}, limits: LimitSpec[] = tiers): RateLimiter =>
  createRateLimiter({ redis, prefix, limits, denyCache: false, timeoutMs: 10_000, ...extra } as never);

/** Whole units left per limit, by name (what a slow refill cannot change within a test). */
const left = (d: { limits: { name: string; remaining: number }[] }) => Object.fromEntries(d.limits.map((l) => [l.name, l.remaining]));

describe("layout 'auto' (the default)", () => {
  it('keeps an eligible limiter\'s subject in one key, and a key per limit where one key cannot hold them', async () => {
    const prefix = uniquePrefix('auto-keys');
    const rl = make(prefix);
    expect((await rl.limit('ann')).allowed).toBe(true);
    expect(await redis.exists(`${prefix}:{ann}:${names.join('+')}`)).toBe(1);
    expect(await redis.exists(...names.map((n) => `${prefix}:{ann}:${n}`))).toBe(0);
    await rl.close();

    const ineligible: [string, Record<string, unknown>, LimitSpec[]][] = [
      ['sliding_log', {}, [tiers[0]!, { name: 'l', algo: 'sliding_log', limit: 5, periodMs: HOUR }]],
      ['scoped', {}, [tiers[0]!, { ...tiers[4]!, scope: 'team' } as LimitSpec]],
      ['blocks', { blocks: true }, tiers.slice(0, 2)],
      ['pinned', { layout: 'per-limit' }, tiers.slice(0, 2)],
    ];
    for (const [what, extra, limits] of ineligible) {
      const p = uniquePrefix(`auto-${what}`);
      const r = make(p, extra, limits);
      expect((await r.limit({ id: 'ann', scopes: { team: 'x' } })).allowed, what).toBe(true);
      const own = await redis.exists(`${p}:{ann}:${limits[0]!.name}`);
      expect(own, `${what}: the first limit's own key`).toBe(1);
      expect(await redis.exists(`${p}:{ann}:${limits.map((l) => l.name).join('+')}`), what).toBe(0);
      await r.close();
    }
    expect(() => make(uniquePrefix('auto-bad'), { layout: 'tiers' })).toThrow(InvalidConfigError);
  });

  it('an upgrade carries every count over from a key per limit (packed forms on the server clock): peek, limit, and the own keys gone', async () => {
    const prefix = uniquePrefix('auto-upgrade');
    const before = make(prefix, { layout: 'per-limit' });
    for (let i = 0; i < 5; i++) expect((await before.limit('ann', { cost: 2 })).allowed).toBe(true);
    await new Promise((r) => setTimeout(r, 25)); // a bucket's fraction of a unit: its compact form
    const last = await before.limit('ann');
    expect(last.allowed).toBe(true);
    const own = names.map((n) => `${prefix}:{ann}:${n}`);
    const raw = await redis.mget(...own);
    // The forms a key per limit writes on the server clock (what the adoption must read).
    expect(raw[2], 'fixed_window packed').toMatch(/^\d+$/);
    expect(raw[1], 'sliding_window packed').toMatch(/^\d+$/);
    expect(raw[3], 'token_bucket compact').toMatch(/^-\d{19}$/);
    await before.close();

    const after = make(prefix);
    const peeked = await after.peek('ann');
    expect(left(peeked)).toEqual(left(last));
    expect(await redis.exists(...own)).toBe(own.length); // a peek writes nothing
    const d = await after.limit('ann', { cost: 3 });
    expect(d.allowed).toBe(true);
    expect(left(d)).toEqual(Object.fromEntries(Object.entries(left(last)).map(([n, r]) => [n, r - 3])));
    expect(await redis.exists(...own)).toBe(0);
    const value = await redis.get(`${prefix}:{ann}:${names.join('+')}`);
    // Self-describing forms in the subject's key: windows as "start:..." and the bucket without its clock remainder.
    const fields = value!.split('|');
    expect(fields[1]).toMatch(/^\d+:\d+:\d+$/);
    expect(fields[2]).toMatch(/^\d+:\d+$/);
    expect(fields[3]).not.toMatch(/^-\d{19}$/);
    expect(left(await after.limit('ann'))).toEqual(Object.fromEntries(Object.entries(left(d)).map(([n, r]) => [n, r - 1])));
    await after.close();
  });

  it('an upgraded subject\'s reset deletes its limits\' own keys too, so nothing is taken over later; refund and reserve adopt as limit does', async () => {
    const prefix = uniquePrefix('auto-reset');
    const before = make(prefix, { layout: 'per-limit' });
    for (const id of ['ann', 'bob', 'cy']) await before.limit(id, { cost: 10 });
    const after = make(prefix);

    // Some limits named: their own keys go, the others are still taken over.
    await after.reset('ann', { limits: ['h', 'd'] });
    expect(await redis.exists(`${prefix}:{ann}:h`, `${prefix}:{ann}:d`)).toBe(0);
    expect(await redis.exists(`${prefix}:{ann}:m`)).toBe(1);
    expect(left(await after.limit('ann'))).toEqual({ m: 89, h: 99, f: 89, t: 989, d: 999 });
    // Every limit: nothing left to take over.
    await after.reset('bob');
    expect(await redis.exists(...names.map((n) => `${prefix}:{bob}:${n}`))).toBe(0);
    expect(left(await after.limit('bob'))).toEqual({ m: 99, h: 99, f: 99, t: 999, d: 999 });

    // A refund on a subject whose key holds nothing yet: taken over, then given back.
    await after.refund('cy', { cost: { m: 4, d: 4 } });
    expect(await redis.exists(...names.map((n) => `${prefix}:{cy}:${n}`))).toBe(0);
    expect(left(await after.peek('cy'))).toEqual({ m: 94, h: 90, f: 90, t: 990, d: 994 });
    await before.limit('dee', { cost: 10 });
    const r = await after.reserve('dee', { cost: 5 });
    expect(r.allowed).toBe(true);
    expect(left(r)).toEqual({ m: 85, h: 85, f: 85, t: 985, d: 985 });
    expect(await redis.exists(...names.map((n) => `${prefix}:{dee}:${n}`))).toBe(0);
    await before.close();
    await after.close();
  });

  it('a policy limiter keeps a key per limit', async () => {
    const prefix = uniquePrefix('auto-policy');
    const pl = createPolicyLimiter({ redis, prefix, chain: () => [], defaults: tiers.slice(0, 2), timeoutMs: 10_000 } as never);
    expect((await pl.limit('ann')).allowed).toBe(true);
    const keys = await redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.some((k) => k.includes('+'))).toBe(false);
    await pl.close();
  });

  it("a reservation made with a key per limit (in flight across the upgrade) is committed or cancelled by the default limiter, on the subject's key; a handle of other keys is a mismatch before any round trip", async () => {
    const prefix = uniquePrefix('auto-settle');
    const before = make(prefix, { layout: 'per-limit' });
    const own = (id: string) => names.map((n) => `${prefix}:{${id}}:${n}`);
    const subjectKey = (id: string) => `${prefix}:{${id}}:${names.join('+')}`;
    // Made before the upgrade (the default limiter starts while they are in flight).
    const ann = await before.reserve('ann', { cost: 10 });
    const bob = await before.reserve('bob', { cost: 10 });
    await before.limit('bob', { cost: 2 });
    const cy = await before.reserve('cy', { cost: 10 });
    const after = make(prefix);

    // Commit above the estimate: the overage is charged (debt), on the subject's key that took the own keys over.
    expect(ann.handle).not.toBeNull();
    expect(parseHandle(ann.handle).keys).toEqual(own('ann'));
    const committed = await after.commit(ann.handle!, 15);
    expect(committed.status).toBe('committed');
    expect(left(committed)).toEqual({ m: 85, h: 85, f: 85, t: 985, d: 985 });
    expect(await redis.exists(...own('ann'))).toBe(0);
    expect(await redis.exists(subjectKey('ann'))).toBe(1);
    expect(left(await after.peek('ann'))).toEqual({ m: 85, h: 85, f: 85, t: 985, d: 985 });
    // Once: the second settle hears so.
    expect((await after.cancel(ann.handle!)).status).toBe('already-settled');
    expect((await before.commit(ann.handle!, 1)).status).toBe('already-settled');

    // Cancel: every estimate back; the subject's key already holding states (taken over by a decision first).
    expect(left(await after.limit('bob'))).toEqual({ m: 87, h: 87, f: 87, t: 987, d: 987 });
    expect(await redis.exists(...own('bob'))).toBe(0);
    const cancelled = await after.cancel(bob.handle!);
    expect(cancelled.status).toBe('cancelled');
    expect(left(cancelled)).toEqual({ m: 97, h: 97, f: 97, t: 997, d: 997 });
    expect(left(await after.peek('bob'))).toEqual({ m: 97, h: 97, f: 97, t: 997, d: 997 });

    // Handles of other keys: refused before any round trip (each record stays as it was).
    const record = parseHandle(cy.handle).recordKey;
    const held = await redis.get(record);
    // For another subject (the caller expects ann's key).
    expect(() => settleCall(cy.handle!, 'commit', [1], { tiersCount: names.length, tiersAdopt: names.join('+'), expectKeys: [subjectKey('ann')] })).toThrow(ReservationError);
    // Keys of two subjects (one tag), another order, a block key beside them, another limiter's limits.
    const tagged = (id: string) => names.map((n) => `${prefix}:{team}:${n}:${id}`);
    const forged = [
      [...tagged('cy').slice(0, 2), ...tagged('dee').slice(2)],
      [...own('cy')].reverse(),
      [...own('cy'), `${prefix}:{cy}:!block:cy`],
      own('cy').slice(0, 2),
    ];
    for (const keys of forged) {
      const err = await after.commit(encodeHandle(newReservation(keys)), 1).then(() => null, (e: unknown) => e);
      expect(err, keys.join(' ')).toBeInstanceOf(ReservationError);
      expect((err as ReservationError).status).toBe('mismatch');
    }
    const blocked = make(prefix, { layout: 'per-limit', blocks: true });
    const withBlock = await blocked.reserve('dee', { cost: 1 });
    expect(parseHandle(withBlock.handle).keys).toHaveLength(names.length + 1);
    const err = await after.cancel(withBlock.handle!).then(() => null, (e: unknown) => e);
    expect((err as ReservationError).status).toBe('mismatch');
    expect(await redis.get(record)).toBe(held);
    expect(await redis.exists(...own('cy'))).toBe(names.length);
    // The right limiter still settles cy's (below the estimate: the difference given back).
    const ok = await after.commit(cy.handle!, 4);
    expect(left(ok)).toEqual({ m: 96, h: 96, f: 96, t: 996, d: 996 });
    await blocked.close();
    await before.close();
    await after.close();
  });
});
