import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import fc from 'fast-check';
import { createRateLimiter, InvalidConfigError, type Decision, type LimitSpec, type RateLimiterOptions, type Subject } from '../../src/index.js';
import { rateLimitHeaders } from '../../src/http/headers.js';
import { freePort, startLocalRedis } from '../../devtools/local-redis.js';
import { ioredis, UNHURRIED, uniquePrefix } from '../support/redis.js';

// Limit values chosen per scope value (byScope): one limiter, each model its own values, on
// every path — its own script, coalesced (batch / multi_batch), multi, peek, refund, reserve,
// leases, priorities, concurrency, time-zone quotas, and the fallback twin.
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const HOUR = 3_600_000;
const DAY = 86_400_000;
const at = (model: string, id = 'agent-1'): Subject => ({ id, scopes: { model } });

/** TPM by model: large 3, small 7, any other model the limit's own 10 (per hour: nothing refills during a test). */
const tpm: LimitSpec = { name: 'tpm', algo: 'gcra', scope: 'model', limit: 10, periodMs: HOUR, byScope: { model: { large: { limit: 3 }, small: { limit: 7 } } } };

async function admitted(rl: ReturnType<typeof createRateLimiter>, subject: Subject, n: number, cost = 1): Promise<Decision[]> {
  const out: Decision[] = [];
  for (let i = 0; i < n; i++) out.push(await rl.limit(subject, { cost }));
  return out;
}

const model = (s: Subject) => (typeof s === 'string' ? '' : s.scopes!.model!);
const view = (d: Decision) => [d.allowed, d.remaining, d.limit, d.deniedBy, d.limits.map((l) => [l.name, l.allowed, l.remaining, l.limit])];

