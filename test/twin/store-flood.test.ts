import { describe, expect, it } from 'vitest';
import { Table, keyHash } from '../../src/twin/store.js';

/**
 * The twin's keyspace index hashes ids in JS with a per-table seed; ids chosen to collide (hash
 * flooding: whoever names the ids a limiter keys by) would make its probe runs long. A run past
 * its bound moves every key into a Map for the table's life: found, inserted and removed alike.
 */
type Entry = Parameters<Table['insert']>[0];
const entry = (key: string, seed: number): Entry =>
  ({ key, value: { kind: 'block', untilMs: 0 }, expiresAt: Infinity, slot: -1, ring: -1, ghost: false, recurs: false, hash: keyHash(key, seed), cell: -1 }) as Entry;

describe('twin store index under hash flooding', () => {
  it('ids that all share one home cell move the index to a Map, and every operation still answers right', () => {
    const seed = 0x5eed;
    // Found by search under the known seed, as an attacker who knew it would: one home cell of 4096.
    const keys: string[] = [];
    for (let i = 0; keys.length < 400; i++) if ((keyHash(`flood-${i}`, seed) & 4095) === 7) keys.push(`flood-${i}`);
    const t = new Table(seed);
    const held = keys.map((k) => entry(k, seed));
    for (const e of held) {
      expect(t.find(e.key, e.hash)).toBeUndefined();
      t.insert(e);
    }
    expect(t.onMap).toBe(true);
    expect(t.count).toBe(400);
    for (const e of held) expect(t.find(e.key, e.hash)).toBe(e);
    for (const e of held.slice(0, 200)) t.remove(e);
    t.remove(held[0]!); // removed twice: nothing
    expect(t.count).toBe(200);
    for (const e of held.slice(0, 200)) expect(t.find(e.key, e.hash)).toBeUndefined();
    for (const e of held.slice(200)) expect(t.find(e.key, e.hash)).toBe(e);
    expect(new Set(t.entries().map((e) => e.key))).toEqual(new Set(keys.slice(200)));
    expect(t.capacity).toBeGreaterThanOrEqual(2 * t.count);
    t.clear();
    expect(t.count).toBe(0);
    expect(held.every((e) => e.cell === -1)).toBe(true);
  });

  it('ids a service would use never get there', () => {
    const seed = (Math.random() * 0x1_0000_0000) | 0;
    const t = new Table(seed);
    const held = Array.from({ length: 50_000 }, (_, i) => entry(i % 2 ? `user:${i}` : `203.0.113.${i % 256}/${i}`, seed));
    for (const e of held) {
      t.find(e.key, e.hash);
      t.insert(e);
    }
    for (const e of held.slice(0, 25_000)) t.remove(e);
    expect(t.onMap).toBe(false);
    for (const e of held.slice(25_000)) expect(t.find(e.key, e.hash)).toBe(e);
  });
});
