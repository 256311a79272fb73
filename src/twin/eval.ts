/** What every twin algorithm returns: the decision now, and the writes to apply only if admitted. */
import { type MemoryStore } from './store.js';

/** allowed (1/0), remaining, resetAfterMs, retryAfterMs, and the writes to apply if admitted. */
export type Eval = [number, number, number, number, Write[]];
export type Write = (store: MemoryStore) => void;

const SIMULATED_GRACE_MS = 60_000;

/** Absolute expiry of a key written at `now` with `ttl` (the twin's clock is always the caller's). */
export function expiresAt(now: number, ttl: number, simulated: boolean): number {
  return now + ttl + (simulated ? SIMULATED_GRACE_MS : 0);
}

export const NO_WRITES: Write[] = [];
export const del = (key: string): Write[] => [(s) => void s.delete(key)];

export function apply(store: MemoryStore, writes: Write[]): void {
  for (const w of writes) w(store);
}

// --- priority classes -------------------------------------------------------------------------

/**
 * Units a call of share `sharePpm` (parts per million of `capacity`) must leave after it
 * (lib/priority.lua rl_keep): capacity - floor(capacity * sharePpm / 1e6), 0 for undefined or 1e6.
 * Every algorithm decides at cost + keep and takes cost.
 */
export function keep(capacity: number, sharePpm: number | undefined): number {
  if (sharePpm === undefined || sharePpm >= 1_000_000) return 0;
  const r = capacity % 1_000_000; // capacity >= 1: the same as Lua's math.fmod
  const rs = r * sharePpm;
  return capacity - ((capacity - r) / 1_000_000) * sharePpm - (rs - (rs % 1_000_000)) / 1_000_000;
}
