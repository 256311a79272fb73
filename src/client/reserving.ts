import * as b from '../../generated/index.js';
import { hashSlot } from '../runtime/index.js';
import type { Decision } from './decision.js';
import type { Fallback } from './fallback.js';
import type { Target } from './keys.js';
import type { LimitPlan } from './plan.js';
import { isCallerError, unavailable, type FailurePolicy } from './policy.js';
import type { RedisPath } from './redis-path.js';
import { decodeSettle, reserveCall, reserveNowMs, reserveOnTwin, settleCall, settledOrThrow, settleOnTwin, type SettleOptions, type SettleOutcome } from './reservations.js';
import type { Shape } from './shape.js';

/** A reservation's decision: admitted with a handle to settle, or denied (nothing taken, no handle). */
export type Reserved = Decision & { handle: string | null };

/**
 * Reserve → commit / cancel for one limiter, through the same failure path as every decision:
 * Redis when it can, else the policy (the twin keeps reservations made during an outage, and
 * settles them there). The scripts do the work (reserve.lua, settle.lua); this only sends.
 */
export class Reserver {
  private readonly offset = b.replyLayouts[b.reserveScript.name]!.offset;
  private readonly names: string[];

  constructor(
    private readonly plans: readonly LimitPlan[],
    private readonly blocks: boolean,
    private readonly shape: Shape,
    private readonly path: RedisPath | null,
    private readonly fallback: Fallback,
    private readonly policy: FailurePolicy,
    private readonly cluster: boolean,
  ) {
    this.names = plans.map((p) => p.name);
  }

  /** `shares`: the call's priority class, share_ppm per limit in plan order ('' = whole capacity); undefined: none. */
  reserve(t: Target, costs: readonly number[], ttlMs: number, shares?: readonly string[]): Promise<Reserved> {
    const tiers = this.shape.tiers;
    // A reservation is a decision: it looks for states kept a key per limit only while they may exist.
    const call = reserveCall(this.plans, this.blocks, t.keys, costs, ttlMs, shares, undefined, tiers && { specs: tiers.specs, adopt: this.shape.adoptArg() });
    const answer = (r: readonly number[], source: 'redis' | 'fallback'): Reserved => {
      const d = this.shape.decode.items(r, this.offset, source);
      return { ...d, handle: d.allowed ? call.handle : null };
    };
    const onTwin = () => {
      const { args, items } = reserveOnTwin(this.plans, this.blocks, costs, ttlMs, shares, tiers);
      return answer(this.fallback.twin.runParsed(tiers ? b.tiersReserveScript : b.reserveScript, call.keys, args, items), 'fallback');
    };
    if (!this.path) return Promise.resolve().then(onTwin);
    return this.path.run(call.def, call.keys, call.argv, t.slot).then(
      (r) => answer(r as number[], 'redis'),
      (err: unknown) => this.policy.answer(err, onTwin, (d) => ({ ...d, handle: null })),
    );
  }

  /** Commits (actuals per limit; undefined keeps a limit's estimate) or cancels: once, and says so. */
  settle(handle: string, mode: 'commit' | 'cancel', actuals: readonly (number | undefined)[] | null, options: SettleOptions): Promise<SettleOutcome> {
    const tiers = this.shape.tiers !== null;
    const call = settleCall(handle, mode, actuals, { ...options, nowMs: reserveNowMs(this.plans), ...(tiers ? { tiersCount: this.plans.length, tiersAdopt: this.shape.tiers!.adopt } : {}) });
    const slot = this.cluster ? hashSlot(call.keys[0]!) : -1;
    const onTwin = () => settledOrThrow(decodeSettle(this.fallback.twin.runParsed(call.def, call.keys, ...spread(settleOnTwin(call))), this.names), handle);
    if (!this.path) return Promise.resolve().then(onTwin);
    // Its own refund announcement comes back to this instance too (it only costs a deny-cache
    // entry of this subject): which keys settle changes is known only to the script.
    return this.path.run(call.def, call.keys, call.argv, slot).then(
      (r) => settledOrThrow(decodeSettle(r as number[], this.names), handle),
      (err: unknown) => {
        if (isCallerError(err)) throw err;
        // A reservation taken from the fallback during the outage settles there; one Redis holds
        // cannot be settled now, and the caller must know it did not land.
        const there = decodeSettle(this.fallback.twin.runParsed(call.def, call.keys, ...spread(settleOnTwin(call))), this.names);
        if (there.status !== 'unknown') return settledOrThrow(there, handle);
        return unavailable(mode)(err);
      },
    );
  }
}

function spread(x: { args: Record<string, unknown>; items: Record<string, unknown>[] }): [Record<string, never>, Record<string, never>[]] {
  return [x.args as Record<string, never>, x.items as Record<string, never>[]];
}
