import { randomUUID } from 'node:crypto';
import * as b from '../../generated/index.js';
import { KEY_ERROR_CODES, StateKeyError } from '../errors.js';
import type { ScriptDef } from '../runtime/index.js';
import type { ArgValues } from '../twin/args.js';
import type { TwinClient } from '../twin/client.js';
import { directConsume, type DirectConsume } from '../twin/direct.js';
import type { BatchShape } from './coalescer.js';
import { Decoder } from './decode.js';
import type { Decision, DecisionSource } from './decision.js';
import { argvWith, BATCH_NOW, BATCH_TZ, batchArgv, pushBlockItem, pushItem, valuesWith, type CallClock, type LimitPlan } from './plan.js';

/** One script call of a decision: what to send, and where its first limit result starts in the reply. */
export interface Call {
  def: ScriptDef;
  argv: string[];
  offset: number;
}

/**
 * Where multi_batch takes its clock reading and its time zones (after count and specs); node_batch
 * takes the same fixed arguments in the same places (test/scripts/node-batch.test.ts holds it).
 */
const MULTI_BATCH_NOW = b.multiBatchScript.args.findIndex((a) => a.name === 'now_ms');
const MULTI_BATCH_TZ = b.multiBatchScript.args.findIndex((a) => a.name === 'tz_rules');

/**
 * How this limiter's decisions travel, compiled once from its plan: one limit and no blocks use
 * the limit's own scripts (and `batch` when coalesced), anything else `multi` / `multi_peek`
 * (and `multi_batch`), all-or-nothing. A limiter with a concurrency limit always decides through
 * `multi` and is never coalesced: multi_batch takes no concurrency item (each decision has a
 * holder of its own). Everything that differs between the ways lives here, so the limiter never
 * asks which one it is. Time zones (quota `timeZone`) and, with `sendClock`, the clock reading
 * are filled in per call.
 */
export class Shape {
  readonly decode: Decoder;
  readonly single: boolean;
  /** How many limits (costs) a decision has. */
  readonly count: number;
  /** Whether a decision holds a concurrency slot (its plan has a concurrency limit). */
  readonly holding: boolean;
  /** How decisions are coalesced; null when they are not (a concurrency limiter). */
  readonly batch: BatchShape | null;
  /**
   * Layout 'subject' with several limits: every limit of a subject in its one key, decided by the
   * tiers scripts (its specs as sent, and with the fallback's sizes for the twin, and their adopt
   * argument: the limit names as the key names them, so a subject's states kept with a key per
   * limit move into its key; decisions, peeks, refunds and reservations send it while the
   * AdoptionSwitch is on, resets and settles always); null: a key per limit.
   */
  readonly tiers: { readonly specs: string; readonly fallbackSpecs: string; readonly adopt: string } | null;
  private readonly twinBlock: ArgValues = { algo: 'block', limit: 1, cost: 1, offset_ms: 0 };
  /** Where each call's first limit result sits in its reply (from the script headers). */
  private readonly at: { readonly consume: number; readonly peek: number; readonly multi: number; readonly multiPeek: number; readonly tiers: number; readonly tiersPeek: number };
  private readonly zoned: boolean;
  /** One limit: its fallback consume bound once on the twin (null: through runParsed), and the reply it fills. */
  private readonly twinConsume: DirectConsume | null;
  private readonly twinReply: number[] = [0, 0, 0, 0];
  /** The fallback consume's share_ppm when a call names no priority class. */
  private readonly twinShare: number | undefined;
  /**
   * The holder a twin decision made now takes (see withHolder): the fallback calls onTwin
   * synchronously, so the holder of the decision under way is set around that call.
   */
  private holder: string | undefined;

