import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { apply, gcraEval } from '../../src/twin/algorithms.js';
import { MemoryStore, type TwinValue } from '../../src/twin/store.js';

const T0 = 1_764_000_000_000;
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Keys of `store` that hold live state at `now`. */
function liveKeys(store: MemoryStore, now: number): number {
  let live = 0;
  for (const k of store.keys()) if (store.has(k, now)) live++;
  return live;
}

describe('twin memory', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('stays bounded by live state: 1M distinct keys are evicted once they are full again', () => {
    const store = new MemoryStore();
    let now = T0;
    for (let i = 0; i < 1_000_000; i++) {
      const e = gcraEval(store, `user:${i}`, 10, 1000, 10, 1, now, false);
      apply(store, e[4]);
    }
    expect(store.size).toBe(1_000_000);
    now += 101; // every key refilled its one unit: its state is default again
    // Ordinary traffic on a few hot keys sweeps the rest (as Redis' active expiry).
    for (let i = 0; i < 2_200_000; i++) {
      const e = gcraEval(store, `hot:${i % 8}`, 1_000_000, 1000, 1_000_000, 1, now, false);
      apply(store, e[4]);
    }
    expect(store.size).toBeLessThanOrEqual(8);
  }, 180_000); // 3.2M synchronous operations: half a minute beside a CPU hog

  it('never evicts live state', () => {
    const store = new MemoryStore();
    const now = T0;
    for (let i = 0; i < 10_000; i++) apply(store, gcraEval(store, `k:${i}`, 1, 60_000, 1, 1, now, false)[4]);
    store.sweep(now + 59_999, 100_000);
    expect(store.size).toBe(10_000);
    for (let i = 0; i < 10_000; i++) expect(gcraEval(store, `k:${i}`, 1, 60_000, 1, 1, now + 59_999, false)[0]).toBe(0);
  });

  it('a stream of distinct ids through a limiter without Redis holds at most twice the live entries', async () => {
    // 1 per 100 ms: an admitted id holds state for 100 ms, then its key is gone (now > expiry).
    let now = T0;
    const limiter = createRateLimiter({ limits: [{ name: 'ip', algo: 'gcra', limit: 1, periodMs: 100 }], clock: () => now });
    const PER_MS = 80;
    const TTL_MS = 100;
    for (let i = 0; i < 200_000; i++) {
      if (i % PER_MS === 0) now++;
      expect((await limiter.limit(`ip:${i}`)).allowed).toBe(true);
      if (i % 10_000 === 9_999) {
        // Live: the ids admitted within the last TTL_MS (inclusive), PER_MS of them per ms.
        const live = Math.min(i + 1, (TTL_MS + 1) * PER_MS);
        expect(limiter.stats().fallbackKeys).toBeLessThanOrEqual(2 * live);
      }
    }
    await limiter.close();
  });

  it('an idle store empties once every TTL has passed, with no further reads (injected clock)', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    let now = T0;
    const store = new MemoryStore({ clock: () => now });
    for (let i = 0; i < 100_000; i++) apply(store, gcraEval(store, `user:${i}`, 1, 100 + (i % 900), 1, 1, now, false)[4]);
    for (let i = 0; i < 1_000; i++) apply(store, gcraEval(store, `long:${i}`, 1, 3_600_000, 1, 1, now, false)[4]);
    expect(store.size).toBe(101_000);

    // Nothing expired yet: however long the timers run, nothing live goes.
    vi.advanceTimersByTime(60_000);
    expect(store.size).toBe(101_000);

    now += 1_000; // every short TTL (at most 999 ms) has passed; the hour-long ones have not
    vi.advanceTimersByTime(60_000);
    expect(store.size).toBe(1_000);
    expect(liveKeys(store, now)).toBe(1_000);

    now += 3_600_000;
    vi.advanceTimersByTime(60_000);
    expect(store.size).toBe(0);
    // Empty: the sweep stopped itself.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an idle limiter without Redis gives its memory back after the TTLs pass', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    let now = T0;
    const limiter = createRateLimiter({ limits: [{ name: 'ip', algo: 'gcra', limit: 1, periodMs: 100 }], clock: () => now });
    for (let i = 0; i < 50_000; i++) {
      if (i % 1000 === 0) now++;
      await limiter.limit(`ip:${i}`);
    }
    expect(limiter.stats().fallbackKeys).toBe(50_000);
    now += 200;
    vi.advanceTimersByTime(60_000);
    expect(limiter.stats().fallbackKeys).toBe(0);
    await limiter.close();
  });

  it('keeps Redis semantics under any mix of writes, expiry moves, deletes and reads', () => {
    type Op =
      | { op: 'set'; key: number; ttl: number }
      | { op: 'expire'; key: number; ttl: number }
      | { op: 'delete'; key: number }
      | { op: 'get'; key: number }
      | { op: 'tick'; ms: number }
      | { op: 'sweep'; budget: number }
      | { op: 'clear' };
    const key = fc.integer({ min: 0, max: 15 });
    const ttl = fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(Infinity));
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), key, ttl }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('expire' as const), key, ttl }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
      { weight: 4, arbitrary: fc.record({ op: fc.constant('get' as const), key }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 20 }) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('sweep' as const), budget: fc.integer({ min: 0, max: 5 }) }) },
      { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        let now = T0;
        const store = new MemoryStore({ clock: () => now });
        // The model: Redis' keyspace, where a key is gone once now > its expiry.
        const model = new Map<string, { value: TwinValue; expiresAt: number }>();
        const alive = (k: string) => {
          const m = model.get(k);
          return m !== undefined && now <= m.expiresAt ? m : undefined;
        };
        for (const o of ops) {
          const k = `k${'key' in o ? o.key : ''}`;
          if (o.op === 'set') {
            const value: TwinValue = { kind: 'block', untilMs: now };
            store.set(k, value, now + o.ttl);
            model.set(k, { value, expiresAt: now + o.ttl });
          } else if (o.op === 'expire') {
            // A script reads a key before it moves its expiry: an expired key is never revived.
            store.get(k, 'block', now);
            store.expire(k, now + o.ttl);
            const m = alive(k);
            if (m) m.expiresAt = now + o.ttl;
            else model.delete(k);
          } else if (o.op === 'delete') {
            // An expired key may or may not have been swept yet: only the two sure answers are checked.
            const deleted = store.delete(k);
            if (alive(k)) expect(deleted).toBe(true);
            if (!model.has(k)) expect(deleted).toBe(false);
            model.delete(k);
          } else if (o.op === 'get') {
            expect(store.get(k, 'block', now)).toBe(alive(k)?.value);
          } else if (o.op === 'tick') now += o.ms;
          else if (o.op === 'sweep') store.sweep(now, o.budget);
          else {
            store.clear();
            model.clear();
          }
          for (let i = 0; i < 16; i++) expect(store.has(`k${i}`, now)).toBe(alive(`k${i}`) !== undefined);
          expect(store.size).toBeGreaterThanOrEqual([...model.keys()].filter((m) => alive(m)).length);
        }
        // A full sweep leaves exactly the live keys.
        store.sweep(now, 1_000);
        expect(new Set(store.keys())).toEqual(new Set([...model.keys()].filter((m) => alive(m))));
        store.clear();
      }),
      { numRuns: 300 },
    );
  });

  it('does not keep a process alive: it exits with live entries in the store', async () => {
    const code = `
      import { createRateLimiter } from './src/index.ts';
      const limiter = createRateLimiter({ limits: [{ name: 'day', algo: 'gcra', limit: 10, periodMs: 86_400_000 }] });
      for (let i = 0; i < 1000; i++) await limiter.limit('user:' + i);
      console.log(limiter.stats().fallbackKeys);
    `;
    // The timeout only stops a child that never exits (the defect); it measures nothing.
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repoRoot, timeout: 120_000 }, (err, out) => (err ? reject(err) : resolve(out))),
    );
    expect(stdout.trim()).toBe('1000');
  });
});
