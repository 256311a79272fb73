import type { Changes } from './changes.js';
import type { Subject, Target } from './keys.js';

interface Lease {
  subject: Subject;
  units: number;
  takenAt: number;
  /** When the first units of this lease were taken: a change to its keys after that voids it. */
  bornAt: number;
  refilling: boolean;
}

/**
 * Units taken from Redis in batches (really taken: over-admission stays zero) and spent locally.
 * The trade-off is fairness: an instance holding a lease serves its own callers from it while
 * another instance may be denied; a lease lasts at most ttlMs, after which its unused units are
 * given back, and close() gives back everything.
 *
 * Every unit is spent or given back exactly once: a lease leaves the pool (and its units are
 * zeroed) in the same synchronous step that hands its units back, so an expiry sweep, a re-add
 * and close() can overlap without returning the same units twice.
 */
export class LeasePool {
  private readonly leases = new Map<string, Lease>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly size: number,
    private readonly ttlMs: number,
    private readonly clock: () => number,
    private readonly giveBack: (subject: Subject, units: number) => Promise<void>,
    private readonly changes: Changes,
  ) {
    this.timer = setInterval(() => this.expire(), Math.max(10, Math.floor(ttlMs / 2)));
    this.timer.unref();
  }

  /**
   * Spends `cost` local units; returns units left, or null when the lease cannot cover it. A
   * lease whose keys had their state replaced elsewhere after it was taken (a reset, a block, a
   * DEL) is void: dropped. A refund elsewhere leaves it valid (its units are still taken).
   */
  take(t: Target, cost: number, now: number): number | null {
    const l = this.leases.get(t.ident);
    if (l && this.changes.since(t.keys, l.bornAt, true)) {
      this.drop(t.ident);
      return null;
    }
    if (!l || l.units < cost || now - l.takenAt >= this.ttlMs) return null;
    l.units -= cost;
    return l.units;
  }

  /**
   * Adds units taken from Redis. After close() nothing may hold them: they go straight back (a
   * top-up whose reply arrives after close() would otherwise strand its units).
   */
  add(sid: string, s: { id: string; tag: string; scopes: Readonly<Record<string, string>> }, units: number, sentAt: number): number {
    if (this.closed) {
      if (units > 0) this.track(this.giveBack({ id: s.id, hashTag: s.tag, scopes: { ...s.scopes } }, units).catch(() => {}));
      return 0;
    }
    const now = this.clock();
    const l = this.leases.get(sid);
    if (l && now - l.takenAt < this.ttlMs) {
      l.units += units;
      l.takenAt = now;
      return l.units;
    }
    if (l) this.release(sid, l);
    this.leases.set(sid, { subject: { id: s.id, hashTag: s.tag, scopes: { ...s.scopes } }, units, takenAt: now, bornAt: sentAt, refilling: false });
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
    void this.track(fetch).finally(() => {
      l.refilling = false;
    });
  }

  /** Forgets a lease without giving its units back (reset and block: the state is gone anyway). */
  drop(sid: string): void {
    const l = this.leases.get(sid);
    if (l) l.units = 0;
    this.leases.delete(sid);
  }

  /** Every lease dropped (too many changes to track one by one). */
  dropAll(): void {
    for (const sid of [...this.leases.keys()]) this.drop(sid);
  }

  stats(): { subjects: number; units: number } {
    let units = 0;
    for (const l of this.leases.values()) units += l.units;
    return { subjects: this.leases.size, units };
  }

  /** Gives back the unused units of every lease past its ttl. */
  expire(): void {
    const now = this.clock();
    for (const [sid, l] of this.leases) if (now - l.takenAt >= this.ttlMs) this.release(sid, l);
  }

  /** Lease fetches and late give-backs still in flight: close() waits for them. */
  private readonly inflight = new Set<Promise<unknown>>();

  /** Registers a fetch of units from Redis (or a give-back) that close() must wait for. */
  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /**
   * Gives back every unit held, once. Fetches in flight settle first: units they bring after this
   * point go straight back (see add), so close() resolves only when every unit is home.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const all = [...this.leases.entries()];
    await Promise.all(all.map(([sid, l]) => this.release(sid, l)));
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** Removes the lease and hands back its units, once: they are zeroed in the same step. */
  private release(sid: string, l: Lease): Promise<void> {
    if (this.leases.get(sid) === l) this.leases.delete(sid);
    const units = l.units;
    l.units = 0;
    return units > 0 ? this.giveBack(l.subject, units).catch(() => {}) : Promise.resolve();
  }
}