  constructor(
    private readonly plans: readonly LimitPlan[],
    private readonly blocks: boolean,
    private readonly clock: CallClock = { now: null },
    subjectLayout = false,
    /** Layout 'subject': whether decisions, peeks and refunds send adopt now (AdoptionSwitch); always when not given. */
    private readonly adoption: { readonly on: boolean } = { on: true },
  ) {
    this.decode = new Decoder(plans, blocks);
    this.holding = plans.some((p) => p.concurrency);
    this.single = plans.length === 1 && !blocks && !this.holding;
    // createRateLimiter's checks hold what a subject's key can take (lib/tiers): no blocks, no concurrency.
    this.tiers =
      subjectLayout && !this.single ? { specs: specsOf(plans.map((p) => p.item)), fallbackSpecs: specsOf(plans.map((p) => p.fallbackItem)), adopt: plans.map((p) => p.name).join('+') } : null;
    this.count = plans.length;
    this.zoned = plans.some((p) => p.zone !== null);
    const offset = (def: ScriptDef) => b.replyLayouts[def.name]?.offset ?? 0; // a concurrency limit's scripts are never sent alone
    this.at = { consume: offset(plans[0]!.consume.def), peek: offset(plans[0]!.peek.def), multi: offset(b.multiScript), multiPeek: offset(b.multiPeekScript), tiers: offset(b.tiersScript), tiersPeek: offset(b.tiersPeekScript) };
    this.batch = this.holding ? null : this.batchShape();
    const fc = plans[0]!.fallback.consume;
    this.twinConsume = this.single && fc.zone === null && fc.costIndex >= 0 && fc.shareIndex >= 0 && this.at.consume === 0 ? directConsume(fc.def.name, fc.values) : null;
    this.twinShare = fc.values.share_ppm as number | undefined;
  }

  /** Layout 'subject': the adopt argument a decision or a reservation sends now ('' while the AdoptionSwitch is off). */
  adoptArg(): string {
    return this.tiers !== null && this.adoption.on ? this.tiers.adopt : '';
  }

  /** Whether consumeOnTwin decides through the bound direct consume (one limit, no zone, the reply at 0). */
  get directOnTwin(): boolean {
    return this.twinConsume !== null;
  }

  /** The consume call on Redis, uncoalesced; a concurrency item takes `holder`. */
  consume(costs: readonly (number | string)[], shares?: readonly string[], holder?: string): Call {
    if (this.single) return { def: this.plans[0]!.consume.def, argv: argvWith(this.plans[0]!.consume, costs[0]!, shares?.[0]), offset: this.at.consume };
    if (this.tiers !== null) return { def: b.tiersScript, argv: this.tiersArgv(this.tiers.specs, costs, shares), offset: this.at.tiers };
    return { def: b.multiScript, argv: this.multiArgv(costs, shares, holder), offset: this.at.multi };
  }

  /**
   * The read-only call (may run on a replica). A concurrency item asked at cost 1 asks whether a
   * new holder could take a slot now (a fresh id: never one that holds a slot).
   */
  peek(costs: readonly number[], shares?: readonly string[]): Call {
    if (this.single) return { def: this.plans[0]!.peek.def, argv: argvWith(this.plans[0]!.peek, costs[0]!, shares?.[0]), offset: this.at.peek };
    if (this.tiers !== null) return { def: b.tiersPeekScript, argv: this.tiersArgv(this.tiers.specs, costs, shares), offset: this.at.tiersPeek };
    return { def: b.multiPeekScript, argv: this.multiArgv(costs, shares, this.holding ? randomUUID() : undefined), offset: this.at.multiPeek };
  }

  /**
   * A reply of `call` as a decision. `key`: the call's key, named in a StateKeyError. A subject's
   * key (layout 'subject') holding another Redis type or a value that is not its limits' states
   * comes back marked (allowed -1 on every limit, the code on the one at fault), not as an error
   * reply: it is the same StateKeyError the per-limit scripts' WRONGTYPE / WRONGSTATE become.
   */
  decide(call: Call, reply: readonly number[], source: DecisionSource, key?: string): Decision {
    if (this.tiers !== null && reply[call.offset] === -1) throw tiersKeyError(call.def.name, reply, call.offset, this.plans.length, key ?? null);
    return this.single ? this.decode.single(reply, call.offset, source) : this.decode.items(reply, call.offset, source);
  }

