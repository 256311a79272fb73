import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as b from '../../generated/index.js';
import { createRateLimiter } from '../../src/index.js';
import type { ScriptDef } from '../../src/runtime/script-def.js';
import { parseScriptArgs } from '../../src/twin/args.js';
import { TwinClient } from '../../src/twin/client.js';
import { MemoryStore, TwinStateError, type StoreHandle, type TwinValue } from '../../src/twin/store.js';

/**
 * The store keeps expired entries of recurring keys as ghosts (a key that comes back reuses its
 * slot) and remembers its last lookup. Neither may change an answer, and memory stays bounded.
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

  /** Nothing to recycle: every write allocates (the reference keeps no objects). */
  recycle(): undefined {
    return undefined;
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

/** Runs gcra on `key` as the fallback does: primed with where the key was found last time. */
function hinted(twin: TwinClient): (key: string, args: Record<string, number | string | undefined>, now: number) => number[] {
  const handles = new Map<string, StoreHandle | undefined>();
  return (key, args, now) => {
    twin.store.prime(key, handles.get(key));
    const reply = twin.runParsed(b.gcraScript, [key], args, [], now);
    handles.set(key, twin.store.lastHandle);
    return reply;
  };
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
      hinted: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 400 }), (ops) => {
        const store = new MemoryStore({ clock: () => now });
        const withGhosts = new TwinClient({ store });
        const plain = new TwinClient({ store: new PlainKeyspace() as unknown as MemoryStore });
        // Where each key was last found, passed back before its next call (as the fallback does).
        const handles = new Map<string, StoreHandle | undefined>();
        let now = T0;
        for (const o of ops) {
          now += o.advance;
          const def = SCRIPTS[o.script]!;
          const keys = [`k${o.key}`];
          const { args } = parseScriptArgs(def, keys, argvOf(def, { limit: String(o.limit), period_ms: String(o.periodMs), cost: String(o.cost) }));
          if (o.hinted) store.prime(keys[0]!, handles.get(keys[0]!));
          const a = outcome(() => withGhosts.runParsed(def, keys, { ...args }, [], now));
          handles.set(keys[0]!, store.lastHandle);
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

  it('recurring keys whose state expires between visits hold at most the live entries, 16 384 ghosts and the grace', () => {
    const store = new MemoryStore();
    const twin = new TwinClient({ store });
    const { args } = parseScriptArgs(b.gcraScript, ['k'], argvOf(b.gcraScript, { limit: '1000000', period_ms: '60000' }));
    let now = T0;
    const decide = hinted(twin);
    const KEYS = 60_000; // more recurring keys than the ghosts kept
    for (let i = 0; i < 400_000; i++) {
      if (i % 1_000 === 0) now++; // a state lives 1 ms: at most ~2 000 keys live at once
      decide(`user:${i % KEYS}`, args, now);
      if (i % 10_000 === 9_999) {
        let live = 0;
        for (const k of store.keys()) if (store.has(k, now)) live++;
        // The grace: entries expired within the last 16 ms (or 16k–32k reads, whichever passes first) wait where they are: 1 000 a ms here.
        expect(store.size).toBeLessThanOrEqual(live + 16_384 + 17_000);
      }
    }
  }, 120_000);

  it('ghosts of recurring keys leave once those keys stop coming, under traffic on others', () => {
    const store = new MemoryStore();
    const twin = new TwinClient({ store });
    const { args } = parseScriptArgs(b.gcraScript, ['k'], argvOf(b.gcraScript, { limit: '1000000', period_ms: '60000' }));
    const decide = hinted(twin);
    let now = T0;
    for (let i = 0; i < 100_000; i++) {
      if (i % 1_000 === 0) now++;
      decide(`user:${i % 5_000}`, args, now);
    }
    expect(store.size).toBeGreaterThan(4_000); // ghosts of the recurring keys
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
    const block = (untilMs: number): TwinValue => ({ kind: 'block', untilMs });
    for (const k of ['b', 'c']) store.set(k, block(1), T0 + 500);
    // A key that recurs: its entry expired and went, and it came back with the stale handle of it.
    // Its next expiry leaves a ghost.
    for (const k of ['a', 'e']) {
      store.set(k, block(1), T0 + 5);
      const handle = store.lastHandle;
      expect(store.get(k, 'block', T0 + 30)).toBeUndefined(); // past the grace (16 ms): handled on read
      expect(store.size).toBe(2 + (k === 'e' ? 1 : 0)); // deleted: it had not recurred yet
      store.prime(k, handle);
      store.set(k, block(1), T0 + 40);
      expect(store.get(k, 'block', T0 + 60)).toBeUndefined(); // expired again: a ghost now
      expect(store.size).toBe(3 + (k === 'e' ? 1 : 0)); // still held
    }
    expect(store.get('a', 'gcra', T0 + 60)).toBeUndefined(); // whatever kind is asked
    expect([...store.keys()].sort()).toEqual(['b', 'c']); // in no particular order
    expect(store.has('a', T0 + 60)).toBe(false);
    store.expire('a', T0 + 1_000);
    expect(store.has('a', T0 + 61)).toBe(false);
    expect(store.delete('e')).toBe(false); // a ghost: no key to delete
    expect(store.size).toBe(3);
    expect(store.delete('b')).toBe(true);
    store.set('a', { kind: 'gcra', tatMs: T0 + 100, tatNum: 0 }, T0 + 100); // back, with another kind
    expect(store.size).toBe(2);
    expect(store.get('a', 'gcra', T0 + 61)).toEqual({ kind: 'gcra', tatMs: T0 + 100, tatNum: 0 });
    expect(() => store.get('a', 'block', T0 + 61)).toThrow(TwinStateError);
    store.clear();
  });

  it('a stale handle changes nothing: the key removed, its entry reused for another key, or the store cleared', () => {
    const store = new MemoryStore();
    store.set('a', { kind: 'block', untilMs: 1 }, Infinity);
    store.get('a', 'block', T0);
    const a = store.lastHandle;
    store.delete('a');
    store.set('b', { kind: 'block', untilMs: 2 }, Infinity); // reuses a's entry
    store.prime('a', a);
    expect(store.get('a', 'block', T0)).toBeUndefined();
    store.prime('b', a); // the same entry, now b's: a valid handle of b
    expect(store.get('b', 'block', T0)).toEqual({ kind: 'block', untilMs: 2 });
    const b = store.lastHandle;
    store.clear();
    store.prime('b', b);
    expect(store.get('b', 'block', T0)).toBeUndefined();
    store.set('', { kind: 'block', untilMs: 3 }, Infinity);
    store.prime('', b); // a removed entry holds the key '': never taken for the key ''
    expect(store.get('', 'block', T0)).toEqual({ kind: 'block', untilMs: 3 });
  });
});

