import { keyPrefixOf } from './invalidation.js';
import { slotOwner, type ScriptDef } from '../runtime/index.js';
import { Coalescer } from './coalescer.js';
import type { Decision } from './decision.js';
import type { Fallback } from './fallback.js';
import type { LeasePool } from './leases.js';
import type { LocalState } from './local.js';
import { argvWith, type LimitPlan } from './plan.js';
import type { FailurePolicy } from './policy.js';
import { isCallerError } from './policy.js';
import type { RedisPath } from './redis-path.js';
import type { Shape } from './shape.js';
import type { Target } from './keys.js';

const same = (d: Decision) => d;

/**
 * Consumes on Redis: coalesced with the same turn's other decisions (batch / multi_batch) or
 * alone, with the failure policy answering when Redis cannot; and lease top-ups, which have no
 * failure policy (no units when Redis cannot give them).
 */
export class Decider {
  private readonly coalescer: Coalescer | null;

  constructor(
    private readonly path: RedisPath,
    coalesce: boolean,
    private readonly shape: Shape,
    private readonly policy: FailurePolicy,
    private readonly fallback: Fallback,
  ) {
    // On a Cluster the coalescer groups decisions by the primary serving their slot (node_batch
    // on that primary's own connection).
    const cluster = {
      nodeOf: (slot: number) => slotOwner(path.client, slot),
      keyPrefix: keyPrefixOf(path.client),
      send: (def: ScriptDef, argv: string[], slot: number, share: boolean) => path.runOnNode(def, argv, slot, share),
    };
    this.coalescer = coalesce && shape.batch ? new Coalescer((def, keys, argv, slot, share) => path.run(def, keys, argv, slot, share), shape.batch, cluster) : null;
  }

  /**
   * One decision over all limits: coalesced with the turn's others when it can be, else alone
   * (always alone when it holds a concurrency slot for `holder`).
   */
  decide(t: Target, costs: number[], shares?: readonly string[], holder?: string): Promise<Decision> {
    const fallback = () => this.shape.withHolder(holder, () => this.fallback.decide(t, costs, true, undefined, shares));
    if (!this.coalescer) {
      // consume(), with the failure policy in the same step (one promise, not two).
      const call = this.shape.consume(costs, shares, holder);
      return this.path.run(call.def, t.keys, call.argv, t.slot, true).then(
        (r) => {
          try {
            return this.shape.decide(call, r as number[], 'redis', t.keys[0]);
          } catch (err) {
            return this.policy.answer(err, fallback, same);
          }
        },
        (err: unknown) => this.policy.answer(err, fallback, same),
      );
    }
    return new Promise<Decision>((resolve, reject) => {
      this.coalescer!.add({
        slot: t.slot,
        keys: t.keys,
        costs: this.shape.costStrings(costs),
        ...(shares ? { shares: this.shape.shareStrings(shares) } : {}),
        done: (r, o) => resolve(this.shape.decideAt(r, o, 'redis')),
        fail: (err) => {
          try {
            resolve(this.policy.answer(err, fallback, same));
          } catch (e) {
            reject(e);
          }
        },
      });
    });
  }

  /** One consume, uncoalesced, no failure policy. */
  consume(t: Target, costs: readonly number[], shares?: readonly string[], holder?: string): Promise<Decision> {
    const call = this.shape.consume(costs, shares, holder);
    return this.path.run(call.def, t.keys, call.argv, t.slot, true).then((r) => this.shape.decide(call, r as number[], 'redis', t.keys[0]));
  }

  /**
   * Gives units back on Redis, each limit through its own refund script (announced: the echo is
   * not news to `local`); where Redis cannot take it, to the fallback, which decides meanwhile.
   */
  async refund(t: Target, plans: readonly LimitPlan[], costs: readonly number[], local: LocalState): Promise<void> {
    // Layout 'subject': one call gives every limit of the subject's key its cost back.
    const one = costs.some((c) => c > 0) ? this.shape.refundCall(costs) : null;
    const sent = one !== null ? [local.announced([t.keys[0]!], this.path.run(one.def, [t.keys[0]!], one.argv, t.slot))] : plans.flatMap((p, i) => (p.refund && costs[i]! > 0 ? [local.announced([t.keys[i]!], this.path.run(p.refund.def, [t.keys[i]!], argvWith(p.refund, costs[i]!), t.slot))] : []));
    const landed = await Promise.all(sent).then(
      () => true,
      (err: unknown) => {
        if (isCallerError(err)) throw err;
        return false;
      },
    );
    if (!landed) this.fallback.refund(t, plans, costs);
  }

  /**
   * A batch of lease units from Redis (every limit takes `size`, or `forCost` if larger), and a
   * call of `forCost` answered from it. Null when none could be taken.
   */
  topUp(pool: LeasePool, t: Target, forCost: number, sentAt: number): Promise<Decision | null> {
    const size = Math.max(pool.size, forCost);
    const fetched = this.consume(t, new Array<number>(this.shape.count).fill(size)).catch((err: unknown) => {
      if (isCallerError(err)) throw err;
      return null;
    });
    return pool.track(fetched).then((d) => {
      if (!d || !d.allowed) return null;
      const left = pool.add(t.ident, t.s, size - forCost, sentAt);
      return forCost > 0 ? { ...d, remaining: left, source: 'redis' as const, limits: [] } : this.shape.decode.lease(left);
    });
  }
}
