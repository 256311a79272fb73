import { decisionReply } from '../../generated/index.js';
import type { Decision, DecisionSource, LimitResult } from './decision.js';
import type { LimitPlan } from './plan.js';

/** Where each number of a limit's result sits (allowed, remaining, reset_after_ms, retry_after_ms), from the headers. */
const { allowed: ALLOWED, remaining: REMAINING, resetAfterMs: RESET, retryAfterMs: RETRY } = decisionReply;

/** Numbers per limit in every decision reply. */
export const ITEM_STRIDE = decisionReply.stride;

/**
 * Turns script replies into Decisions for one limiter's limits (in plan order, then the block
 * item when `blocks`). Pure: the same reply always gives the same decision.
 */
export class Decoder {
  constructor(
    private readonly plans: readonly LimitPlan[],
    private readonly blocks: boolean,
  ) {}

  /** The reported size of limit `i`: during an outage each instance holds its share of it. */
  private size(i: number, source: DecisionSource): number {
    const p = this.plans[i]!;
    return source === 'fallback' ? p.fallbackLimit : p.limit;
  }

  /** A single-limit reply (its result at `o`). */
  single(r: readonly number[], o: number, source: DecisionSource): Decision {
    const allowed = r[o + ALLOWED] === 1;
    const limit = this.size(0, source);
    const x: LimitResult = { name: this.plans[0]!.name, allowed, remaining: r[o + REMAINING]!, limit, resetAfterMs: r[o + RESET]!, retryAfterMs: r[o + RETRY]! };
    return { allowed, limitName: x.name, remaining: x.remaining, limit, resetAfterMs: x.resetAfterMs, retryAfterMs: x.retryAfterMs, deniedBy: allowed ? null : x.name, source, limits: [x] };
  }

  /**
   * One decision from its per-item results at `o` (limits in plan order, then the block item),
   * summarised as the multi script does: allowed when every item admits; denied by the first
   * that does not; retry the longest wait of the denying ones (-1 if one never can). The
   * top-level numbers all describe one limit: the first that denied, else the one closest to
   * denying (least remaining relative to its size), so a 429's remaining, limit and reset belong
   * together. A block is reported as its own denial (deniedBy 'block').
   */
  items(r: readonly number[], o: number, source: DecisionSource): Decision {
    const limits: LimitResult[] = this.plans.map((p, i) => {
      const at = o + ITEM_STRIDE * i;
      return { name: p.name, allowed: r[at + ALLOWED] === 1, remaining: r[at + REMAINING]!, limit: this.size(i, source), resetAfterMs: r[at + RESET]!, retryAfterMs: r[at + RETRY]! };
    });
    const count = this.plans.length + (this.blocks ? 1 : 0);
    let deniedIndex = -1;
    let retry = 0;
    for (let i = 0; i < count; i++) {
      const at = o + ITEM_STRIDE * i;
      if (r[at + ALLOWED] === 1) continue;
      if (deniedIndex < 0) deniedIndex = i;
      const own = r[at + RETRY]!;
      retry = own < 0 || retry < 0 ? -1 : Math.max(retry, own);
    }
    const allowed = deniedIndex < 0;
    if (deniedIndex === this.plans.length) return { ...this.blocked(r[o + ITEM_STRIDE * deniedIndex + RETRY]!, source), limits };
    let pick = limits[0]!;
    if (!allowed) pick = limits[deniedIndex]!;
    else for (const x of limits) if (x.remaining * pick.limit < pick.remaining * x.limit) pick = x;
    return { allowed, limitName: pick.name, remaining: pick.remaining, limit: pick.limit, resetAfterMs: pick.resetAfterMs, retryAfterMs: allowed ? 0 : retry, deniedBy: allowed ? null : pick.name, source, limits };
  }

  /** The subject is in the penalty box. */
  blocked(retryAfterMs: number, source: DecisionSource): Decision {
    return { allowed: false, limitName: null, remaining: 0, limit: this.plans[0]!.limit, resetAfterMs: retryAfterMs, retryAfterMs, deniedBy: 'block', source, limits: [] };
  }

  /** Redis could not decide and the limiter fails open: allowed, and nothing is known of the limits. */
  failOpen(): Decision {
    return { allowed: true, limitName: null, remaining: 0, limit: this.plans[0]!.limit, resetAfterMs: 0, retryAfterMs: 0, deniedBy: null, source: 'fail-open', limits: [] };
  }

  /** Redis could not decide and the limiter fails closed: retry when Redis is next tried. */
  failClosed(retryAfterMs: number): Decision {
    return { allowed: false, limitName: null, remaining: 0, limit: this.plans[0]!.limit, resetAfterMs: retryAfterMs, retryAfterMs, deniedBy: null, source: 'fail-closed', limits: [] };
  }

  /** Admitted from units this instance holds (a lease). */
  lease(left: number): Decision {
    return { allowed: true, limitName: this.plans[0]!.name, remaining: left, limit: this.plans[0]!.limit, resetAfterMs: 0, retryAfterMs: 0, deniedBy: null, source: 'lease', limits: [] };
  }
}

/** A decision with the priority class that applied to it (a new object only when there is one). */
export function tagged(d: Decision, pc: { name: string; shares: Readonly<Record<string, number>> } | undefined): Decision {
  return pc === undefined ? d : { ...d, priority: { class: pc.name, shares: { ...pc.shares } } };
}
