/** block (lib/algo_block.lua) over a MemoryStore: a key denied until a time. */
import { type MemoryStore } from './store.js';
import { expiresAt } from './eval.js';

export function blockRead(store: MemoryStore, key: string, now: number): number | undefined {
  const v = store.get(key, 'block', now);
  if (!v || v.untilMs <= now) return undefined;
  return v.untilMs;
}

export function block(store: MemoryStore, key: string, durationMs: number, now: number, simulated: boolean): number {
  if (durationMs === 0) {
    store.delete(key);
    return 0;
  }
  const untilMs = now + durationMs;
  const current = blockRead(store, key, now);
  if (current !== undefined && current > untilMs) return current;
  store.set(key, { kind: 'block', untilMs }, expiresAt(now, durationMs, simulated));
  return untilMs;
}
