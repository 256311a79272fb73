import type { Changes } from './changes.js';
import type { Decision } from './decision.js';
import type { Target } from './keys.js';

interface Entry {
  /** Local ms until which Redis would deny these costs. */
  until: number;
  costs: number[];
  /** The decision Redis gave, and when its call was sent. */
  decision: Decision;
  sentAt: number;
}

/**
 * Remembers subjects Redis denied, until their exact retry time, so a flood from a denied id
 * costs no Redis calls. It only ever denies, and only calls of exactly the costs Redis denied (a
 * costlier call may be one that can never pass, a cheaper one may pass); `until` counts from when
 * that call was sent, so it can end early (then Redis is asked again) but never late.
 *
 * A change made anywhere to one of the subject's keys after the denial — a reset, refund or block
 * by any instance, the CLI or another language (the scripts publish it) — drops the entry; a
 * change nothing announces (a DEL by hand without keyspace events) is seen after at most
 * `maxHoldMs()`, when Redis is asked again.
 *
 * Its answers are Redis's own decision with the times moved on by what has elapsed since: the
 * same limits, remaining, limit and deniedBy; resetAfterMs and retryAfterMs counted down.
 */
export class DenyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly changes: Changes,
    private readonly maxHoldMs: () => number,
    private readonly maxEntries = 10_000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  check(t: Target, costs: readonly number[], now: number): Decision | null {
    const e = this.entries.get(t.ident);
    if (!e) return null;
    // The hold is judged now, not when remembered: it shrinks the moment changes stop being announced.
    if (now >= e.until || now - e.sentAt >= this.maxHoldMs() || this.changes.since(t.keys, e.sentAt)) {
      this.entries.delete(t.ident);
      return null;
    }
    if (costs.length !== e.costs.length) return null;
    for (let i = 0; i < costs.length; i++) if (costs[i] !== e.costs[i]) return null;
    const elapsed = Math.max(0, now - e.sentAt);
    const later = (ms: number) => (ms < 0 ? ms : Math.max(0, ms - elapsed));
    const d = e.decision;
    return {
      ...d,
      resetAfterMs: later(d.resetAfterMs),
      retryAfterMs: later(d.retryAfterMs),
      source: 'deny-cache',
      limits: d.limits.map((x) => ({ ...x, resetAfterMs: later(x.resetAfterMs), retryAfterMs: later(x.retryAfterMs) })),
    };
  }

  remember(t: Target, costs: readonly number[], d: Decision, sentAt: number): void {
    if (d.retryAfterMs === 0) return; // nothing to wait for (e.g. denied by a race): ask Redis again
    // "never" (-1) holds for as long as the configuration does; re-check once a minute anyway.
    const until = sentAt + (d.retryAfterMs < 0 ? 60_000 : d.retryAfterMs);
    if (!this.entries.has(t.ident) && this.entries.size >= this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(t.ident, { until, costs: [...costs], decision: d, sentAt });
  }

  forget(ident: string): void {
    this.entries.delete(ident);
  }

  clear(): void {
    this.entries.clear();
  }
}