  /** A coalesced reply: this decision's first result is at `offset`. */
  decideAt(reply: readonly number[], offset: number, source: DecisionSource): Decision {
    return this.single ? this.decode.single(reply, offset, source) : this.decode.items(reply, offset, source);
  }

  /** Runs `fn` (a synchronous twin decision through the fallback) with `holder` as its concurrency items' holder. */
  withHolder<T>(holder: string | undefined, fn: () => T): T {
    const before = this.holder;
    this.holder = holder;
    try {
      return fn();
    } finally {
      this.holder = before;
    }
  }

  /** The same decision (or peek) on the twin, with the fallback's sizes. */
  onTwin(twin: TwinClient, keys: readonly string[], costs: readonly number[], consume: boolean, now: number, shares?: readonly string[]): Decision {
    if (this.single) {
      if (consume) return this.consumeOnTwin(twin, keys[0]!, keys, costs[0]!, now, shares);
      const p = this.plans[0]!;
      const c = consume ? p.fallback.consume : p.fallback.peek;
      return this.decode.single(twin.runParsed(c.def, keys, valuesWith(c, costs[0]!, shares?.[0]), undefined, now), consume ? this.at.consume : this.at.peek, 'fallback');
    }
    if (this.tiers !== null) {
      const reply = twin.runParsed(consume ? b.tiersScript : b.tiersPeekScript, keys, this.tiersArgs(), [tiersGroup(costs, shares)], now);
      return this.decode.items(reply, consume ? this.at.tiers : this.at.tiersPeek, 'fallback');
    }
    const holder = this.holding ? (consume ? this.holder : undefined) ?? randomUUID() : undefined;
    const items: ArgValues[] = this.plans.map((p, i) => {
      const item: ArgValues = shares ? { ...p.fallbackItem, cost: costs[i]!, share_ppm: shares[i] === '' ? 1_000_000 : Number(shares[i]) } : { ...p.fallbackItem, cost: costs[i]! };
      if (p.concurrency) item.holder = holder;
      return item;
    });
    if (this.blocks) items.push(this.twinBlock);
    const reply = twin.runParsed(consume ? b.multiScript : b.multiPeekScript, keys, this.zoned ? { tz_rules: this.tzRules() } : {}, items, now);
    return this.decode.items(reply, consume ? this.at.multi : this.at.multiPeek, 'fallback');
  }

  /**
   * onTwin's consume for a single limit (`single`) of `key`. `keys` ([key]: no block key here) is
   * read only when no direct consume is bound (directOnTwin false).
   */
  consumeOnTwin(twin: TwinClient, key: string, keys: readonly string[], cost: number, now: number, shares?: readonly string[]): Decision {
    const p = this.plans[0]!;
    if (this.twinConsume === null) return this.decode.single(twin.runParsed(p.fallback.consume.def, keys, valuesWith(p.fallback.consume, cost, shares?.[0]), undefined, now), this.at.consume, 'fallback');
    // As valuesWith passes it: the class's share, else the script's default.
    const share = shares?.[0];
    const out = this.twinReply;
    twin.runDirect(this.twinConsume, p.fallback.consume.def, out, key, cost, share === undefined || share === '' ? this.twinShare : Number(share), now);
    return this.decode.single(out, 0, 'fallback');
  }

  /** Each key's cost as sent in a batch: one per limit, then 1 for the block item (tiers: the one key's costs, joined). */
  costStrings(costs: readonly number[]): string[] {
    if (this.tiers !== null) return [costsOf(costs)];
    const out = this.plans.map((_, i) => String(costs[i]));
    if (this.blocks) out.push('1');
    return out;
  }

  /** Each key's priority share as sent in a batch: one per limit, then '' (the default) for the block item. */
  shareStrings(shares: readonly string[]): string[] {
    if (this.tiers !== null) return [sharesOf(shares)];
    return this.blocks ? [...shares, ''] : [...shares];
  }

