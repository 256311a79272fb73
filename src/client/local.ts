import type { RedisClientLike } from '../runtime/index.js';
import type { BreakerStats } from './breaker.js';
import type { Changes } from './changes.js';
import type { RateLimiterOptions } from './config.js';
import { DenyCache } from './deny-cache.js';
import type { Fallback } from './fallback.js';
import { Invalidation } from './invalidation.js';
import { LeasePool } from './leases.js';
import type { Subject, Target } from './keys.js';

export interface LimiterStats {
  breaker: BreakerStats | null;
  /** On a Cluster: the breaker of each primary ("host:port") this limiter has called. */
  nodes: Record<string, BreakerStats>;
  denyCacheEntries: number;
  leases: { subjects: number; units: number };
  fallbackKeys: number;
  /** Whether this limiter hears of changes made elsewhere right now (resets, refunds, blocks; DELs with keyspace events). */
  invalidation: { subscribed: boolean; keyEvents: boolean };
  /**
   * One key per subject: whether its decisions look for states its limits kept a key per limit
   * (the upgrade's adopt; src/client/adoption.ts); null for a key per limit.
   */
  adopting: boolean | null;
  warnings: string[];
}

/**
 * What a limiter holds in this process besides the fallback — the deny cache and leases — and
 * how it stays true to changes made anywhere: the scripts that change state (reset, refund,
 * block) publish the keys they touch, every limiter hears them (one subscription per client),
 * and every local answer older than a change to one of its keys is void.
 *
 * Bounds, while Redis is up: a change made through the scripts (any instance, the CLI, another
 * language) reaches every cache within the pub/sub delivery time; a change nothing announces (a
 * DEL by hand without keyspace events, or any change while the subscription is down) within
 * 100 ms for the deny cache (`denyCache.maxHoldMs`), and leases are not spent at all then.
 */
export class LocalState {
  readonly invalidation: Invalidation | null;
  readonly denyCache: DenyCache | null;
  readonly leases: LeasePool | null;
  private subscribedBefore = false;

  constructor(
    redis: RedisClientLike | undefined,
    prefix: string,
    options: RateLimiterOptions,
    private readonly clock: () => number,
    private readonly fallback: Fallback,
    giveBack: (subject: Subject, units: number) => Promise<void>,
    readonly changes: Changes,
  ) {
    this.invalidation = redis
      ? new Invalidation(redis, (key, kind) => this.changed(key, kind === 'replaced', clock()), {
          prefix: `${prefix}:{`,
          // Back after a loss: what was announced meanwhile is unknown, so nothing held is trusted.
          onHealthChange: (up) => {
            if (up && this.subscribedBefore) this.dropAll();
            if (up) this.subscribedBefore = true;
          },
        })
      : null;
    this.invalidation?.start();
    const dc = options.denyCache ?? true;
    const hold = typeof dc === 'object' ? dc.maxHoldMs : undefined;
    // A denial is held to its retry time only while every change, a DEL by hand included
    // (keyspace events), is announced; otherwise at most 100 ms.
    const maxHold = () => hold ?? (this.invalidation?.healthy() && this.invalidation.keyEvents() ? Infinity : 100);
    this.denyCache = redis && dc ? new DenyCache(this.changes, maxHold, typeof dc === 'object' ? dc.maxEntries : undefined) : null;
    this.leases = redis && options.lease ? new LeasePool(options.lease.size, options.lease.ttlMs ?? 5_000, clock, giveBack, this.changes) : null;
  }

  /** Leases may be spent: a block or reset made elsewhere reaches this instance right now. */
  leasesUsable(): boolean {
    return this.leases !== null && this.invalidation!.healthy();
  }

  /**
   * This instance changed the subject's state itself: its own caches of it go at once (what its
   * variant's fallback learned too), and its keys are marked changed, so every other local
   * identity holding them (another byScope variant of the subject, another subject sharing a
   * scoped key) stops answering from them too — the announcement coming back is counted as this
   * instance's own echo and would not mark them. `replaced` (a reset or block): leases go too.
   */
  forget(t: Target, replaced: boolean): void {
    this.denyCache?.forget(t.ident);
    this.leases?.drop(t.ident);
    t.variant.fallback.forget(t);
    const now = this.clock();
    for (const k of t.keys) this.changes.mark(k, now, replaced);
  }

  /** Runs this instance's own change of `keys`: their announcements coming back are not news. */
  announced<T>(keys: readonly string[], run: Promise<T>): Promise<T> {
    if (!this.invalidation?.healthy()) return run;
    const undo = this.changes.expect(keys);
    return run.catch((err: unknown) => {
      undo();
      throw err;
    });
  }

  stats(): { denyCacheEntries: number; leases: { subjects: number; units: number }; invalidation: { subscribed: boolean; keyEvents: boolean } } {
    return {
      denyCacheEntries: this.denyCache?.size ?? 0,
      leases: this.leases?.stats() ?? { subjects: 0, units: 0 },
      invalidation: { subscribed: this.invalidation?.healthy() ?? false, keyEvents: this.invalidation?.keyEvents() ?? false },
    };
  }

  async close(): Promise<void> {
    await this.leases?.close();
    await this.invalidation?.close();
  }

  /** A key changed elsewhere: every local answer older than the change is void. */
  private changed(key: string, replaced: boolean, now: number): void {
    if (!this.changes.heard(key)) return; // our own change, coming back
    this.changes.mark(key, now, replaced);
    this.fallback.invalidate(key);
  }

  /**
   * Every local answer that could now be too permissive dropped (too many changes to track one by
   * one, or a subscription back after a gap): the deny cache and leases. What the fallback learned
   * of Redis stays: a change it missed (a reset) can only make the fallback stricter, while
   * forgetting it would hand subjects Redis had exhausted a fresh allowance.
   */
  dropAll(): void {
    this.denyCache?.clear();
    this.leases?.dropAll();
  }
}
