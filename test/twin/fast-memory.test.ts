import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as b from '../../generated/index.js';
import { createRateLimiter } from '../../src/index.js';
import type { ScriptDef } from '../../src/runtime/script-def.js';
import { parseScriptArgs } from '../../src/twin/args.js';
import { TwinClient } from '../../src/twin/client.js';
import { MemoryStore, TwinStateError, type TwinValue } from '../../src/twin/store.js';

/**
 * The store keeps expired entries as ghosts (a key that comes back reuses its slot) and
 * remembers its last lookup. Neither may change an answer, and memory stays bounded.
 */
const T0 = 1_764_000_000_000;

/** Redis' keyspace, nothing more: an entry is gone once now > its expiry. The reference. */
class PlainKeyspace {
  private readonly map = new Map<string, { value: TwinValue; expiresAt: number }>();
  private now = -Infinity;

  get(key: string, kind: TwinValue['kind'], now: number, owner: string = kind): TwinValue | undefined {
    this.now = now;
    const e = this.map.get(key);
    if (!e || now > e.expiresAt) return undefined;
    if (e.value.kind !== kind) throw new TwinStateError(`redlimit ${owner}: key ${key} does not hold ${owner} state`);
    return e.value;
  }

  set(key: string, value: TwinValue, expiresAt: number): void {
    this.map.set(key, { value, expiresAt });
  }

  expire(key: string, expiresAt: number): void {
    const e = this.map.get(key);
    if (e && this.now <= e.expiresAt) e.expiresAt = expiresAt;
  }

  has(key: string, now: number): boolean {
    const e = this.map.get(key);
    return e !== undefined && now <= e.expiresAt;
  }

  delete(key: string): boolean {
    return this.map.delete(key);
  }
}

const SCRIPTS: Record<string, ScriptDef> = {
  gcra: b.gcraScript,
  gcra_peek: b.gcraPeekScript,
  gcra_refund: b.gcraRefundScript,
  token_bucket: b.tokenBucketScript,
  token_bucket_refund: b.tokenBucketRefundScript,
  fixed_window: b.fixedWindowScript,
  sliding_window: b.slidingWindowScript,
  sliding_log: b.slidingLogScript,
};

function argvOf(def: ScriptDef, values: Record<string, string>): string[] {
  return def.args.map((a) => values[a.name] ?? '');
}

