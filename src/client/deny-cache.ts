import type { Decision } from './decision.js';

interface Entry {
  /** Local ms until which Redis would deny at least these costs. */
  until: number;
  costs: number[];
  /** The decision Redis gave, and when its call was sent. */
  decision: Decision;
  sentAt: number;
}

/**
 * Remembers subjects Redis denied, until their exact retry time, so a flood from a denied id
 * costs no Redis calls. It only ever denies, and only calls at least as costly (per limit) as the
 * one Redis denied; `until` counts from when that call was sent, so it can end early (then Redis
 * is asked again) but never late. It answers only calls of exactly the costs Redis denied (a
 * costlier call may be one that can never pass, a cheaper one may pass). A refund, reset or
 * block forgets the subject.
 *
 * Its answers are Redis's own decision with the times moved on by what has elapsed since: the
 * same limits, remaining, limit and deniedBy; resetAfterMs and retryAfterMs counted down.
 */
export class DenyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries = 10_000) {}

  get size(): number {
    return this.entries.size;
  }

  check(subject: string, costs: number[], now: number): Decision | null {
    const e = this.entries.get(subject);
    if (!e) return null;
    if (now >= e.until) {
      this.entries.delete(subject);
      return null;
    }
    // Only the very costs Redis denied: a costlier call may never pass at all (retry -1) or wait
    // longer, a cheaper one may pass now. Either way only Redis can say.
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

  remember(subject: string, costs: number[], d: Decision, sentAt: number): void {
    if (d.retryAfterMs === 0) return; // nothing to wait for (e.g. denied by a race): ask Redis again
    // "never" (-1) holds for as long as the configuration does; re-check once a minute anyway.
    const until = sentAt + (d.retryAfterMs < 0 ? 60_000 : d.retryAfterMs);
    if (!this.entries.has(subject) && this.entries.size >= this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(subject, { until, costs: [...costs], decision: d, sentAt });
  }

  forget(subject: string): void {
    this.entries.delete(subject);
  }
}
