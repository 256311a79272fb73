import { blockKey, limitKey, resolveSubject, slotOf, type Resolved, type Subject } from './keys.js';
import type { LimitPlan } from './plan.js';

/** A call's subject, resolved, with its keys (in plan order, then the block key) and local identity. */
export interface Target {
  s: Resolved;
  keys: string[];
  /** Identity for local caches: two subjects share it exactly when they share every Redis key. */
  ident: string;
  /** Cluster hash slot of every key of the call; -1 on a standalone client. */
  slot: number;
}

/**
 * Subjects to keys, for one limiter. Plain ids repeat, so their targets are built once (a bounded
 * cache of immutable values); object subjects are resolved per call.
 */
export class Subjects {
  private readonly byId = new Map<string, Target>();

  constructor(
    private readonly prefix: string,
    private readonly plans: readonly LimitPlan[],
    private readonly blocks: boolean,
    private readonly cluster: boolean,
  ) {}

  resolve(subject: Subject): Target {
    if (typeof subject !== 'string') return this.build(subject);
    let t = this.byId.get(subject);
    if (!t) {
      t = this.build(subject);
      if (this.byId.size >= 10_000) this.byId.clear();
      this.byId.set(subject, t);
    }
    return t;
  }

  /** The penalty-box key of a resolved subject. */
  blockKey(t: Target): string {
    return blockKey(this.prefix, t.s);
  }

  private build(subject: Subject): Target {
    const s = resolveSubject(subject);
    const keys: string[] = [];
    for (const p of this.plans) keys.push(limitKey(this.prefix, s, p.name, p.scope));
    if (this.blocks) keys.push(blockKey(this.prefix, s));
    return { s, keys, ident: keys.length === 1 ? keys[0]! : JSON.stringify(keys), slot: this.cluster ? slotOf(s) : -1 };
  }
}
