/** concurrency (lib/algo_concurrency.lua) over a MemoryStore: leases by holder, each until a time. */
import { type MemoryStore } from './store.js';
import { NO_WRITES, apply, expiresAt, type Eval } from './eval.js';

function leases(store: MemoryStore, key: string, now: number): Map<string, number> | undefined {
  return store.get(key, 'leases', now, 'concurrency')?.leases;
}

function leasesTrim(store: MemoryStore, key: string, now: number): number {
  const l = leases(store, key, now);
  if (!l) return 0;
  for (const [id, until] of l) if (until <= now) l.delete(id);
  if (l.size === 0) store.delete(key);
  return l.size;
}

function leasesReset(store: MemoryStore, key: string, now: number): number {
  const l = leases(store, key, now);
  if (!l || l.size === 0) return 0;
  let last = -Infinity;
  for (const until of l.values()) last = Math.max(last, until);
  return Math.max(last - now, 0);
}

function leasesExpire(store: MemoryStore, key: string, now: number, simulated: boolean): number {
  const reset = leasesReset(store, key, now);
  if (reset > 0) store.expire(key, expiresAt(now, reset, simulated));
  return reset;
}

/** Live leases (until > now), dropping the rest first when `trim` (rl_concurrency_live). */
function leasesLive(store: MemoryStore, key: string, now: number, trim: boolean): number {
  if (trim) return leasesTrim(store, key, now);
  const l = leases(store, key, now);
  let live = 0;
  if (l) for (const until of l.values()) if (until > now) live++;
  return live;
}

/**
 * One slot for `holder` (rl_concurrency_eval): cost 1 takes a slot (a holder still live renews
 * its own, always admitted), cost 0 takes nothing; decided at cost + keep free slots.
 */
export function concurrencyEval(store: MemoryStore, key: string, limit: number, periodMs: number, holder: string, cost: number, now: number, simulated: boolean, trim: boolean, keep = 0): Eval {
  let live = leasesLive(store, key, now, trim);
  const l = leases(store, key, now);
  const renew = cost > 0 && (l?.get(holder) ?? -Infinity) > now;
  if (!renew) {
    const need = cost + keep;
    if (need > limit) return [0, Math.max(limit - live, 0), leasesReset(store, key, now), -1, NO_WRITES];
    if (live + need > limit) {
      const soonest = [...l!.values()].filter((u) => u > now).sort((x, y) => x - y);
      return [0, Math.max(limit - live, 0), leasesReset(store, key, now), soonest[live + need - limit - 1]! - now, NO_WRITES];
    }
    if (cost === 0) return [1, limit - live, leasesReset(store, key, now), 0, NO_WRITES];
    live++;
  }
  let reset = periodMs;
  if (l) for (const [id, until] of l) if (id !== holder && until - now > reset) reset = until - now;
  const at = expiresAt(now, reset, simulated);
  const until = now + periodMs;
  return [
    1,
    Math.max(limit - live, 0),
    reset,
    0,
    [
      (s) => {
        const m = leases(s, key, now);
        if (m) {
          m.set(holder, until);
          s.expire(key, at);
        } else s.set(key, { kind: 'leases', leases: new Map([[holder, until]]) }, at);
      },
    ],
  ];
}

export function concurrencyAcquire(store: MemoryStore, key: string, limit: number, periodMs: number, leaseId: string, now: number, simulated: boolean, keep = 0): number[] {
  const e = concurrencyEval(store, key, limit, periodMs, leaseId, 1, now, simulated, true, keep);
  if (e[0] === 1) apply(store, e[4]);
  return [e[0], e[1], e[2], e[3]];
}

export function concurrencyRelease(store: MemoryStore, key: string, leaseId: string, now: number, simulated: boolean): number[] {
  const l = leases(store, key, now);
  const until = l?.get(leaseId);
  let released = 0;
  if (until !== undefined) {
    l!.delete(leaseId);
    if (l!.size === 0) store.delete(key);
    if (until > now) released = 1;
  }
  const live = leasesTrim(store, key, now);
  leasesExpire(store, key, now, simulated);
  return [released, live];
}

export function concurrencyPeek(store: MemoryStore, key: string, limit: number, now: number, keep = 0): number[] {
  const live = leasesLive(store, key, now, false);
  return [live + 1 + keep <= limit ? 1 : 0, Math.max(limit - live, 0), leasesReset(store, key, now), live];
}