describe('twin store: what a removed key leaves behind', () => {
  it('a deleted or expired value that recycle does not hand out (a collection: fair share tenants, a log, leases) is let go with its key', () => {
    const store = new MemoryStore();
    const spares = () => (store as unknown as { spare: { value: unknown }[] }).spare.map((e) => e.value);
    const big = (i: number) => ({ kind: 'fair_tenants', tenants: new Map([[`t${i}`, i]]) }) as unknown as TwinValue;
    const kept: unknown[] = [];
    for (let i = 0; i < 40; i++) {
      const v = big(i);
      kept.push(v);
      store.set(`fair:${i}`, v, 1_000);
      store.set(`log:${i}`, { kind: 'sliding_log', entries: [{ ts: 1, cum: 1, cost: 1 }] }, 1_000);
      store.set(`g:${i}`, { kind: 'gcra', tatMs: 5, tatNum: 0 }, 1_000);
    }
    for (let i = 0; i < 20; i++) {
      expect(store.delete(`fair:${i}`)).toBe(true);
      expect(store.delete(`log:${i}`)).toBe(true);
      expect(store.delete(`g:${i}`)).toBe(true);
    }
    // Past the expiry and the grace, with reads: the rest is swept.
    for (let t = 1_001; t < 1_100; t++) expect(store.get('other', 'gcra', t)).toBeUndefined();
    const held = spares();
    for (const v of kept) expect(held).not.toContain(v);
    expect(held.some((v) => (v as { kind: string }).kind === 'sliding_log')).toBe(false);
    // A gcra value may stay for reuse: that is what recycle is for.
    expect(held.every((v) => ['gcra', 'block'].includes((v as { kind: string }).kind))).toBe(true);
  });

  it('delete answers false for a key a read already found expired (as DEL of an expired key answers 0)', () => {
    const store = new MemoryStore();
    store.set('a', { kind: 'gcra', tatMs: 5, tatNum: 0 }, 10);
    store.set('b', { kind: 'gcra', tatMs: 5, tatNum: 0 }, 100);
    expect(store.get('a', 'gcra', 11)).toBeUndefined();
    expect(store.delete('a')).toBe(false);
    expect(store.delete('b')).toBe(true);
    expect(store.delete('b')).toBe(false);
  });
});

