import type { Subject } from './keys.js';

interface Lease {
  subject: Subject;
  units: number;
  takenAt: number;
  refilling: boolean;
}

/**
 * Units taken from Redis in batches (really taken: over-admission stays zero) and spent locally.
 * The trade-off is fairness: an instance holding a lease serves its own callers from it while
 * another instance may be denied; a lease lasts at most ttlMs, after which its unused units are
 * given back, and close() gives back everything.
 */
export class LeasePool {
  private readonly leases = new Map<string, Lease>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly size: number,
    private readonly ttlMs: number,
    private readonly clock: () => number,
    private readonly giveBack: (subject: Subject, units: number) => Promise<void>,
  ) {
    this.timer = setInterval(() => void this.expire(), Math.max(10, Math.floor(ttlMs / 2)));
    this.timer.unref();
  }

  /** Spends `cost` local units; returns units left, or null when the lease cannot cover it. */
  take(sid: string, cost: number, now: number): number | null {
    const l = this.leases.get(sid);
    if (!l || l.units < cost || now - l.takenAt >= this.ttlMs) return null;
    l.units -= cost;
    return l.units;
  }

  add(sid: string, s: { id: string; tag: string; scopes: Record<string, string> }, units: number): number {
    const l = this.leases.get(sid);
    if (l && this.clock() - l.takenAt < this.ttlMs) {
      l.units += units;
      l.takenAt = this.clock();
      return l.units;
    }
    if (l && l.units > 0) void this.giveBack(l.subject, l.units).catch(() => {});
    this.leases.set(sid, { subject: { id: s.id, hashTag: s.tag, scopes: s.scopes }, units, takenAt: this.clock(), refilling: false });
    return units;
  }

  /** Is the lease below half and not already being topped up? */
  wantsRefill(sid: string): boolean {
    const l = this.leases.get(sid);
    return l !== undefined && !l.refilling && l.units * 2 < this.size;
  }

  /** Tops the lease up in the background with `fetch`, so callers rarely wait for Redis. */
  refill(sid: string, fetch: Promise<unknown>): void {
    const l = this.leases.get(sid)!;
    l.refilling = true;
    void fetch.finally(() => {
      l.refilling = false;
    });
  }

  drop(sid: string): void {
    this.leases.delete(sid);
  }

  stats(): { subjects: number; units: number } {
    let units = 0;
    for (const l of this.leases.values()) units += l.units;
    return { subjects: this.leases.size, units };
  }

  async expire(): Promise<void> {
    const now = this.clock();
    const due = [...this.leases.entries()].filter(([, l]) => now - l.takenAt >= this.ttlMs);
    for (const [sid, l] of due) {
      this.leases.delete(sid);
      if (l.units > 0) await this.giveBack(l.subject, l.units).catch(() => {});
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.leases.values()];
    this.leases.clear();
    await Promise.all(all.filter((l) => l.units > 0).map((l) => this.giveBack(l.subject, l.units).catch(() => {})));
  }
}