  /** multi / multi_peek / multi_batch tz_rules: one entry per item ('' for a limit without a zone), '' when no limit has one. */
  private tzRules(): string {
    if (!this.zoned) return '';
    const entries = this.plans.map((p) => p.zone?.rules() ?? '');
    if (this.blocks) entries.push('');
    return entries.join('|');
  }

  private nowArg(): string {
    return this.clock.now === null ? '' : String(Math.floor(this.clock.now()));
  }

  /**
   * How decisions go to Redis when coalesced: `batch` (one limit) or `multi_batch` (several, or
   * blocks); on a Cluster, decisions of several slots of one node as `node_batch`.
   */
  private batchShape(): BatchShape {
    const lone = (w: { costs: readonly string[]; shares?: readonly string[] }) => this.consume(w.costs, w.shares);
    const specs = this.plans.map((p) => specOf(p.item));
    if (this.blocks) specs.push('block,,,,,');
    // multi_batch, node_batch and tiers take the same fixed ARGV (count, specs, now_ms, tz_rules), then each item's group.
    const fixedSpecs = [String(specs.length), specs.join(';'), '', ''];
    const specsArgv =
      !this.zoned && this.clock.now === null
        ? () => fixedSpecs
        : () => {
            const argv = fixedSpecs.slice();
            argv[MULTI_BATCH_NOW] = this.nowArg();
            argv[MULTI_BATCH_TZ] = this.tzRules();
            return argv;
          };
    // A subject's key is one decision's only key: tiers' call of many keys is the batch (keys of
    // one slot), tiers_node_batch a Cluster primary's call of many slots. Their fixed ARGV is
    // multi_batch's and adopt.
    if (this.tiers !== null) {
      const adopting = [...fixedSpecs, this.tiers.adopt];
      const notAdopting = [...fixedSpecs, ''];
      const tiersArgv =
        !this.zoned && this.clock.now === null
          ? () => (this.adoption.on ? adopting : notAdopting)
          : () => {
              const argv = (this.adoption.on ? adopting : notAdopting).slice();
              argv[MULTI_BATCH_NOW] = this.nowArg();
              argv[MULTI_BATCH_TZ] = this.tzRules();
              return argv;
            };
      return { lone, node: { def: b.tiersNodeBatchScript, argv: tiersArgv }, def: b.tiersScript, argv: tiersArgv, perKey: this.plans.length };
    }
    const node = { def: b.nodeBatchScript, argv: specsArgv };
    if (this.single) {
      const p = this.plans[0]!;
      const fixed = batchArgv(p.item);
      if (!this.zoned && this.clock.now === null) return { lone, def: b.batchScript, argv: () => fixed, node, perKey: 1 };
      return {
        lone,
        node,
        perKey: 1,
        def: b.batchScript,
        argv: () => {
          const argv = fixed.slice();
          if (p.zone !== null) argv[BATCH_TZ] = p.zone.rules();
          argv[BATCH_NOW] = this.nowArg();
          return argv;
        },
      };
    }
    return { lone, node, def: b.multiBatchScript, argv: specsArgv, perKey: 1 };
  }

  /**
   * Layout 'subject': the one call that gives `costs` back to every limit of the subject's key
   * (tiers_refund); null for a key per limit (each limit's own refund script).
   */
  refundCall(costs: readonly number[]): Call | null {
    if (this.tiers === null) return null;
    const argv = [String(this.plans.length), this.tiers.specs, this.nowArg(), this.tzRules(), this.adoptArg(), costs.join(',')];
    return { def: b.tiersRefundScript, argv, offset: 1 };
  }

  /** refundCall's refund on the twin (the fallback's sizes); false for a key per limit (the caller refunds each). */
  refundOnTwin(twin: TwinClient, key: string, costs: readonly number[]): boolean {
    if (this.tiers === null) return false;
    twin.runParsed(b.tiersRefundScript, [key], this.tiersArgs(), [{ costs: costs.join(',') }]);
    return true;
  }