describe('twin store: its hash table', () => {
  type Op = { op: 'set' | 'get' | 'delete' | 'has'; key: number } | { op: 'fit' };
  /** The store's table, to shrink it as the idle sweep would after a second (fitMemory). */
  const fit = (store: MemoryStore) => (store as unknown as { map: { fit(): void } }).map.fit();

  it('finds every key it holds and none it does not, through growth, removals from the middle of runs and shrinking', () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constantFrom('set' as const, 'get' as const, 'delete' as const, 'has' as const), key: fc.nat(3_000) }) },
      { weight: 1, arbitrary: fc.constant({ op: 'fit' as const }) },
    );
    fc.assert(
      fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 400 }), { minLength: 1, maxLength: 12 }), (bursts) => {
        const store = new MemoryStore();
        const model = new Map<string, number>();
        let n = 0;
        for (const burst of bursts) {
          for (const o of burst) {
            if (o.op === 'fit') {
              fit(store);
              continue;
            }
            const key = `k:{${o.key}}:m`;
            if (o.op === 'set') {
              // A read first, as the scripts do (the insert after a miss takes the cell the miss stopped at).
              if (n++ % 2 === 0) store.get(key, 'block', T0);
              store.set(key, { kind: 'block', untilMs: o.key }, Infinity);
              model.set(key, o.key);
            } else if (o.op === 'get') expect(store.get(key, 'block', T0)?.untilMs).toBe(model.get(key));
            else if (o.op === 'has') expect(store.has(key, T0)).toBe(model.has(key));
            else expect(store.delete(key)).toBe(model.delete(key));
          }
          // Many keys at once, then most of them gone: the table grows, and runs lose entries from their middle.
          for (let i = 0; i < 2_000; i++) store.set(`bulk:${i}`, { kind: 'block', untilMs: i }, Infinity);
          for (let i = 0; i < 2_000; i++) if (i % 7 !== 0) expect(store.delete(`bulk:${i}`)).toBe(true);
          for (let i = 0; i < 2_000; i++) expect(store.has(`bulk:${i}`, T0)).toBe(i % 7 === 0);
          for (let i = 0; i < 2_000; i += 7) store.delete(`bulk:${i}`);
          expect(store.size).toBe(model.size);
          expect(new Set(store.keys())).toEqual(new Set(model.keys()));
          for (const [k, v] of model) expect(store.get(k, 'block', T0)?.untilMs).toBe(v);
        }
        store.clear();
        expect(store.size).toBe(0);
        expect([...store.keys()]).toEqual([]);
      }),
      { numRuns: 40 },
    );
  });

  it('an insert after a miss re-probes when the table changed in between (a removal may have emptied a cell before it)', () => {
    const store = new MemoryStore();
    for (let i = 0; i < 5_000; i++) store.set(`a:${i}`, { kind: 'block', untilMs: i }, Infinity);
    for (let i = 0; i < 5_000; i++) {
      const key = `b:${i}`;
      expect(store.get(key, 'block', T0)).toBeUndefined(); // a miss: where the key would go is remembered
      store.delete(`a:${i}`); // the table changes (entries after it move back)
      store.set(key, { kind: 'block', untilMs: i }, Infinity); // last looked up: no lookup of its own
      expect(store.has(key, T0)).toBe(true);
    }
    for (let i = 0; i < 5_000; i++) expect(store.get(`b:${i}`, 'block', T0)?.untilMs).toBe(i);
    expect(store.size).toBe(5_000);
  });

  it('an idle store shrinks its table and its pool of removed entries a second after a burst of keys expired, and its timer stops', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      let now = T0;
      const store = new MemoryStore({ clock: () => now });
      for (let i = 0; i < 50_000; i++) store.set(`ip:${i}`, { kind: 'gcra', tatMs: now + 100, tatNum: 0 }, now + 100);
      const inner = store as unknown as { map: { capacity: number }; spare: unknown[] };
      expect(inner.map.capacity).toBeGreaterThanOrEqual(100_000);
      now += 200;
      vi.advanceTimersByTime(100); // the idle sweep: every key goes; the table and the pool are kept for a while
      expect(store.size).toBe(0);
      expect(inner.map.capacity).toBeGreaterThanOrEqual(100_000);
      expect(inner.spare.length).toBeGreaterThan(512);
      vi.advanceTimersByTime(5_000);
      expect(inner.map.capacity).toBe(64);
      expect(inner.spare.length).toBeLessThanOrEqual(512);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