describe('limit values per scope value (byScope)', () => {
  for (const [label, extra] of [
    ['its own script', { coalesce: false }],
    ['coalesced', {}],
    ['no Redis (the twin alone)', { redis: undefined }],
  ] as const) {
    it(`one limit: each model admits its own limit and reports it — ${label}`, async () => {
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv1'), limits: tpm, ...UNHURRIED, ...extra });
      for (const [model, limit] of [['large', 3], ['small', 7], ['other', 10]] as const) {
        const seen = await admitted(rl, at(model), limit + 2);
        expect(seen.filter((d) => d.allowed)).toHaveLength(limit);
        expect(seen.every((d) => d.limit === limit)).toBe(true);
        expect(seen[0]!.remaining).toBe(limit - 1);
        expect(seen.at(-1)).toMatchObject({ allowed: false, deniedBy: 'tpm', limit });
        // Redis' denial is held for this model's key only (the next model starts fresh above).
        if (extra.redis !== undefined || !('redis' in extra)) expect(seen.at(-1)!.source).toBe('deny-cache');
      }
      await rl.close();
    });
  }

  it('RPM per agent + TPM per model in one multi: all-or-nothing, the agent’s RPM shared across models', async () => {
    for (const coalesce of [false, true]) {
      const limits: LimitSpec[] = [{ name: 'rpm', algo: 'fixed_window', limit: 10, periodMs: HOUR }, { ...tpm, byScope: { model: { large: { limit: 30 }, small: { limit: 70 } } }, limit: 100 }];
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv2'), limits, coalesce, ...UNHURRIED });
      // large: 20 + 20 tokens fit 30? no: the second is denied by tpm, and takes no request either.
      expect(await rl.limit(at('large'), { cost: { tpm: 20 } })).toMatchObject({ allowed: true, limits: [{ name: 'rpm', remaining: 9, limit: 10 }, { name: 'tpm', remaining: 10, limit: 30 }] });
      expect(await rl.limit(at('large'), { cost: { tpm: 20 } })).toMatchObject({ allowed: false, deniedBy: 'tpm', limit: 30, limits: [{ remaining: 9 }, { remaining: 10 }] });
      // small has 70: 60 fits; the agent's RPM (the same key) goes on counting down.
      expect(await rl.limit(at('small'), { cost: { tpm: 60 } })).toMatchObject({ allowed: true, limits: [{ name: 'rpm', remaining: 8 }, { name: 'tpm', remaining: 10, limit: 70 }] });
      expect(await rl.limit(at('other'), { cost: { tpm: 95 } })).toMatchObject({ allowed: true, limits: [{ remaining: 7 }, { remaining: 5, limit: 100 }] });
      // Concurrently, in one turn, across models (coalesced: one batch per set of values).
      const mixed = await Promise.all(['large', 'small', 'other', 'large'].map((m) => rl.limit(at(m), { cost: { tpm: 5 } })));
      expect(mixed.map((d) => [d.allowed, d.limits[1]!.limit])).toEqual([[true, 30], [true, 70], [true, 100], [true, 30]]);
      expect(mixed.map((d) => d.limits[0]!.remaining).sort()).toEqual([3, 4, 5, 6]);
      await rl.close();
    }
  });

  // One batch carries one set of values, so a turn's decisions are sent one batch per variant, in
  // the order each variant first appears: exact in that order (a key shared across variants, the
  // agent's RPM, sees the large model's calls of the turn first, then the small model's, ...).
  it('coalesced decisions across models decide exactly as one by one, variant by variant', async () => {
    const limits: LimitSpec[] = [{ name: 'rpm', algo: 'gcra', limit: 50, periodMs: HOUR }, tpm];
    const together = createRateLimiter({ redis, prefix: uniquePrefix('psv3a'), limits, denyCache: false, ...UNHURRIED });
    const apart = createRateLimiter({ redis, prefix: uniquePrefix('psv3b'), limits, denyCache: false, coalesce: false, ...UNHURRIED });
    const calls = Array.from({ length: 60 }, (_, i) => ({ s: at(['large', 'small', 'other'][i % 3]!, `a${i % 4}`), cost: { tpm: 1 + (i % 2) } }));
    const coalesced = await Promise.all(calls.map((c) => together.limit(c.s, { cost: c.cost })));
    const oneByOne: Decision[] = [];
    const variantOrder = ['large', 'small', 'other'];
    const order = calls.map((c, i) => ({ c, i })).sort((x, y) => variantOrder.indexOf(model(x.c.s)) - variantOrder.indexOf(model(y.c.s)) || x.i - y.i);
    for (const { c, i } of order) oneByOne[i] = await apart.limit(c.s, { cost: c.cost });
    expect(coalesced.map(view)).toEqual(oneByOne.map(view));
    expect(new Set(coalesced.map((d) => d.limits[1]!.limit))).toEqual(new Set([3, 7, 10]));
    await together.close();
    await apart.close();
  });

  it('peek, refund and reserve use and report the chosen values', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv4'), limits: tpm, ...UNHURRIED });
    expect(await rl.peek(at('large'))).toMatchObject({ allowed: true, remaining: 3, limit: 3 });
    expect(await rl.peek(at('small'), { cost: 7 })).toMatchObject({ allowed: true, limit: 7 });
    expect(await rl.peek(at('large'), { cost: 4 })).toMatchObject({ allowed: false, limit: 3, retryAfterMs: -1 }); // never fits large
    await rl.limit(at('large'), { cost: 3 });
    expect(await rl.limit(at('large'))).toMatchObject({ allowed: false, limit: 3 });
    await rl.refund(at('large'), { cost: 2 });
    expect(await rl.peek(at('large'))).toMatchObject({ allowed: true, remaining: 2, limit: 3 });
    // A reservation of 5 can never fit large (3), fits small (7).
    const never = await rl.reserve(at('large', 'r'), { cost: 5 });
    expect(never).toMatchObject({ allowed: false, handle: null, limit: 3, retryAfterMs: -1 });
    const r = await rl.reserve(at('small', 'r'), { cost: 5 });
    expect(r).toMatchObject({ allowed: true, remaining: 2, limit: 7 });
    expect(await rl.commit(r.handle!, 1)).toMatchObject({ status: 'committed', limits: [{ name: 'tpm', remaining: 6 }] });
    expect(await rl.peek(at('small', 'r'))).toMatchObject({ remaining: 6, limit: 7 });
    expect(rl.limitsFor(at('large'))).toEqual([{ name: 'tpm', algo: 'gcra', scope: 'model', limit: 3, periodMs: HOUR }]);
    expect(rl.limitsFor(at('other'))).toEqual([{ name: 'tpm', algo: 'gcra', scope: 'model', limit: 10, periodMs: HOUR }]);
    await rl.close();
  });

  it('acquire books on the chosen values', async () => {
    for (const extra of [{}, { redis: undefined }]) {
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv13'), limits: tpm, ...UNHURRIED, ...extra });
      const large = [];
      for (let i = 0; i < 4; i++) large.push(await rl.acquire(at('large'), { maxWaitMs: 0 }));
      expect(large.map((d) => [d.allowed, d.limit])).toEqual([[true, 3], [true, 3], [true, 3], [false, 3]]);
      expect((await rl.acquire(at('small'), { maxWaitMs: 0, cost: 7 })).allowed).toBe(true);
      await rl.close();
    }
  });

  it('the RateLimit headers report the chosen values', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv5'), limits: tpm, ...UNHURRIED });
    const d = await rl.limit(at('large'));
    expect(rateLimitHeaders('draft-6', d, rl.limits)).toMatchObject({ 'RateLimit-Limit': '3', 'RateLimit-Remaining': '2' });
    expect(rateLimitHeaders('ietf', d, rl.limitsFor(at('large')) as LimitSpec[])).toMatchObject({ 'RateLimit-Policy': '"tpm";q=3;w=3600' });
    await rl.close();
  });

  it('the fallback twin decides with the chosen values, each instance its share of them', async () => {
    const dead = new Redis({ port: await freePort(), enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    dead.on('error', () => {});
    const limits: LimitSpec = { ...tpm, byScope: { model: { large: { limit: 4 }, small: { limit: 8 } } } };
    const rl = createRateLimiter({ redis: dead, prefix: uniquePrefix('psv6'), limits, fallbackShare: 2, timeoutMs: 50 });
    for (const [model, share] of [['large', 2], ['small', 4], ['other', 5]] as const) {
      const seen = await admitted(rl, at(model), share + 2);
      expect(seen.every((d) => d.source === 'fallback' && d.limit === share)).toBe(true);
      expect(seen.filter((d) => d.allowed)).toHaveLength(share);
    }
    expect(await rl.peek(at('large', 'fresh'))).toMatchObject({ source: 'fallback', remaining: 2, limit: 2 });
    await rl.close();
    dead.disconnect();
  });

  it('what Redis said of a subject seeds the fallback at the chosen values', async () => {
    const server = await startLocalRedis();
    const client = new Redis({ port: server.port, host: '127.0.0.1', enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    client.on('error', () => {});
    try {
      if (client.status !== 'ready') await new Promise((r) => client.once('ready', r));
      const rl = createRateLimiter({ redis: client, prefix: 'seed', limits: tpm, timeoutMs: 500 });
      await rl.ready();
      expect(await rl.limit(at('large'), { cost: 2 })).toMatchObject({ allowed: true, remaining: 1, limit: 3, source: 'redis' });
      await server.kill();
      // The twin starts from Redis' 1 left of large's 3 (seeded with large's values: one more call passes).
      expect((await admitted(rl, at('large'), 2)).map((d) => [d.allowed, d.source, d.limit])).toEqual([
        [true, 'fallback', 3],
        [false, 'fallback', 3],
      ]);
      await rl.close();
    } finally {
      client.disconnect();
      await server.stop().catch(() => {});
    }
  });

  it('a key shared by two variants is seeded from the latest answer Redis gave for it, whichever variant asked', async () => {
    // One key per subject (no scope keys the limit), values by model: big (the limit's own 100)
    // and small (5). Redis' last word on the key came through small; the outage must start from
    // it, in small's values, not from what big heard earlier (which would hand out used units).
    const server = await startLocalRedis();
    const client = new Redis({ port: server.port, host: '127.0.0.1', enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    client.on('error', () => {});
    try {
      if (client.status !== 'ready') await new Promise((r) => client.once('ready', r));
      const shared: LimitSpec = { name: 'rpm', algo: 'fixed_window', limit: 100, periodMs: HOUR, byScope: { model: { small: { limit: 60 } } } };
      const rl = createRateLimiter({ redis: client, prefix: 'seedshared', limits: shared, timeoutMs: 500 });
      await rl.ready();
      expect((await admitted(rl, at('big', 'u'), 10)).every((d) => d.allowed && d.source === 'redis')).toBe(true);
      // small's calls use the same key: 40 more, 50 used in all; Redis says 10 left of small's 60.
      const last = (await admitted(rl, at('small', 'u'), 40)).at(-1)!;
      expect(last).toMatchObject({ allowed: true, remaining: 10, source: 'redis' });
      await server.kill();
      // big's own last answer said 90 left; Redis' latest says 50 used: big gets its 100 − 50.
      const during = await admitted(rl, at('big', 'u'), 60);
      expect(during.every((d) => d.source === 'fallback')).toBe(true);
      expect(during.filter((d) => d.allowed)).toHaveLength(50);
      await rl.close();
    } finally {
      client.disconnect();
      await server.stop().catch(() => {});
    }
  });

  it('leases keep each model’s values apart', async () => {
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv7'), limits: tpm, lease: { size: 2 }, ...UNHURRIED });
    await rl.ready();
    // Leases are spent only while the invalidation subscription is up.
    while (!rl.stats().invalidation.subscribed) await new Promise((r) => setTimeout(r, 10));
    for (const [model, limit] of [['large', 3], ['small', 7]] as const) {
      const seen = await admitted(rl, at(model), limit + 3);
      expect(seen.filter((d) => d.allowed)).toHaveLength(limit);
      expect(seen.some((d) => d.source === 'lease')).toBe(true);
      expect(seen.every((d) => d.limit === limit)).toBe(true);
    }
    expect(await rl.limit(at('other'))).toMatchObject({ allowed: true, limit: 10 });
    await rl.close();
  });

  it('priority classes keep back a share of the chosen capacity', async () => {
    for (const extra of [{ coalesce: false }, {}, { redis: undefined }]) {
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv8'), limits: { ...tpm, byScope: { model: { large: { limit: 4 }, small: { limit: 8 } } } }, priorities: { batch: 0.5 }, ...UNHURRIED, ...extra });
      // batch must leave capacity - floor(capacity / 2): 2 of large's 4, 4 of small's 8.
      expect((await Promise.all([1, 2, 3].map(() => rl.limit(at('large'), { priority: 'batch' })))).filter((d) => d.allowed)).toHaveLength(2);
      let small = 0;
      for (let i = 0; i < 6; i++) if ((await rl.limit(at('small'), { priority: 'batch' })).allowed) small++;
      expect(small).toBe(4);
      expect(await rl.limit(at('large'))).toMatchObject({ allowed: true, remaining: 1, limit: 4 }); // no class: the rest
      await rl.close();
    }
  });

  it('a concurrency limit takes its holders at once per scope value', async () => {
    for (const extra of [{}, { redis: undefined }]) {
      const limits: RateLimiterOptions['limits'] = [
        { name: 'rpm', algo: 'gcra', limit: 100, periodMs: HOUR },
        { name: 'inflight', algo: 'concurrency', scope: 'model', limit: 1, ttlMs: HOUR, byScope: { model: { small: { limit: 3 } } } },
      ];
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv9'), limits, ...UNHURRIED, ...extra });
      const large = await Promise.all([1, 2].map(() => rl.hold(at('large'))));
      expect(large.map((d) => d.allowed).sort()).toEqual([false, true]);
      const small = [];
      for (let i = 0; i < 4; i++) small.push(await rl.hold(at('small')));
      expect(small.map((d) => d.allowed)).toEqual([true, true, true, false]);
      expect(small[3]).toMatchObject({ deniedBy: 'inflight', limits: [{ limit: 100 }, { limit: 3, remaining: 0 }] });
      await small[0]!.release();
      expect((await rl.hold(at('small'))).allowed).toBe(true);
      expect(rl.limitsFor(at('small')).map((l) => [l.name, l.limit])).toEqual([['rpm', 100], ['inflight', 3]]);
      expect(rl.limitsFor(at('large')).map((l) => [l.name, l.limit])).toEqual([['rpm', 100], ['inflight', 1]]);
      await rl.close();
    }
  });

  it('a quota in a time zone takes its values per scope value', async () => {
    const limits: LimitSpec = { name: 'budget', algo: 'quota', unit: 'day', timeZone: 'Europe/Berlin', scope: 'model', limit: 5, byScope: { model: { large: { limit: 2 } } } };
    for (const extra of [{}, { redis: undefined }]) {
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv10'), limits, ...UNHURRIED, ...extra });
      expect((await admitted(rl, at('large'), 4)).map((d) => [d.allowed, d.limit])).toEqual([[true, 2], [true, 2], [false, 2], [false, 2]]);
      expect((await admitted(rl, at('small'), 6)).filter((d) => d.allowed)).toHaveLength(5);
      await rl.close();
    }
  });

  it('values chosen by another scope than the one keying the limit: a key per (agent, model), values per model', async () => {
    for (const extra of [{ coalesce: false }, {}, { redis: undefined }]) {
      const limits: LimitSpec = { name: 'route_tpm', algo: 'gcra', scope: 'route', limit: 10, periodMs: HOUR, byScope: { model: { large: { limit: 3 } } } };
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv11'), limits, ...UNHURRIED, ...extra });
      const s = (agent: string, m: string): Subject => ({ id: agent, hashTag: 'team', scopes: { model: m, route: `${m}/${agent}` } });
      expect((await admitted(rl, s('a1', 'large'), 5)).map((d) => [d.allowed, d.limit])).toEqual([[true, 3], [true, 3], [true, 3], [false, 3], [false, 3]]);
      expect((await admitted(rl, s('a2', 'large'), 5)).filter((d) => d.allowed)).toHaveLength(3); // a key of its own
      expect((await admitted(rl, s('a1', 'small'), 12)).filter((d) => d.allowed)).toHaveLength(10);
      await rl.close();
    }
  });

  it('one key asked with different values: nothing cached locally for one set of values answers the other', async () => {
    // The agent's TPM, keyed by the agent, with values by the call's model (legal, if unusual).
    const limits: LimitSpec = { name: 'agent_tpm', algo: 'fixed_window', limit: 10, periodMs: DAY, byScope: { model: { large: { limit: 3 } } } };
    const rl = createRateLimiter({ redis, prefix: uniquePrefix('psv12'), limits, ...UNHURRIED });
    expect(await rl.limit(at('large'), { cost: 3 })).toMatchObject({ allowed: true, limit: 3 });
    expect(await rl.limit(at('large'))).toMatchObject({ allowed: false, source: 'redis', limit: 3 });
    expect(await rl.limit(at('large'))).toMatchObject({ allowed: false, source: 'deny-cache', limit: 3 });
    expect(await rl.limit(at('small'))).toMatchObject({ allowed: true, source: 'redis', remaining: 6, limit: 10 });
    await rl.close();
  });

  it('refuses bad values at construction, naming the entry', () => {
    const bad = (limits: unknown, message: RegExp) => expect(() => createRateLimiter({ limits: limits as LimitSpec })).toThrow(message);
    expect(() => createRateLimiter({ redis, limits: { ...tpm, byScope: { model: { large: { limt: 3 } } } } as unknown as LimitSpec })).toThrow(InvalidConfigError);
    bad({ ...tpm, byScope: { model: { large: { limt: 3 } } } }, /limit tpm: byScope\.model\["large"\]: unknown option "limt" \(did you mean limit\?\)/);
    bad({ ...tpm, byScope: { model: { large: { limit: 0 } } } }, /limit tpm: byScope\.model\["large"\]: limit must be an integer between 1 and/);
    bad({ ...tpm, byScope: { model: { large: { limit: 2.5 } } } }, /byScope\.model\["large"\]: limit must be an integer/);
    bad({ ...tpm, byScope: { model: { large: { offsetMs: 5 } } } }, /unknown option "offsetMs"/); // not a gcra parameter
    bad({ ...tpm, byScope: { model: { large: { priorities: { batch: 0.5 } } } } }, /unknown option "priorities"/);
    bad({ ...tpm, byScope: { model: { large: 3 } } }, /byScope\.model\["large"\] must be an object of limit, periodMs or burst/);
    bad({ ...tpm, byScope: [] }, /byScope must be \{ scopeName: \{ scopeValue/);
    // The scope name left out: the message shows the shape.
    bad({ ...tpm, byScope: { large: { limit: 3 } } }, /byScope\.large\["limit"\] must be an object of limit, periodMs or burst \(byScope is \{ scopeName: \{ scopeValue/);
    bad({ ...tpm, byScope: { model: { 'a{b}': { limit: 3 } } } }, /a model value must be a non-empty, well-formed string/);
    bad({ ...tpm, byScope: { model: { '': { limit: 3 } } } }, /a model value must be/);
    bad({ ...tpm, byScope: { model: { large: { limit: 3 } }, team: { core: { limit: 3 } } } }, /one scope name, got model, team/);
    bad({ ...tpm, byScope: {} }, /one scope name/);
    bad({ ...tpm, byScope: { id: { a: { limit: 3 } } } }, /values per id are what policies are for/);
    bad({ ...tpm, byScope: { model: { lrage: { bursts: 2 } } } }, /did you mean burst\?/);
    // Cross-argument checks of the script header, on the entry's values merged with the limit's.
    bad({ name: 'w', algo: 'fixed_window', scope: 'model', limit: 5, periodMs: 10_000, offsetMs: 5_000, byScope: { model: { large: { periodMs: 1_000 } } } }, /limit w: byScope\.model\["large"\]: .*offset/);
    bad({ name: 'g', algo: 'gcra', scope: 'model', limit: 5, periodMs: 31_622_400_000, byScope: { model: { large: { limit: 1, burst: 1_000_000_000 } } } }, /limit g: byScope\.model\["large"\]: /);
    bad({ name: 'q', algo: 'quota', unit: 'day', timeZone: 'Europe/Berlin', scope: 'model', limit: 5, byScope: { model: { large: { utcOffsetMs: 3_600_000 } } } }, /utcOffsetMs cannot be given for a quota in time zone/);
    bad({ name: 'q', algo: 'quota', unit: 'day', scope: 'model', limit: 5, byScope: { model: { large: { unit: 'year' } } } }, /byScope\.model\["large"\]: unit must be day, week or month/);
    bad({ name: 'c', algo: 'concurrency', scope: 'model', limit: 5, byScope: { model: { large: { burst: 2 } } } }, /limit c: byScope\.model\["large"\]: unknown option "burst"/);
    bad({ name: 'c', algo: 'concurrency', scope: 'model', limit: 5, byScope: { model: { large: { limit: 0 } } } }, /limit c: byScope\.model\["large"\]: limit \(holders at once\) must be/);
  });

  it('decides exactly like a separate limiter built with the scope value’s values (property, on Redis)', async () => {
    const algos = ['gcra', 'token_bucket', 'fixed_window', 'sliding_window'] as const;
    const values = fc.record({ limit: fc.integer({ min: 1, max: 12 }), periodMs: fc.integer({ min: 1_000, max: 20_000 }) });
    const models = ['a', 'b', 'c'] as const; // c is not listed: the limits' own values
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...algos),
        fc.constantFrom(...algos),
        values,
        values,
        fc.record({ a: values, b: values }),
        fc.record({ a: values }),
        fc.array(fc.array(fc.record({ model: fc.constantFrom(...models), id: fc.constantFrom('x', 'y'), rpm: fc.integer({ min: 0, max: 3 }), tpm: fc.integer({ min: 0, max: 6 }) }), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: 0, max: 4_000 }), { minLength: 10, maxLength: 10 }),
        fc.boolean(),
        async (algoR, algoT, ownR, ownT, byT, byR, steps, advance, coalesce) => {
          run++;
          let now = 1_700_000_000_000;
          const clock = () => now;
          const limitsWith = (r: { limit: number; periodMs: number }, t: { limit: number; periodMs: number }, by?: { r: Record<string, object>; t: Record<string, object> }): LimitSpec[] => [
            { name: 'rpm', algo: algoR, scope: 'model', ...r, ...(by ? { byScope: { model: by.r } } : {}) } as LimitSpec,
            { name: 'tpm', algo: algoT, scope: 'model', ...t, ...(by ? { byScope: { model: by.t } } : {}) } as LimitSpec,
          ];
          const common = { redis, clock, sendClock: true, coalesce, denyCache: false, ...UNHURRIED } as const;
          const one = createRateLimiter({ ...common, prefix: uniquePrefix(`psvp${run}`), limits: limitsWith(ownR, ownT, { r: byR, t: byT }) });
          const separate = {
            a: createRateLimiter({ ...common, prefix: uniquePrefix(`psvpa${run}`), limits: limitsWith(byR.a, byT.a) }),
            b: createRateLimiter({ ...common, prefix: uniquePrefix(`psvpb${run}`), limits: limitsWith(ownR, byT.b) }),
            c: createRateLimiter({ ...common, prefix: uniquePrefix(`psvpc${run}`), limits: limitsWith(ownR, ownT) }),
          };
          try {
            for (const [i, step] of steps.entries()) {
              const ask = (rl: typeof one, c: (typeof step)[number]) => rl.limit({ id: c.id, scopes: { model: c.model } }, { cost: { rpm: c.rpm, tpm: c.tpm } });
              const got = await Promise.all(step.map((c) => ask(one, c)));
              const want = await Promise.all(step.map((c) => ask(separate[c.model], c)));
              expect(got.map(view)).toEqual(want.map(view));
              expect(got.map((d) => [d.resetAfterMs, d.retryAfterMs])).toEqual(want.map((d) => [d.resetAfterMs, d.retryAfterMs]));
              const peeks = await Promise.all(models.map((m) => one.peek({ id: 'x', scopes: { model: m } })));
              const peeksWant = await Promise.all(models.map((m) => separate[m].peek({ id: 'x', scopes: { model: m } })));
              expect(peeks.map(view)).toEqual(peeksWant.map(view));
              now += advance[i % advance.length]!;
            }
          } finally {
            await Promise.all([one, ...Object.values(separate)].map((rl) => rl.close()));
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('decides exactly like separate limiters on the twin alone, refunds included (property)', async () => {
    const values = fc.record({ limit: fc.integer({ min: 1, max: 12 }), periodMs: fc.integer({ min: 1_000, max: 20_000 }), burst: fc.integer({ min: 1, max: 20 }) });
    await fc.assert(
      fc.asyncProperty(
        values,
        values,
        values,
        fc.array(fc.record({ model: fc.constantFrom('a', 'b', 'c'), refund: fc.boolean(), cost: fc.integer({ min: 0, max: 8 }), advance: fc.integer({ min: 0, max: 3_000 }) }), { minLength: 1, maxLength: 40 }),
        async (own, a, b, calls) => {
          let now = 1_700_000_000_000;
          const clock = () => now;
          const spec = (v: typeof own, by?: Record<string, typeof own>): LimitSpec => ({ name: 'tpm', algo: 'token_bucket', scope: 'model', ...v, ...(by ? { byScope: { model: by } } : {}) });
          const one = createRateLimiter({ clock, limits: spec(own, { a, b }) });
          const separate = { a: createRateLimiter({ clock, limits: spec(a) }), b: createRateLimiter({ clock, limits: spec(b) }), c: createRateLimiter({ clock, limits: spec(own) }) };
          for (const c of calls) {
            const s = { id: 'x', scopes: { model: c.model } };
            if (c.refund) {
              await one.refund(s, { cost: c.cost });
              await separate[c.model].refund(s, { cost: c.cost });
            } else expect(view(await one.limit(s, { cost: c.cost }))).toEqual(view(await separate[c.model].limit(s, { cost: c.cost })));
            now += c.advance;
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('byScope: a change through one variant reaches the others in this process', () => {
  async function subscribed(rl: ReturnType<typeof createRateLimiter>): Promise<void> {
    for (let i = 0; i < 500 && !rl.stats().invalidation.subscribed; i++) await new Promise((r) => setTimeout(r, 10));
    expect(rl.stats().invalidation.subscribed).toBe(true);
  }

  it("a block through one variant voids another variant's lease of the same subject", async () => {
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: uniquePrefix('bsblock'), blocks: true, lease: { size: 10, ttlMs: 60_000 }, limits: [{ name: 'rpm', algo: 'gcra', limit: 100, periodMs: HOUR, byScope: { model: { small: { limit: 50 } } } }] });
    try {
      await rl.ready();
      await subscribed(rl);
      const small = at('small', 'u');
      expect((await rl.limit(small)).allowed).toBe(true); // takes a lease of 10
      expect((await rl.limit(small)).source).toBe('lease');
      await rl.block(at('big', 'u'), 60_000);
      const after = await rl.limit(small);
      expect(after).toMatchObject({ allowed: false, source: 'redis' });
    } finally {
      await rl.close();
    }
  });

  it("a refund through one variant ends another variant's cached denial of the same key", async () => {
    const rl = createRateLimiter({ redis, ...UNHURRIED, prefix: uniquePrefix('bsrefund'), limits: [{ name: 'w', algo: 'fixed_window', limit: 5, periodMs: HOUR, byScope: { model: { small: { limit: 2 } } } }] });
    try {
      await rl.ready();
      const small = at('small', 'u');
      expect((await rl.limit(small)).allowed).toBe(true);
      expect((await rl.limit(small)).allowed).toBe(true);
      expect((await rl.limit(small)).allowed).toBe(false); // denied by Redis: cached
      expect((await rl.limit(small)).source).toBe('deny-cache');
      await rl.refund(at('big', 'u'), { cost: 1 }); // the same key, through the other variant
      const after = await rl.limit(small);
      expect(after).toMatchObject({ allowed: true, source: 'redis' });
    } finally {
      await rl.close();
    }
  });
});
