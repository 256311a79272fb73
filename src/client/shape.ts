import * as b from '../../generated/index.js';
import type { ScriptDef } from '../runtime/index.js';
import type { ArgValues } from '../twin/args.js';
import type { TwinClient } from '../twin/client.js';
import type { BatchShape } from './coalescer.js';
import { Decoder } from './decode.js';
import type { Decision, DecisionSource } from './decision.js';
import { argvWith, batchArgv, pushBlockItem, pushItem, valuesWith, type LimitPlan } from './plan.js';

/** One script call of a decision: what to send, and where its first limit result starts in the reply. */
export interface Call {
  def: ScriptDef;
  argv: string[];
  offset: number;
}

/**
 * How this limiter's decisions travel, compiled once from its plan: one limit and no blocks use
 * the limit's own scripts (and `batch` when coalesced), anything else `multi` / `multi_peek`
 * (and `multi_batch`), all-or-nothing. Everything that differs between the two lives here, so
 * the limiter never asks which one it is.
 */
export class Shape {
  readonly decode: Decoder;
  readonly single: boolean;
  /** How many limits (costs) a decision has. */
  readonly count: number;
  readonly batch: BatchShape;
  private readonly twinBlock: ArgValues = { algo: 'block', limit: 1, cost: 1, offset_ms: 0 };
  /** Where each call's first limit result sits in its reply (from the script headers). */
  private readonly at: { readonly consume: number; readonly peek: number; readonly multi: number; readonly multiPeek: number };

  constructor(
    private readonly plans: readonly LimitPlan[],
    private readonly blocks: boolean,
  ) {
    this.decode = new Decoder(plans, blocks);
    this.single = plans.length === 1 && !blocks;
    this.count = plans.length;
    const offset = (def: ScriptDef) => b.replyLayouts[def.name]!.offset;
    this.at = { consume: offset(plans[0]!.consume.def), peek: offset(plans[0]!.peek.def), multi: offset(b.multiScript), multiPeek: offset(b.multiPeekScript) };
    this.batch = this.batchShape();
  }

  /** The consume call on Redis, uncoalesced. */
  consume(costs: readonly (number | string)[], shares?: readonly string[]): Call {
    if (this.single) return { def: this.plans[0]!.consume.def, argv: argvWith(this.plans[0]!.consume, costs[0]!, shares?.[0]), offset: this.at.consume };
    return { def: b.multiScript, argv: this.multiArgv(costs, shares), offset: this.at.multi };
  }

  /** The read-only call (may run on a replica). */
  peek(costs: readonly number[], shares?: readonly string[]): Call {
    if (this.single) return { def: this.plans[0]!.peek.def, argv: argvWith(this.plans[0]!.peek, costs[0]!, shares?.[0]), offset: this.at.peek };
    return { def: b.multiPeekScript, argv: this.multiArgv(costs, shares), offset: this.at.multiPeek };
  }

  /** A reply of `call` as a decision. */
  decide(call: Call, reply: readonly number[], source: DecisionSource): Decision {
    return this.single ? this.decode.single(reply, call.offset, source) : this.decode.items(reply, call.offset, source);
  }

  /** A coalesced reply: this decision's first result is at `offset`. */
  decideAt(reply: readonly number[], offset: number, source: DecisionSource): Decision {
    return this.single ? this.decode.single(reply, offset, source) : this.decode.items(reply, offset, source);
  }

  /** The same decision (or peek) on the twin, with the fallback's sizes. */
  onTwin(twin: TwinClient, keys: readonly string[], costs: readonly number[], consume: boolean, now: number, shares?: readonly string[]): Decision {
    if (this.single) {
      const p = this.plans[0]!;
      const c = consume ? p.fallback.consume : p.fallback.peek;
      return this.decode.single(twin.runParsed(c.def, keys, valuesWith(c, costs[0]!, shares?.[0]), undefined, now), consume ? this.at.consume : this.at.peek, 'fallback');
    }
    const items: ArgValues[] = this.plans.map((p, i) => (shares ? { ...p.fallbackItem, cost: costs[i]!, share_ppm: Number(shares[i]) } : { ...p.fallbackItem, cost: costs[i]! }));
    if (this.blocks) items.push(this.twinBlock);
    const reply = twin.runParsed(consume ? b.multiScript : b.multiPeekScript, keys, {}, items, now);
    return this.decode.items(reply, consume ? this.at.multi : this.at.multiPeek, 'fallback');
  }

  /** Each key's cost as sent in a batch: one per limit, then 1 for the block item. */
  costStrings(costs: readonly number[]): string[] {
    const out = this.plans.map((_, i) => String(costs[i]));
    if (this.blocks) out.push('1');
    return out;
  }

  /** Each key's priority share as sent in a batch: one per limit, then '' (the default) for the block item. */
  shareStrings(shares: readonly string[]): string[] {
    return this.blocks ? [...shares, ''] : [...shares];
  }

  /** How decisions go to Redis when coalesced: `batch` (one limit) or `multi_batch` (several, or blocks). */
  private batchShape(): BatchShape {
    if (this.single) {
      const p = this.plans[0]!;
      return { lone: (w) => this.consume(w.costs, w.shares), def: b.batchScript, argv: batchArgv(p.item) };
    }
    const specs = this.plans.map((p) => [p.item.algo, p.item.limit, p.item.period_ms, p.item.burst, p.item.offset_ms, p.item.unit].join(','));
    if (this.blocks) specs.push('block,,,,,');
    return { lone: (w) => this.consume(w.costs, w.shares), def: b.multiBatchScript, argv: [String(specs.length), specs.join(';'), ''] };
  }

  /** multi ARGV: now_ms omitted, one group per limit (in plan order), then the block item. */
  private multiArgv(costs: readonly (number | string)[], shares?: readonly string[]): string[] {
    const argv = [''];
    for (let i = 0; i < this.plans.length; i++) pushItem(argv, this.plans[i]!, costs[i]!, shares?.[i]);
    if (this.blocks) pushBlockItem(argv);
    return argv;
  }
}