  /**
   * Layout 'subject': takes `takes` (per limit) from the subject's key on the twin at `at` (the
   * fallback seeding what Redis said); false for a key per limit (the caller seeds each).
   */
  seedOnTwin(twin: TwinClient, key: string, takes: readonly number[], at: number): boolean {
    if (this.tiers === null) return false;
    if (twin.store.has(key, at)) return true;
    // Limit by limit, as a key per limit is seeded: a take a limit cannot hold (a subject in debt)
    // seeds nothing of that limit, and the others still are.
    takes.forEach((take, j) => {
      if (take > 0) twin.runParsed(b.tiersScript, [key], this.tiersArgs(), [tiersGroup(takes.map((_, i) => (i === j ? take : 0)))], at);
    });
    return true;
  }

  /** Layout 'subject': which limits a reset names (tiers_reset's positions: all of them when names is null); null for a key per limit. */
  resetPositions(names: ReadonlySet<string> | null): string | null {
    if (this.tiers === null) return null;
    return this.plans.flatMap((p, i) => (names === null || names.has(p.name) ? [String(i + 1)] : [])).join(',');
  }

  /** tiers / tiers_peek ARGV: count, specs, now_ms, tz_rules, adopt, then the one key's costs and shares. */
  private tiersArgv(specs: string, costs: readonly (number | string)[], shares?: readonly string[]): string[] {
    return [String(this.plans.length), specs, this.nowArg(), this.tzRules(), this.adoptArg(), costsOf(costs), shares ? sharesOf(shares) : ''];
  }

  /** The twin's fixed tiers arguments (the fallback's sizes), parsed as the prologue would. */
  private tiersArgs(): ArgValues {
    const args: ArgValues = { count: this.plans.length, specs: this.tiers!.fallbackSpecs };
    if (this.zoned) args.tz_rules = this.tzRules();
    return args;
  }

  /** multi ARGV: now_ms ('' unless sendClock), tz_rules, one group per limit (in plan order), then the block item. */
  private multiArgv(costs: readonly (number | string)[], shares?: readonly string[], holder?: string): string[] {
    const argv = [this.nowArg(), this.tzRules()];
    for (let i = 0; i < this.plans.length; i++) pushItem(argv, this.plans[i]!, costs[i]!, shares?.[i], holder);
    if (this.blocks) pushBlockItem(argv);
    return argv;
  }
}

/** One limit as a multi_batch / tiers spec: `algo,limit,period_ms,burst,offset_ms,unit` (empty fields for what it does not take). */
function specOf(item: Readonly<Record<string, unknown>>): string {
  return [item.algo, item.limit, item.period_ms, item.burst, item.offset_ms, item.unit].map((v) => (v === undefined ? '' : String(v))).join(',');
}

function specsOf(items: readonly Readonly<Record<string, unknown>>[]): string {
  return items.map(specOf).join(';');
}

/** tiers' costs: one per limit, joined; '' when every one is 1 (the script's default: nothing to parse). */
function costsOf(costs: readonly (number | string)[]): string {
  for (const c of costs) if (c !== 1 && c !== '1') return costs.join(',');
  return '';
}

/** tiers' shares: one share_ppm per limit ('' for a limit without a class: 1000000), joined. */
function sharesOf(shares: readonly string[]): string {
  return shares.map((x) => (x === '' ? '1000000' : x)).join(',');
}

/** One tiers decision's group for the twin: its costs and shares, as sent. */
function tiersGroup(costs: readonly number[], shares?: readonly string[]): ArgValues {
  return shares ? { costs: costs.join(','), shares: sharesOf(shares) } : { costs: costs.join(',') };
}

/** The StateKeyError of a tiers / tiers_peek decision marked as failed (allowed -1 on each limit; 1 WRONGTYPE or 2 WRONGSTATE in the remaining of the limit at fault). */
function tiersKeyError(script: string, reply: readonly number[], offset: number, count: number, key: string | null): StateKeyError {
  for (let j = 0; j < count; j++) {
    const code = KEY_ERROR_CODES[reply[offset + 4 * j + 1]!];
    if (code) return new StateKeyError(script, code, key);
  }
  return new StateKeyError(script, 'WRONGSTATE', key);
}
