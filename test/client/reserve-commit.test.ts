import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, InvalidArgumentError, type LimitSpec } from '../../src/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

// reserve → commit / cancel through the limiter: an LLM call's tokens are estimated first and
// settled when the response has streamed back, by whichever process sees it end.
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const HOUR = 3_600_000;
const limits: LimitSpec[] = [
  { name: 'rpm', algo: 'fixed_window', limit: 10, periodMs: HOUR },
  { name: 'tpm', algo: 'gcra', limit: 1_000, periodMs: HOUR },
];

describe('reserve, commit, cancel', () => {
  for (const [label, extra] of [
    ['on Redis', {}],
    ['on the in-memory twin', { redis: undefined }],
  ] as const) {
    it(`takes the estimate all-or-nothing, settles the actual once — ${label}`, async () => {
      const rl = createRateLimiter({ redis, prefix: uniquePrefix('rsv'), limits, timeoutMs: 10_000, ...extra });
      const r = await rl.reserve('agent', { cost: { tpm: 600 } });
      expect(r).toMatchObject({ allowed: true });
      expect(typeof r.handle).toBe('string');
      expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([9, 400]);
      // Too big an estimate is denied at once and takes nothing, RPM included.
      expect(await rl.reserve('agent', { cost: { tpm: 500 } })).toMatchObject({ allowed: false, handle: null, deniedBy: 'tpm' });
      expect(await rl.reserve('agent', { cost: { tpm: 5_000 } })).toMatchObject({ allowed: false, retryAfterMs: -1 });
      expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([9, 400]);
      // The response used 250 tokens: 350 come back, the request stays counted.
      expect((await rl.commit(r.handle!, { tpm: 250 })).status).toBe('committed');
      expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([9, 750]);
      expect((await rl.commit(r.handle!, { tpm: 1 })).status).toBe('already-settled');
      expect((await rl.cancel(r.handle!)).status).toBe('already-settled');
      expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([9, 750]);
      // Cancel gives everything back; an overage goes into debt (later calls wait).
      const c = await rl.reserve('agent', { cost: { tpm: 100 } });
      expect((await rl.cancel(c.handle!)).status).toBe('cancelled');
      expect((await rl.peek('agent')).limits.map((l) => l.remaining)).toEqual([9, 750]);
      const o = await rl.reserve('agent', { cost: { tpm: 700 } });
      expect((await rl.commit(o.handle!, { tpm: 900 })).status).toBe('committed');
      expect(await rl.limit('agent', { cost: { tpm: 1 } })).toMatchObject({ allowed: false, deniedBy: 'tpm' });
      await rl.close();
    });
  }

  it('a handle settles in another process’s limiter; a tampered one is refused before any round trip', async () => {
    const prefix = uniquePrefix('rsv-x');
    const a = createRateLimiter({ redis, prefix, limits, timeoutMs: 10_000 });
    const b = createRateLimiter({ redis, prefix, limits, timeoutMs: 10_000 });
    const r = await a.reserve('agent', { cost: { tpm: 300 } });
    await expect(b.commit(`${r.handle!.slice(0, -2)}xx`, { tpm: 10 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(b.commit(r.handle!, { tpm: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(b.commit(r.handle!, { tpm: Number.NaN })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(b.commit(r.handle!, { nope: 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await b.commit(r.handle!, { tpm: 100 })).status).toBe('committed');
    expect((await a.peek('agent')).limits.map((l) => l.remaining)).toEqual([9, 900]);
    await a.close();
    await b.close();
  });
});
