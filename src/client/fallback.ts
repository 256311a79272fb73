import { TwinClient } from '../twin/client.js';
import type { StoreHandle } from '../twin/store.js';
import type { Changes } from './changes.js';
import type { Decision } from './decision.js';
import { valuesWith, type LimitPlan } from './plan.js';
import type { Shape } from './shape.js';
import type { Target } from './keys.js';

/** A target with where the twin last found its key (a hint only: the store checks it). */
type Hinted = Target & { twinHandle?: StoreHandle };

/** What Redis last said of a set of keys, and in which limit values. */
interface Learned {
  at: number;
  remaining: number[];
  plans: readonly LimitPlan[];
}

/**
 * The in-memory side of a limiter: the exact twin that decides when Redis cannot, and what Redis
 * last said of each subject so an outage does not hand a subject Redis had exhausted a fresh
 * allowance. When Redis is authoritative again (its breaker closes) what was counted here is
 * dropped.
 */
export class Fallback {
  readonly twin: TwinClient;
  /**
   * Per set of keys (Target.keysIdent): each limit's remaining units, when Redis said so, and the
   * plans (limit values) that answer was given in. Shared by every byScope variant of a limiter,
   * as the twin is: their keys overlap, and the twin is seeded from the latest answer Redis gave
   * for the keys, whichever variant asked. Bounded, oldest first out.
   */
  private readonly learned: Map<string, Learned>;

  /** One key per decision (one limit, no block key). */
  private readonly single: boolean;

  /** consumeOnTwin's key list, unread on the direct consume consumeOne is used for (hasDirect). */
  private static readonly NO_KEYS: readonly string[] = [];

  constructor(
    private readonly plans: readonly LimitPlan[],
    private readonly shape: Shape,
    private readonly share: number,
    private readonly clock: () => number,
    /** false: no Redis at all, the twin is the only authority (nothing to learn or seed). */
    private readonly behindRedis: boolean,
    private readonly changes: Changes,
    /** Another variant's fallback of the same limiter: its twin and what it learned are shared. */
    sibling?: Fallback,
  ) {
    this.twin = sibling ? sibling.twin : new TwinClient({ clock });
    this.learned = sibling ? sibling.learned : new Map();
    this.single = shape.single;
  }

  /** Whether consumeOne can decide this limiter's calls (one limit with a direct consume: Shape.directOnTwin). */
  get hasDirect(): boolean {
    return this.shape.directOnTwin;
  }

  /**
   * decide(t, [1], true, now) of a limiter without Redis whose one limit binds directly
   * (hasDirect), on the key alone: `t` is the subject's cached target (its twin handle kept), or
   * null for an id not cached (nothing kept). Throws what decide throws.
   */
  consumeOne(key: string, t: Target | null, now: number): Decision {
    const store = this.twin.store;
    if (t !== null) store.prime(key, (t as Hinted).twinHandle);
    const d = this.shape.consumeOnTwin(this.twin, key, Fallback.NO_KEYS, 1, now);
    if (t !== null) (t as Hinted).twinHandle = store.lastHandle;
    return d;
  }

  /**
   * One decision (or peek) over all limits on the twin. With one limit, the subject's target keeps
   * where the twin found its key (a plain id's target is cached and comes back), so the next
   * decision for it costs the twin no map lookup.
   */
  decide(t: Target, costs: readonly number[], consume: boolean, now = this.clock(), shares?: readonly string[]): Decision {
    if (this.behindRedis) this.seed(t);
    if (!this.single) return this.shape.onTwin(this.twin, t.keys, costs, consume, now, shares);
    const h = t as Hinted;
    const store = this.twin.store;
    // One key: keysIdent is that key (read from the target itself, not its keys array).
    store.prime(t.keysIdent, h.twinHandle);
    const d = consume ? this.shape.consumeOnTwin(this.twin, t.keysIdent, t.keys, costs[0]!, now, shares) : this.shape.onTwin(this.twin, t.keys, costs, false, now, shares);
    h.twinHandle = store.lastHandle;
    return d;
  }

  /** Remembers what Redis said of a subject (a decision over every limit; a block says nothing of them). */
  learn(t: Target, d: Decision, at: number): void {
    if (d.limits.length !== this.plans.length) return;
    let l = this.learned.get(t.keysIdent);
    if (!l) {
      // Oldest first out (insertion order); an entry is updated in place, so no re-insertion per call.
      if (this.learned.size >= 10_000) this.learned.delete(this.learned.keys().next().value!);
      l = { at, remaining: new Array<number>(this.plans.length), plans: this.plans };
      this.learned.set(t.keysIdent, l);
    }
    l.at = at;
    l.plans = this.plans;
    for (let i = 0; i < d.limits.length; i++) l.remaining[i] = d.limits[i]!.remaining;
  }

  /** This instance changed the subject's state (reset, refund, block): what was learned of its keys is stale. */
  forget(t: Target): void {
    this.learned.delete(t.keysIdent);
  }

  /** A key changed elsewhere: the twin's own count of it goes (learned values are checked against `changes`). */
  invalidate(key: string): void {
    this.twin.store.delete(key);
  }

  /** Gives units back on the twin (per limit in plan order; 0 or a limit that cannot refund: nothing). */
  refund(t: Target, plans: readonly LimitPlan[], costs: readonly number[]): void {
    if (this.shape.refundOnTwin(this.twin, t.keys[0]!, costs)) return;
    plans.forEach((p, i) => {
      if (p.fallback.refund && costs[i]! > 0) this.twin.runParsed(p.fallback.refund.def, [t.keys[i]!], valuesWith(p.fallback.refund, costs[i]!));
    });
  }

  /** Drops the twin's counts of the keys `owned` picks (a Cluster primary is authoritative again). */
  dropNode(owned: (key: string) => boolean): void {
    const store = this.twin.store;
    for (const key of [...store.keys()]) if (owned(key)) store.delete(key);
  }

  /**
   * Seeds the twin's state for a subject it has not seen during this outage from what Redis last
   * said: this instance's share of the remaining units (floor(remaining / share)), taken at the
   * time Redis said it, so refill since then is counted exactly as the twin counts it.
   */
  private seed(t: Target): void {
    const l = this.learned.get(t.keysIdent);
    if (!l) return;
    this.learned.delete(t.keysIdent);
    if (this.changes.since(t.keys, l.at)) return; // changed elsewhere after Redis said it
    // In the units of the values Redis answered in (another variant's, when it asked last).
    const takes = l.plans.map((p, i) => Math.max(0, p.fallbackCapacity - Math.floor(l.remaining[i]! / this.share)));
    if (this.shape.seedOnTwin(this.twin, t.keys[0]!, takes, l.at)) return;
    l.plans.forEach((p, i) => {
      if (this.twin.store.has(t.keys[i]!, l.at)) return;
      const take = p.fallbackCapacity - Math.floor(l.remaining[i]! / this.share);
      if (take > 0) this.twin.runParsed(p.fallback.consume.def, [t.keys[i]!], valuesWith(p.fallback.consume, take), undefined, l.at);
    });
  }
}
