import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createPolicyLimiter } from '../../src/policy/index.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';

const DAY = 86_400_000;
const fw = (limit: number) => ({ name: 'rpm', algo: 'fixed_window' as const, limit, periodMs: DAY });
const who = { author: 'test' };

let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.disconnect());

/**
 * Holds back the reply of the next script call whose keys name `{tag}` (the call itself reaches
 * Redis at once and is decided there; only its answer is delivered late, as a slow link would).
 * On one connection Redis answers in order, so a policy change can only overtake a decision in
 * flight where the decision and the policy reads travel apart (a Cluster's shards); this gives
 * the same order on one server.
 */
function holdNextReply(client: Redis, tag: string): { held: Promise<void>; release: () => void } {
  let release!: () => void;
  let seen!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const held = new Promise<void>((r) => (seen = r));
  const c = client as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const method of ['fcall', 'evalsha'] as const) {
    const own = c[method]!;
    let armed = true;
    c[method] = function (this: unknown, ...args: unknown[]) {
      const answer = own.apply(client, args);
      if (!armed || !args.some((a) => typeof a === 'string' && a.includes(`{${tag}}`))) return answer;
      armed = false;
      seen();
      return released.then(() => answer);
    };
  }
  return { held, release };
}

describe('policy limiter: a decision in flight across a policy change', () => {
  it('is tagged with the version, policies and limits it was decided under, not the newer ones its chain was re-resolved at meanwhile', async () => {
    const prefix = uniquePrefix('prace').slice(0, -1);
    const l = createPolicyLimiter({ redis, prefix, chain: () => ['default'], ...UNHURRIED });
    try {
      const v1 = await l.policies.set('default', { limits: [fw(10)] }, who);
      // Warm: the chain resolved at v1 and its fast entry made.
      for (let i = 0; i < 3; i++) expect((await l.limit('warm')).policyVersion).toBe(v1);

      const gate = holdNextReply(redis, 'inflight');
      const inFlight = l.limit('inflight');
      await gate.held;
      const v2 = await l.policies.set('default', { limits: [fw(20)] }, { author: 'ops', reason: 'raise' });
      // The chain is re-resolved at v2 and decides there (the fast path again on the second call).
      let after = await l.limit('other');
      for (let i = 0; i < 200 && after.policyVersion !== v2; i++) {
        await new Promise((r) => setTimeout(r, 5));
        after = await l.limit('other');
      }
      after = await l.limit('other');
      expect(after).toMatchObject({ policyVersion: v2, limit: 20 });
      expect(after.policyLimits.map((s) => s.limit)).toEqual([20]);

      gate.release();
      const d = await inFlight;
      expect(d).toMatchObject({ allowed: true, policyVersion: v1, limit: 10, remaining: 9 });
      expect(d.policyLimits.map((s) => s.limit)).toEqual([10]);
      expect(d.policies).toEqual(['default']);
    } finally {
      await l.close();
    }
  });
});
