/** sliding_log (lib/algo_sliding_log.lua) over a MemoryStore: one entry per admitted call. */
import { type MemoryStore } from './store.js';
import { NO_WRITES, expiresAt, type Eval } from './eval.js';

/** Live entries (ts > now - period). Reads only: an admitting write drops the rest (see below). */
function slidingLogLive(store: MemoryStore, key: string, periodMs: number, now: number) {
  const v = store.get(key, 'sliding_log', now);
  if (!v) return [];
  const firstLive = v.entries.findIndex((e) => e.ts > now - periodMs);
  return firstLive === -1 ? [] : v.entries.slice(firstLive);
}

/** `trim`: an admitting write also drops the entries that left the window, after its ZADD (as the Lua). */
export function slidingLogEval(store: MemoryStore, key: string, limit: number, periodMs: number, cost: number, now: number, simulated: boolean, trim: boolean, keep = 0): Eval {
  const live = slidingLogLive(store, key, periodMs, now);
  const oldest = live[0];
  const newest = live[live.length - 1];
  const used = oldest && newest ? newest.cum - oldest.cum + oldest.cost : 0;
  const cumulative = newest ? newest.cum : 0;
  const reset = used > 0 ? Math.max(newest!.ts + periodMs - now, 0) : 0;
  const need = cost + keep;
  if (need > limit) return [0, limit - used, reset, -1, NO_WRITES];
  if (used + need > limit) {
    const needed = used + need - limit;
    let freed = 0;
    let retry = 0;
    for (const e of live) {
      freed += e.cost;
      if (freed >= needed) {
        retry = e.ts + periodMs - now;
        break;
      }
    }
    return [0, limit - used, reset, retry, NO_WRITES];
  }
  if (cost === 0) return [1, limit - used, reset, 0, NO_WRITES];
  const at = expiresAt(now, periodMs, simulated);
  return [
    1,
    limit - used - cost,
    periodMs,
    0,
    [
      (s) => {
        const v = s.get(key, 'sliding_log', now);
        const entry = { ts: now, cum: cumulative + cost, cost };
        if (v) {
          // A sorted set ordered by score: insert after every entry with ts <= now.
          let i = v.entries.length;
          while (i > 0 && v.entries[i - 1]!.ts > now) i--;
          v.entries.splice(i, 0, entry);
          s.expire(key, at);
          if (trim) v.entries = v.entries.filter((e) => e.ts > now - periodMs);
        } else {
          s.set(key, { kind: 'sliding_log', entries: [entry] }, at);
        }
      },
    ],
  ];
}
