import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { InvalidArgumentError, InvalidConfigError } from '../../src/errors.js';
import { createPolicyLimiter, PolicyStore, type PolicyLimiter } from '../../src/policy/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

const DAY = 86_400_000;
const fw = (name: string, limit: number) => ({ name, algo: 'fixed_window' as const, limit, periodMs: DAY });

let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.disconnect());

const who = { author: 'test', reason: 'a test' };

describe('policy store', () => {
  it('versions every change: set, history, diff, rollback (a new version), remove', async () => {
    const store = new PolicyStore(redis, uniquePrefix('pstore').slice(0, -1));
    const v1 = await store.set('default', { limits: [fw('rpm', 60)] }, who);
    const v2 = await store.set('default', { limits: [fw('rpm', 120), fw('tpm', 1000)] }, { author: 'bob', reason: 'raise' });
    expect(v2).toBe(v1 + 1);
    expect((await store.get('default'))!.policy).toEqual({ limits: [fw('rpm', 120), fw('tpm', 1000)] });
    const history = await store.history('default');
    expect(history.map((h) => [h.version, h.op, h.author, h.reason])).toEqual([
      [v2, 'set', 'bob', 'raise'],
      [v1, 'set', 'test', 'a test'],
    ]);
    const diff = await store.diff('default', v1, v2);
    expect(diff.limits).toEqual([
      { name: 'rpm', change: 'changed', from: fw('rpm', 60), to: fw('rpm', 120) },
      { name: 'tpm', change: 'added', to: fw('tpm', 1000) },
    ]);
    const v3 = await store.rollback('default', v1, { author: 'carol', reason: 'bad raise' });
    expect(v3).toBe(v2 + 1);
    expect((await store.get('default'))!).toMatchObject({ version: v3, op: 'rollback', author: 'carol', policy: { limits: [fw('rpm', 60)] } });
    expect(await store.list()).toEqual(['default']);
    await store.remove('default', who);
    expect(await store.get('default')).toBeNull();
    expect(await store.list()).toEqual([]);
    expect((await store.history('default')).length).toBe(4);
  });

  it('refuses bad policies with a clear error and stores nothing (TS and Lua)', async () => {
    const store = new PolicyStore(redis, uniquePrefix('pbad').slice(0, -1));
    const bad: Array<[string, object, RegExp]> = [
      ['x', { limits: [{ name: 'rpm', algo: 'nope', limit: 5, periodMs: 1000 }] }, /policy x: limit rpm: algo must be one of .*got "nope"/],
      ['x', { limits: [fw('rpm', 0)] }, /policy x: limit rpm: limit must be an integer between 1 and .*got 0/],
      ['x', { limits: [fw('rpm', -3)] }, /policy x: limit rpm: limit must be an integer between 1 and .*got -3/],
      ['x{y}', { limits: [fw('rpm', 3)] }, /a policy name is 1 to 200 letters, digits, _ - : or \. \(no \{ or \}\), got "x\{y\}"/],
      ['x', { limits: [fw('rpm', 3)], parent: 'a{b}' }, /parent name is 1 to 200 .*no \{ or \}/],
      ['x', { limits: [{ ...fw('rpm', 3), description: 'x'.repeat(1 << 20) }] }, /limit rpm: unknown option "description"/],
      ['x', { description: 'x'.repeat(1 << 20) }, /policy x: the document is \d+ bytes, more than 65536/],
      ['x', { remove: Array.from({ length: 40_000 }, (_, i) => `limit_${i}_abcdefghij`) }, /policy x: the document is \d+ bytes, more than 65536/],
      ['x', { scale: 0 }, /scale must be a number from 0.0001 to 100/],
      ['x', { parent: 'x' }, /policy x: a policy cannot inherit from itself \(cycle\)/],
    ];
    for (const [name, p, message] of bad) {
      const err = await store.set(name, p as never, who).then(() => null, (e: unknown) => e);
      expect(err, JSON.stringify(p).slice(0, 80)).toBeInstanceOf(Error);
      expect(err instanceof InvalidConfigError || err instanceof InvalidArgumentError).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    expect(await store.version()).toBe(0);
    expect(await redis.exists(store.keys.doc('x'), store.keys.history('x'), store.keys.names)).toBe(0);
    // The same refusals from Lua, when the TS checks are skipped (a document written by another tool).
    const keys = store.keys;
    const raw = async (name: string, body: string) =>
      redis.eval((await import('../../generated/index.js')).policySetScript.source, 4 + 0, keys.version, keys.history(name), keys.names, keys.doc(name), 'set', name, 'me', '', 'as_is', '100', body, '', '', '');
    await expect(raw('x', JSON.stringify({ limits: [{ name: 'rpm', algo: 'nope', limit: 5 }] }))).rejects.toThrow(/^BADARG .*unknown algorithm nope/);
    await expect(raw('x', JSON.stringify({ limits: [fw('rpm', 0)] }))).rejects.toThrow(/^BADARG .*limit must be a positive integer/);
    await expect(raw('x', JSON.stringify({ description: 'x'.repeat(1 << 20) }))).rejects.toThrow(/^BADARG .*at most 65536 bytes/);
    await expect(raw('x{y}', '{}')).rejects.toThrow(/^BADARG .*no \{ or \}/);
    await expect(raw('x', JSON.stringify({ limits: [fw('rpm', -3)] }))).rejects.toThrow(/^BADARG .*limit rpm: limit must be a positive integer/);
    await expect(raw('x', JSON.stringify({ limits: [{ ...fw('rpm', 3), algo: 'concurrency' }] }))).rejects.toThrow(/^BADARG .*unknown algorithm concurrency/);
    await expect(raw('x', JSON.stringify({ parent: 'x' }))).rejects.toThrow(/^BADARG .*cannot inherit from itself \(cycle\)/);
    await expect(raw('x', JSON.stringify({ parent: 'a{b}' }))).rejects.toThrow(/^BADARG .*parent is not a policy name/);
    expect(await store.version()).toBe(0);
    expect(await redis.exists(keys.doc('x'), keys.history('x'), keys.names)).toBe(0);
  });

  it('refuses a cycle in parent links', async () => {
    const store = new PolicyStore(redis, uniquePrefix('pcycle').slice(0, -1));
    await store.set('a', { limits: [fw('rpm', 10)] }, who);
    await store.set('b', { parent: 'a' }, who);
    await store.set('c', { parent: 'b' }, who);
    const before = await store.version();
    await expect(store.set('a', { parent: 'c' }, who)).rejects.toThrow(/policy a: inheritance cycle through a/);
    expect(await store.version()).toBe(before);
    // Lua alone (another tool, TS checks skipped): the chain a -> c -> b -> a, read from the entries passed.
    const k = store.keys;
    const { policySetScript } = await import('../../generated/index.js');
    await expect(
      redis.eval(policySetScript.source, 6, k.version, k.history('a'), k.names, k.doc('a'), k.doc('c'), k.doc('b'), 'set', 'a', 'me', '', 'as_is', '100', JSON.stringify({ parent: 'c' }), '', '', ''),
    ).rejects.toThrow(/^BADARG .*policy a: inheritance cycle through a/);
    expect(await store.version()).toBe(before);
    expect((await store.get('a'))!.policy).toEqual({ limits: [fw('rpm', 10)] });
  });

  it('proportional carry-over: a new key epoch for the limits set, and what to carry from (the old epoch, the version replaced); an unknown rule is refused', async () => {
    const store = new PolicyStore(redis, uniquePrefix('pprop').slice(0, -1));
    const v1 = await store.set('a', { limits: [fw('rpm', 10), fw('rpd', 100)] }, who);
    const v2 = await store.set('a', { limits: [fw('rpm', 5)] }, { author: 'x', carryOver: 'proportional' });
    expect(await store.get('a')).toMatchObject({ version: v2, carryOver: 'proportional', resets: { rpm: v2 }, carry: { rpm: 0 }, prev: v1 });
    const v3 = await store.set('a', { limits: [fw('rpm', 6)] }, { author: 'x', carryOver: 'proportional' });
    expect(await store.get('a')).toMatchObject({ version: v3, resets: { rpm: v3 }, carry: { rpm: v2 }, prev: v2 });
    const v4 = await store.set('a', { limits: [fw('rpm', 7)] }, who);
    const as = (await store.get('a'))!;
    expect(as).toMatchObject({ version: v4, carryOver: 'as-is', resets: { rpm: v3 } });
    expect(as.carry).toBeUndefined();
    await expect(store.set('a', { limits: [fw('rpm', 10)] }, { author: 'x', carryOver: 'half' as never })).rejects.toThrow(InvalidConfigError);
    await expect(store.set('a', { limits: [fw('rpm', 10)] }, { author: 'x', carryOver: 'half' as never })).rejects.toThrow(/carryOver must be as-is, reset or proportional/);
    expect(await store.version()).toBe(v4);
  });
});

describe('policy limiter', () => {
  let limiter: PolicyLimiter | undefined;
  afterAll(() => limiter?.close());

  it('resolves the chain: most specific wins, remove, parent, environment scale (floored)', async () => {
    const prefix = uniquePrefix('plim').slice(0, -1);
    limiter = createPolicyLimiter({ redis, prefix, chain: (s) => ['default', `user:${typeof s === 'string' ? s : s.id}`], environment: 'production' });
    const p = limiter.policies;
    await p.set('default', { limits: [fw('rpm', 10), fw('tpm', 1000)] }, who);
    await p.set('plan:pro', { limits: [fw('rpm', 101)] }, who);
    await p.set('user:42', { parent: 'plan:pro', remove: ['tpm'] }, who);
    await p.set('env:production', { scale: 0.8 }, who);
    const r = await limiter.resolved('42');
    expect(r.policies).toEqual(['default', 'plan:pro', 'user:42', 'env:production']);
    expect(r.limits).toEqual([fw('rpm', 80)]); // floor(101 x 0.8)
    const other = await limiter.resolved('7');
    expect(other.limits).toEqual([fw('rpm', 8), fw('tpm', 800)]);
    const d = await limiter.limit('42');
    expect(d).toMatchObject({ allowed: true, limitName: 'rpm', limit: 80, remaining: 79, policyVersion: r.version });
  });
});