function outcome(run: () => number[]): unknown {
  try {
    return { ok: run() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('twin store: ghosts and the last lookup', () => {
  it('answers every script exactly as a plain keyspace does, over many keys and expiries', () => {
    const op = fc.record({
      script: fc.constantFrom(...Object.keys(SCRIPTS)),
      key: fc.integer({ min: 0, max: 11 }),
      limit: fc.integer({ min: 1, max: 5 }),
      periodMs: fc.constantFrom(1, 3, 10, 40),
      cost: fc.integer({ min: 0, max: 3 }),
      advance: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 60 })),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 400 }), (ops) => {
        const store = new MemoryStore({ clock: () => now });
        const withGhosts = new TwinClient({ store });
        const plain = new TwinClient({ store: new PlainKeyspace() as unknown as MemoryStore });
        let now = T0;
        for (const o of ops) {
          now += o.advance;
          const def = SCRIPTS[o.script]!;
          const keys = [`k${o.key}`];
          const { args } = parseScriptArgs(def, keys, argvOf(def, { limit: String(o.limit), period_ms: String(o.periodMs), cost: String(o.cost) }));
          const a = outcome(() => withGhosts.runParsed(def, keys, { ...args }, [], now));
          const e = outcome(() => plain.runParsed(def, keys, { ...args }, [], now));
          expect(a).toEqual(e);
          for (let k = 0; k < 12; k++) expect(store.has(`k${k}`, now)).toBe((plain.store as unknown as PlainKeyspace).has(`k${k}`, now));
        }
        store.clear();
      }),
      { numRuns: 200 },
    );
  });

  it('a key that comes back after its state expired answers as a new key', async () => {
    let now = T0;
    const limiter = createRateLimiter({ limits: [{ name: 'm', algo: 'gcra', limit: 2, periodMs: 10 }], clock: () => now });
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) {
        const d = await limiter.limit(`id:${i}`);
        expect(d.allowed).toBe(true);
        expect(d.remaining).toBe(1);
      }
      now += 11; // every key is full again: its state has expired
    }
    await limiter.close();
  });

  it('recurring keys whose state expires between visits hold at most 1.5x the live entries plus 16 384', () => {
    const store = new MemoryStore();
    const twin = new TwinClient({ store });
    const { args } = parseScriptArgs(b.gcraScript, ['k'], argvOf(b.gcraScript, { limit: '1000000', period_ms: '60000' }));
    let now = T0;
    const KEYS = 60_000; // more recurring keys than the warm ghosts kept
    for (let i = 0; i < 400_000; i++) {
      if (i % 1_000 === 0) now++; // a state lives 1 ms: at most ~2 000 keys live at once
      twin.runParsed(b.gcraScript, [`user:${i % KEYS}`], args, [], now);
      if (i % 10_000 === 9_999) {
        let live = 0;
        for (const k of store.keys()) if (store.has(k, now)) live++;
        expect(store.size).toBeLessThanOrEqual(Math.ceil(1.5 * live) + 16_384 + 8);
      }
    }
  }, 120_000);

  it('ghosts of recurring keys leave once those keys stop coming, under traffic on others', () => {
    const store = new MemoryStore();
    const twin = new TwinClient({ store });
    const { args } = parseScriptArgs(b.gcraScript, ['k'], argvOf(b.gcraScript, { limit: '1000000', period_ms: '60000' }));
    let now = T0;
    for (let i = 0; i < 100_000; i++) {
      if (i % 1_000 === 0) now++;
      twin.runParsed(b.gcraScript, [`user:${i % 5_000}`], args, [], now);
    }
    // Only 8 hot keys from here on, each decision keeping its state alive.
    const { args: hot } = parseScriptArgs(b.gcraScript, ['k'], argvOf(b.gcraScript, { limit: '1000', period_ms: '3600000' }));
    now += 10;
    for (let i = 0; i < 400_000; i++) twin.runParsed(b.gcraScript, [`hot:${i % 8}`], { ...hot, cost: i < 8 ? 1 : 0 }, [], now);
    expect(store.size).toBeLessThanOrEqual(8);
  }, 120_000);

  it('an idle limiter gives back its recurring keys too, and its timer stops', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    let now = T0;
    const limiter = createRateLimiter({ limits: [{ name: 'm', algo: 'gcra', limit: 1_000_000, periodMs: 60_000 }], clock: () => now });
    for (let i = 0; i < 60_000; i++) {
      if (i % 500 === 0) now++;
      await limiter.limit(`id:${i % 3_000}`);
    }
    expect(limiter.stats().fallbackKeys).toBeGreaterThan(0);
    vi.advanceTimersByTime(60_000);
    expect(limiter.stats().fallbackKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await limiter.close();
  });

  it('a ghost is no key: not listed, not deleted, not given an expiry', () => {
    const store = new MemoryStore();
    store.set('a', { kind: 'block', untilMs: 1 }, T0 + 5);
    // Live keys beside it, so the ghost is kept (cold ghosts: at most half the live entries).
    for (const k of ['b', 'c', 'd', 'f', 'g']) store.set(k, { kind: 'block', untilMs: 1 }, T0 + 50);
    expect(store.get('a', 'block', T0 + 6)).toBeUndefined(); // expired: a ghost now
    expect(store.size).toBe(6); // still held, as a ghost
    expect(store.get('a', 'gcra', T0 + 6)).toBeUndefined(); // whatever kind is asked
    expect([...store.keys()]).toEqual(['b', 'c', 'd', 'f', 'g']);
    expect(store.has('a', T0 + 6)).toBe(false);
    store.expire('a', T0 + 1_000);
    expect(store.has('a', T0 + 7)).toBe(false);
    store.set('e', { kind: 'block', untilMs: 1 }, T0 + 5);
    expect(store.get('e', 'block', T0 + 6)).toBeUndefined();
    expect(store.size).toBe(7);
    expect(store.delete('e')).toBe(false); // a ghost: no key to delete
    expect(store.size).toBe(6);
    expect(store.delete('b')).toBe(true);
    store.set('a', { kind: 'gcra', tatMs: T0 + 100, tatNum: 0 }, T0 + 100); // back, with another kind
    expect(store.get('a', 'gcra', T0 + 8)).toEqual({ kind: 'gcra', tatMs: T0 + 100, tatNum: 0 });
    expect(() => store.get('a', 'block', T0 + 8)).toThrow(TwinStateError);
    store.clear();
  });
});
