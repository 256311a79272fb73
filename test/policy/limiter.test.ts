import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createPolicyLimiter, type PolicyLimiter, type PolicyLimiterOptions } from '../../src/policy/index.js';
import { createRateLimiter } from '../../src/client/limiter.js';
import { ioredis, UNHURRIED, uniquePrefix } from '../support/redis.js';

const DAY = 86_400_000;
const fw = (name: string, limit: number) => ({ name, algo: 'fixed_window' as const, limit, periodMs: DAY });
const gcra = (name: string, limit: number, burst?: number) => ({ name, algo: 'gcra' as const, limit, periodMs: DAY, ...(burst ? { burst } : {}) });
const who = { author: 'test' };

let redis: Redis;
const open: PolicyLimiter[] = [];
beforeAll(() => {
  redis = ioredis();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});
afterAll(() => redis.disconnect());

function make(o: Partial<PolicyLimiterOptions> & { prefix: string }): PolicyLimiter {
  const l = createPolicyLimiter({ redis, chain: (s) => ['default', `user:${typeof s === 'string' ? s : s.id}`], ...o });
  open.push(l);
  return l;
}

async function admit(l: PolicyLimiter, subject: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await l.limit(subject)).allowed) ok++;
  return ok;
}

/** Waits (bounded by calls, not by time) until `l` decides at `version`. */
async function until(l: PolicyLimiter, subject: string, version: number): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if ((await l.peek(subject)).policyVersion >= version) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never reached version ${version}`);
}

describe('policy limiter: changes', () => {
  it('a change made by another instance is obeyed: as-is keeps used units (lower: no more than the new limit; raise: nothing forgotten)', async () => {
    const prefix = uniquePrefix('pasis').slice(0, -1);
    const a = make({ prefix });
    const b = make({ prefix });
    await a.policies.set('default', { limits: [fw('rpm', 10)] }, who);
    expect(await admit(b, 'u', 6)).toBe(6);
    const v = await a.policies.set('default', { limits: [fw('rpm', 4)] }, { author: 'ops', reason: 'lower' });
    await until(b, 'u', v);
    expect(await admit(b, 'u', 5)).toBe(0); // 6 used > 4
    const v2 = await a.policies.set('default', { limits: [fw('rpm', 8)] }, { author: 'ops', reason: 'raise' });
    await until(b, 'u', v2);
    expect(await admit(b, 'u', 5)).toBe(2); // 6 used stay used: 2 more
    const d = await b.limit('u');
    expect(d).toMatchObject({ allowed: false, limit: 8, deniedBy: 'rpm', policyVersion: v2 });
  });

  it('gcra keeps its stored time under a lower burst: never more than the new capacity', async () => {
    const prefix = uniquePrefix('pgcra').slice(0, -1);
    const a = make({ prefix });
    await a.policies.set('default', { limits: [gcra('rpm', 100, 100)] }, who);
    expect(await admit(a, 'u', 10)).toBe(10);
    await a.policies.set('default', { limits: [gcra('rpm', 100, 5)] }, who);
    expect(await admit(a, 'u', 10)).toBe(0); // the 10 taken weigh on a burst of 5
    await a.policies.set('default', { limits: [gcra('rpm', 100, 50)] }, who);
    expect(await admit(a, 'u', 50)).toBe(40);
  });

  it('carryOver reset starts the changed limits fresh (a new key epoch), other limits keep state', async () => {
    const prefix = uniquePrefix('preset').slice(0, -1);
    const a = make({ prefix });
    await a.policies.set('default', { limits: [fw('rpm', 5), fw('rpd', 100)] }, who);
    await a.policies.set('user:u', { limits: [fw('rpm', 5)] }, who);
    expect(await admit(a, 'u', 5)).toBe(5);
    const v = await a.policies.set('user:u', { limits: [fw('rpm', 3)] }, { author: 'ops', carryOver: 'reset' });
    const d = await a.limit('u');
    expect(d).toMatchObject({ allowed: true, policyVersion: v });
    expect(d.limits.map((l) => [l.name, l.remaining])).toEqual([
      ['rpd', 94],
      ['rpm', 2],
    ]);
    expect(await redis.exists(`${prefix}:{u}:rpm-r${v.toString(36)}`)).toBe(1);
  });

  it('rollback under use: the old values apply, as a new version', async () => {
    const prefix = uniquePrefix('proll').slice(0, -1);
    const a = make({ prefix });
    const v1 = await a.policies.set('default', { limits: [fw('rpm', 3)] }, who);
    await a.policies.set('default', { limits: [fw('rpm', 100)] }, who);
    expect(await admit(a, 'u', 5)).toBe(5);
    const v3 = await a.policies.rollback('default', v1, { author: 'ops', reason: 'too generous' });
    expect(await admit(a, 'u', 3)).toBe(0);
    expect((await a.limit('u')).policyVersion).toBe(v3);
  });

  it('a cached resolution costs no Redis read; a change costs one', async () => {
    const prefix = uniquePrefix('pcost').slice(0, -1);
    const a = make({ prefix });
    for (let i = 0; i < 1000 && !a.stats().subscribed; i++) await new Promise((r) => setTimeout(r, 5)); // subscribing drops the cache once
    await a.policies.set('default', { limits: [fw('rpm', 1000)] }, who);
    await a.limit('u');
    const reads = a.stats().policyReads;
    for (let i = 0; i < 50; i++) await a.limit('u');
    expect(a.stats().policyReads).toBe(reads);
    await a.policies.set('user:u', { limits: [fw('rpm', 999)] }, who);
    await a.limit('u');
    await a.limit('u');
    expect(a.stats().policyReads - reads).toBeLessThanOrEqual(1);
  });

  it('a corrupted entry written by hand never crashes a decision: reported, the last good version used', async () => {
    const prefix = uniquePrefix('pcorrupt').slice(0, -1);
    const a = make({ prefix });
    await a.policies.set('default', { limits: [fw('rpm', 3)] }, who);
    expect(await admit(a, 'u', 1)).toBe(1);
    await redis.set(`${prefix}:{policies}:doc:default`, '{"version": 99, "op": "set", "policy": {"limits": [{"name":"rpm","algo":"gcra","limit":-5}]}}');
    await redis.incr(`${prefix}:{policies}:version`);
    await redis.publish('redlimit:policy', 'garbage');
    a['snapshot']!.drop();
    const d = await a.limit('u');
    expect(d).toMatchObject({ allowed: true, limit: 3, remaining: 1 });
    expect(a.stats().corruptEntries).toBeGreaterThan(0);
    expect(a.stats().warnings.join()).toMatch(/policy default: the stored entry is not a valid policy .*last good version is used/);
    await redis.set(`${prefix}:{policies}:doc:default`, 'not json at all');
    await redis.incr(`${prefix}:{policies}:version`);
    a['snapshot']!.drop();
    expect(await a.limit('u')).toMatchObject({ allowed: true, limit: 3, remaining: 0 });
  });

  it('a policy key of another Redis type (written by hand) never crashes a decision: reported, the last known version used', async () => {
    const prefix = uniquePrefix('pwrongtype').slice(0, -1);
    const a = make({ prefix });
    await a.policies.set('default', { limits: [fw('rpm', 3)] }, who);
    expect(await admit(a, 'u', 1)).toBe(1);
    await redis.del(`${prefix}:{policies}:doc:default`);
    await redis.hset(`${prefix}:{policies}:doc:default`, 'x', '1');
    await redis.incr(`${prefix}:{policies}:version`);
    a['snapshot']!.drop();
    const d = await a.limit('u');
    expect(d).toMatchObject({ allowed: true, limit: 3, remaining: 1, policyVersion: -1 });
    expect(a.stats().warnings.join('\n')).toMatch(/policies default > user:u: unreadable \(.*WRONGTYPE.*\); the last known versions are used/);
  });

  it('a subject with no limits is denied by default (onNoLimits)', async () => {
    const prefix = uniquePrefix('pnone').slice(0, -1);
    const a = make({ prefix });
    expect(await a.limit('u')).toMatchObject({ allowed: false, deniedBy: 'no-limits', retryAfterMs: -1 });
    const b = make({ prefix, onNoLimits: 'allow' });
    expect(await b.limit('u')).toMatchObject({ allowed: true });
  });
});

describe('policy limiter: adaptive (AIMD)', () => {
  it('429 halves the learned limit fleet-wide, success periods add back to the ceiling, Retry-After pauses', async () => {
    const prefix = uniquePrefix('paimd').slice(0, -1);
    let now = 1_000_000;
    const opts = { prefix, chain: () => ['default', 'upstream:openai'], adaptive: { target: () => 'upstream:openai', successPeriodMs: 1000, cooldownMs: 1000, increase: 10 }, clock: () => now };
    const a = make(opts);
    const b = make(opts);
    await a.policies.set('default', { limits: [fw('rpm', 100)] }, who);
    expect((await b.limit('x')).limit).toBe(100);
    const f = await a.feedback('x', { status: 429 });
    expect(f).toMatchObject({ learned: 50, changed: true });
    const again = await a.feedback('x', { status: 429 }); // same burst: one event
    expect(again).toMatchObject({ learned: 50, changed: false });
    for (let i = 0; i < 200 && (await b.peek('x')).limit !== 50; i++) await new Promise((r) => setTimeout(r, 5));
    const d = await b.limit('x');
    expect(d).toMatchObject({ limit: 50, learned: { 'upstream:openai': 50 } });
    // successes: throttled per process to one per success period; Redis adds one step per period
    expect((await a.feedback('x', { status: 200 })).learned).toBe(50);
    const p = await a.feedback('x', { status: 503, retryAfterMs: 60_000 });
    expect(p.pausedUntilMs).toBeGreaterThan(0);
    for (let i = 0; i < 200 && (await b.limit('x')).deniedBy !== 'paused'; i++) await new Promise((r) => setTimeout(r, 5));
    const paused = await b.limit('x');
    expect(paused).toMatchObject({ allowed: false, deniedBy: 'paused' });
    expect(paused.retryAfterMs).toBeGreaterThan(50_000);
  });
});

describe('policy limiter: as-is carry-over, every algorithm', () => {
  const algos = [
    { algo: 'fixed_window', periodMs: DAY },
    { algo: 'sliding_window', periodMs: DAY },
    { algo: 'sliding_log', periodMs: DAY },
    { algo: 'gcra', periodMs: DAY },
    { algo: 'token_bucket', periodMs: DAY },
    { algo: 'quota', unit: 'month' },
  ] as const;
  for (const a of algos) {
    it(`${a.algo}: lowering never admits past the new limit; raising keeps what was used`, async () => {
      const prefix = uniquePrefix(`pcarry-${a.algo}`).slice(0, -1);
      const l = make({ prefix, chain: () => ['default'] });
      const spec = (limit: number) => ({ name: 'r', limit, ...a }) as never;
      await l.policies.set('default', { limits: [spec(10)] }, who);
      expect(await admit(l, 'u', 3)).toBe(3);
      await l.policies.set('default', { limits: [spec(2)] }, who);
      const afterLower = await admit(l, 'u', 5);
      expect(afterLower).toBeLessThanOrEqual(2);
      // counters remember the 3 used: nothing more under 2
      if (a.algo !== 'gcra' && a.algo !== 'token_bucket') expect(afterLower).toBe(0);
      await l.policies.set('default', { limits: [spec(20)] }, who);
      // raised to 20: what was used (3 + afterLower) stays used. gcra and token_bucket keep their
      // stored time / level, which the lower values made scarcer: never more than a counter admits.
      const afterRaise = await admit(l, 'u', 30);
      if (a.algo === 'gcra' || a.algo === 'token_bucket') expect(afterRaise).toBeLessThanOrEqual(20 - 3 - afterLower);
      else expect(afterRaise).toBe(20 - 3 - afterLower);
    });
  }
});

describe('policy limiter: stored data written by hand', () => {
  it('a parent cycle in stored entries (policy_set refuses them) is cut and reported, decisions go on', async () => {
    const prefix = uniquePrefix('phandcycle').slice(0, -1);
    const l = make({ prefix, chain: () => ['b'] });
    await l.policies.set('a', { limits: [fw('rpm', 5)] }, who);
    await l.policies.set('b', { parent: 'a', limits: [fw('rpd', 50)] }, who);
    const entry = (await redis.get(`${prefix}:{policies}:doc:a`))!.replace('"policy":{', '"policy":{"parent":"b",');
    await redis.set(`${prefix}:{policies}:doc:a`, entry);
    await redis.incr(`${prefix}:{policies}:version`);
    l['snapshot']!.drop();
    const d = await l.limit('u');
    expect(d).toMatchObject({ allowed: true, policies: ['a', 'b'] });
    expect(d.limits.map((x) => x.name)).toEqual(['rpd', 'rpm']);
    expect(l.stats().warnings.join()).toMatch(/inheritance cycle/);
  });
});

describe('policy limiter: proportional carry-over (same fraction left)', () => {
  const algos = [
    { algo: 'fixed_window', periodMs: DAY },
    { algo: 'sliding_window', periodMs: DAY },
    { algo: 'sliding_log', periodMs: DAY },
    { algo: 'gcra', periodMs: DAY },
    { algo: 'token_bucket', periodMs: DAY },
    { algo: 'quota', unit: 'month' },
  ] as const;
  for (const a of algos) {
    it(`${a.algo}: lowering keeps the fraction left (floored), raising too; another instance carries the same`, async () => {
      const prefix = uniquePrefix(`pprop-${a.algo}`).slice(0, -1);
      const l = make({ prefix, chain: () => ['default'] });
      const other = make({ prefix, chain: () => ['default'] });
      const spec = (limit: number) => ({ name: 'r', limit, ...a }) as never;
      await l.policies.set('default', { limits: [spec(10)] }, who);
      expect(await admit(l, 'u', 6)).toBe(6); // 4 of 10 left
      const v = await l.policies.set('default', { limits: [spec(5)] }, { author: 'ops', carryOver: 'proportional' });
      const d = await l.peek('u');
      expect(d).toMatchObject({ policyVersion: v, limit: 5, remaining: 2 }); // floor(4 x 5 / 10)
      await until(other, 'u', v);
      expect(await admit(other, 'u', 5)).toBe(2);
      const v2 = await l.policies.set('default', { limits: [spec(20)] }, { author: 'ops', carryOver: 'proportional' });
      await until(other, 'u', v2);
      expect((await other.peek('u')).remaining).toBe(0); // 0 of 5 left: 0 of 20
    });
  }

  it('an idle subject across two proportional changes is carried from the oldest key it has; reset clears the sources too', async () => {
    const prefix = uniquePrefix('pprop-chain').slice(0, -1);
    const l = make({ prefix, chain: () => ['default', 'plan:pro'] });
    await l.policies.set('default', { limits: [fw('rpm', 100)] }, who);
    await l.policies.set('plan:pro', { limits: [fw('rpm', 10)] }, who);
    expect(await admit(l, 'w', 3)).toBe(3); // 7 of 10 left
    await l.policies.set('plan:pro', { limits: [fw('rpm', 5)] }, { author: 'ops', carryOver: 'proportional' });
    const v = await l.policies.set('plan:pro', { limits: [fw('rpm', 20)] }, { author: 'ops', carryOver: 'proportional' });
    const d = await l.peek('w');
    expect(d).toMatchObject({ policyVersion: v, limit: 20, remaining: 14 }); // 7/10 of 20 (carried through 5 it would be floor(7 x 5/10) = 3, then 12)
    expect(await admit(l, 'w', 20)).toBe(14);
    await l.reset('w');
    expect(await redis.exists(`${prefix}:{w}:rpm`)).toBe(0);
    expect((await l.peek('w')).remaining).toBe(20);
    const entry = (await l.policies.history('plan:pro'))[0]!;
    expect(entry).toMatchObject({ version: v, carryOver: 'proportional', carry: { rpm: v - 1 }, prev: v - 1 });
  });

  it('calls counted on the new key before the carry (an instance whose carry failed) are added to, not lost', async () => {
    const prefix = uniquePrefix('pprop-late').slice(0, -1);
    const l = make({ prefix, chain: () => ['default'] });
    await l.policies.set('default', { limits: [fw('rpm', 10)] }, who);
    expect(await admit(l, 'u', 4)).toBe(4); // 6 of 10 left
    const v = await l.policies.set('default', { limits: [fw('rpm', 20)] }, { author: 'ops', carryOver: 'proportional' }); // 12 of 20
    const other = createRateLimiter({ redis, prefix, limits: [fw(`rpm-r${v.toString(36)}`, 20)] });
    try {
      for (let i = 0; i < 3; i++) expect((await other.limit('u')).allowed).toBe(true);
    } finally {
      await other.close();
    }
    expect(await l.peek('u')).toMatchObject({ limit: 20, remaining: 9 }); // 17 left, less the 8 the carry charges
    expect(await admit(l, 'u', 20)).toBe(9);
  });

  it('a proportional rollback carries too', async () => {
    const prefix = uniquePrefix('pprop-roll').slice(0, -1);
    const l = make({ prefix, chain: () => ['default'] });
    const v1 = await l.policies.set('default', { limits: [fw('rpm', 4)] }, who);
    await l.policies.set('default', { limits: [fw('rpm', 40)] }, who);
    expect(await admit(l, 'u', 30)).toBe(30); // 10 of 40 left
    await l.policies.rollback('default', v1, { author: 'ops', carryOver: 'proportional' });
    expect(await l.peek('u')).toMatchObject({ limit: 4, remaining: 1 }); // floor(10 x 4 / 40)
  });
});

describe('policy limiter: decisions say their own chain', () => {
  it('subjects whose chains resolve to the same limits share one compiled limiter, yet each decision names its own policies', async () => {
    const prefix = uniquePrefix('pown').slice(0, -1);
    const l = make({ prefix });
    await l.policies.set('default', { limits: [fw('rpm', 10)] }, who);
    await l.policies.set('user:a', { limits: [fw('rpm', 5)] }, who);
    await l.policies.set('user:b', { limits: [fw('rpm', 5)] }, who);
    // Alternate, so the shared limiter was last resolved for the other subject every time.
    for (let i = 0; i < 3; i++) {
      const a = await l.limit('a');
      const b = await l.limit('b');
      expect(a.policies).toEqual(['default', 'user:a']);
      expect(b.policies).toEqual(['default', 'user:b']);
      expect([a.limit, b.limit]).toEqual([5, 5]);
    }
  });

  it('cached chains decided in one turn (one batch of the shared limiter): each decision its own policies, own limit names, costs by own names', async () => {
    const prefix = uniquePrefix('pturn').slice(0, -1);
    const l = make({ prefix, ...UNHURRIED }); // a deadline missed under load would answer from the fallback
    await l.policies.set('default', { limits: [fw('rpm', 100), fw('tpm', 10_000)] }, who);
    await l.policies.set('user:a', { limits: [fw('rpm', 50)] }, who);
    await l.policies.set('user:b', { limits: [fw('rpm', 50)] }, who);
    await l.policies.set('user:c', { remove: ['tpm'] }, who);
    const v = await l.policies.set('user:r', { limits: [fw('rpm', 50)] }, { author: 'ops', carryOver: 'reset' });
    const subjects = ['a', 'b', 'c', 'r'];
    for (const s of subjects) await l.limit(s, { cost: { rpm: 1, tpm: 10 } }); // cached and compiled
    for (let round = 0; round < 3; round++) {
      const ds = await Promise.all(subjects.flatMap((s) => [l.limit(s, { cost: { rpm: 1, tpm: 10 } }), l.limit(s, { cost: { tpm: 5 } })]));
      const [a, , b, , c, c2, r, r2] = ds;
      expect(a!.policies).toEqual(['default', 'user:a']);
      expect(b!.policies).toEqual(['default', 'user:b']);
      expect(c!.policies).toEqual(['default', 'user:c']);
      expect(r!.policies).toEqual(['default', 'user:r']);
      for (const d of ds) expect(d).toMatchObject({ allowed: true, source: 'redis' });
      expect(a!.limits.map((x) => [x.name, x.remaining])).toEqual([
        ['rpm', 50 - 2 - 2 * round],
        ['tpm', 10_000 - 20 - 15 * round],
      ]);
      // tpm removed for c: its cost for tpm is skipped; the tpm-only call costs one rpm (the default of a cost object).
      expect(c2!.limits.map((x) => [x.name, x.remaining])).toEqual([['rpm', 100 - 3 - 2 * round]]);
      expect(c!.policyLimits.map((x) => x.name)).toEqual(['rpm']);
      // r's rpm is keyed with the reset epoch, named by its own name.
      expect(r2!.limits.map((x) => [x.name, x.remaining])).toEqual([
        ['rpm', 50 - 3 - 2 * round],
        ['tpm', 10_000 - 25 - 15 * round],
      ]);
      expect(r2!.policyVersion).toBe(v);
      expect(r2!.policyLimits.map((x) => x.name)).toEqual(['rpm', 'tpm']);
    }
    expect(await redis.exists(`${prefix}:{r}:rpm-r${v.toString(36)}`)).toBe(1);
  });
});
