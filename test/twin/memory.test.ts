import { describe, expect, it } from 'vitest';
import { apply, gcraEval } from '../../src/twin/algorithms.js';
import { MemoryStore } from '../../src/twin/store.js';

describe('twin memory', () => {
  it('stays bounded by live state: 1M distinct keys are evicted once they are full again', () => {
    const store = new MemoryStore();
    let now = 1_764_000_000_000;
    for (let i = 0; i < 1_000_000; i++) {
      const e = gcraEval(store, `user:${i}`, 10, 1000, 10, 1, now, false);
      apply(store, e[4]);
    }
    expect(store.size).toBe(1_000_000);
    now += 101; // every key refilled its one unit: its state is default again
    // Ordinary traffic on a few hot keys sweeps the rest in the background (as Redis' active expiry).
    for (let i = 0; i < 2_200_000; i++) {
      const e = gcraEval(store, `hot:${i % 8}`, 1_000_000, 1000, 1_000_000, 1, now, false);
      apply(store, e[4]);
    }
    expect(store.size).toBeLessThanOrEqual(8);
  });

  it('never evicts live state', () => {
    const store = new MemoryStore();
    const now = 1_764_000_000_000;
    for (let i = 0; i < 10_000; i++) apply(store, gcraEval(store, `k:${i}`, 1, 60_000, 1, 1, now, false)[4]);
    store.sweep(now + 59_999, 100_000);
    expect(store.size).toBe(10_000);
    for (let i = 0; i < 10_000; i++) expect(gcraEval(store, `k:${i}`, 1, 60_000, 1, 1, now + 59_999, false)[0]).toBe(0);
  });
});
