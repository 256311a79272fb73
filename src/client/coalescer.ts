import { decisionReply, replyLayouts } from '../../generated/index.js';
import { KEY_ERROR_CODES, ScriptError, StateKeyError } from '../errors.js';
import type { ScriptDef } from '../runtime/index.js';

/** One decision waiting for its batch: its keys and costs (as sent) and how to answer it. */
export interface Waiter {
  /** The Cluster slot of its keys (-1: not a Cluster). */
  slot: number;
  keys: readonly string[];
  costs: readonly string[];
  /** Per key, its priority class as share_ppm ('' or absent: the script's default, everything). */
  shares?: readonly string[];
  /** The decision's first limit result is at `offset` (see the generated decisionReply). */
  done(reply: readonly number[], offset: number): void;
  fail(err: unknown): void;
}

/** How one limiter's decisions are sent: alone, or many in one call. */
export interface BatchShape {
  /** A lone decision: the limiter's own script call and where its first result starts. */
  lone(w: Waiter): { def: ScriptDef; argv: string[]; offset: number };
  /** The batch script (`batch` for one limit, `multi_batch` for several) and its fixed ARGV now (time zone rules and clock filled in); each key's group follows. */
  def: ScriptDef;
  argv(): readonly string[];
  /**
   * `node_batch` and its fixed ARGV now (count, specs, clock, time zone rules): the decisions of
   * several hash slots served by one Cluster node in one call; each item's group (key, cost,
   * share_ppm; tiers_node_batch: key, costs, shares) follows. Its reply has the batch script's
   * layout. null: the batch script's calls go by slot on a Cluster too.
   */
  node: { def: ScriptDef; argv(): readonly string[] } | null;
  /** Results in the reply per key of a decision: 1, or (tiers: a subject's key holds every limit) the limits' count. */
  perKey: number;
}

/** Longest key a node_batch item takes (its header's maxlen, in bytes); a longer one goes by its slot. */
const NODE_KEY_MAX_BYTES = 65_536;

/**
 * Most decisions one batch call carries; a turn with more is sent as several calls, each as soon
 * as it is full. The cap is about overlap, not the size of a call: with one call per turn, Node
 * encodes the whole turn, then Redis runs it while Node waits, then Node decodes the reply while
 * Redis waits. Split, Redis starts on the first call while Node still queues the rest of the
 * turn, and Node decodes a reply while Redis runs the next call. The cost of splitting: each call
 * pays the batch script's prologue (callgrind: about 100k Redis instructions for `batch`, a few
 * gcra decisions' worth) and Node's per-call work (a command, a write, a reply). Measured with
 * 256 in flight, one gcra, 10k ids (ratios to rate-limiter-flexible in the same run):
 *   cap                          256     64      32      16
 *   decisions/s, quiet machine   1.33×   2.20×   2.59×   –      (one run each)
 *   decisions/s, loaded (7 rds)  2.39×   3.50×   3.49×   –      (medians; 5 rounds at load 6: 1.84× 2.10× 1.97×)
 *   Redis instructions           0.89×   0.91×   0.95×   1.02×  (callgrind, per decision)
 *   Node CPU µs per decision     5.8     7.1     7.4     –
 * 64 keeps the overlap (four calls circulate at 256 in flight) at half the per-call cost of 32.
 * Counted in decisions, not keys: Redis CPU per three-tier decision was the same at 32, 64 and
 * 256 (22–23 µs), so a cap in keys (21 three-tier decisions a call) would only add calls. Calls
 * of one connection run in the order sent, so the decisions of a turn are still decided in
 * arrival order, each key's in the order they came.
 */
export const MAX_BATCH = 64;

/**
 * Coalescing: decisions of one limiter that arrive in the same event-loop turn go to Redis as
 * batch script calls (up to MAX_BATCH decisions each), which decide them in order, each
 * independently and exactly as if sent alone (each multi-limit decision all-or-nothing on its
 * own). The last call of a turn leaves in the same turn's check phase (setImmediate), so an idle
 * process adds no latency; a lone decision is sent as the limiter's own script.
 *
 * On a Cluster, decisions are grouped per primary (`cluster.nodeOf`, from the client's slot
 * table): a group of one slot goes as the batch script (its keys declared), a group of several as
 * node_batch, whose items carry their keys and which declares none (a call's declared keys must
 * share one slot, and 256 decisions in flight over 16384 slots almost never do); it goes on the
 * primary's own connection and so follows no redirect. A decision a batch reply marks ELSEWHERE
 * (its slot is not served there: moved, moving, or the slot table was stale) was not decided and
 * wrote nothing: it is sent again alone by its slot, following the redirect as any call does.
 */
export class Coalescer {
  private readonly queues = new Map<number | string, Waiter[]>();
  private scheduled = false;
  private readonly flushAll = () => this.flush();
  /** The batch script's per-key group (its @group lines): how many values, and which is the cost. */
  private readonly group: { readonly size: number; readonly cost: number; readonly share: number };

  constructor(
    /** `share`: the call may share a socket write with the turn's other calls (RedisPath.run). */
    private readonly send: (def: ScriptDef, keys: string[], argv: string[], slot: number, share: boolean) => Promise<unknown>,
    private readonly shape: BatchShape,
    /**
     * On a Cluster: the primary serving `slot` ("host:port"; null when unknown), and how a call
     * goes on that primary's own connection (RedisPath.runOnNode: null when it has none).
     */
    private readonly cluster: {
      nodeOf(slot: number): string | null;
      /**
       * The client's ioredis `keyPrefix` ('' for none): it puts it before declared keys only, so
       * node_batch's items (keys in ARGV) get it here, naming the keys every other call names.
       */
      keyPrefix: string;
      send(def: ScriptDef, argv: string[], slot: number, share: boolean): Promise<unknown> | null;
    } | null = null,
  ) {
    const fields = shape.def.each?.args.map((a) => a.name) ?? ['cost'];
    // tiers' group is one key's costs and shares, each a list joined (Shape.costStrings).
    const cost = fields.includes('cost') ? 'cost' : 'costs';
    const share = fields.includes('share_ppm') ? 'share_ppm' : 'shares';
    this.group = { size: fields.length, cost: fields.indexOf(cost), share: fields.indexOf(share) };
  }

  add(w: Waiter): void {
    const slot = w.slot;
    // A Cluster's decisions queue by the node serving their slot (by the slot when it is unknown).
    const at = slot >= 0 && this.cluster !== null && this.shape.node !== null ? (this.cluster.nodeOf(slot) ?? slot) : slot;
    let q = this.queues.get(at);
    if (q === undefined) {
      q = [];
      this.queues.set(at, q);
    }
    q.push(w);
    if (q.length >= MAX_BATCH) {
      this.queues.delete(at);
      this.sendBatch(q);
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private flush(): void {
    this.scheduled = false;
    const queues = [...this.queues];
    this.queues.clear();
    // Several calls at once (a Cluster: one per primary) leave in one write per connection.
    const share = queues.length > 1;
    for (const [, q] of queues) this.sendBatch(q, share);
  }

  private sendBatch(q: Waiter[], share = false): void {
    const slot = q[0]!.slot;
    if (slot >= 0 && q.length > 1 && this.cluster !== null && q.some((w) => w.slot !== slot)) {
      this.sendNodeBatch(q, share);
      return;
    }
    if (q.length === 1) {
      const w = q[0]!;
      const { def, argv, offset } = this.shape.lone(w);
      this.send(def, [...w.keys], argv, slot, share).then(
        (reply) => {
          // tiers (layout 'subject') marks a key it cannot read in its reply, as a batch does.
          const failed = def === this.shape.def ? keyFailure(def.name, reply as number[], offset, replyLayouts[def.name]!.stride, w.keys, this.shape.perKey) : null;
          if (failed) w.fail(failed);
          else w.done(reply as number[], offset);
        },
        (err: unknown) => w.fail(err),
      );
      return;
    }
    const keys: string[] = [];
    const argv = this.shape.argv().slice();
    // Each key carries the batch script's per-decision group: its cost and priority class, every
    // other field left '' for the script's default.
    const group = this.group;
    for (const w of q) {
      for (let j = 0; j < w.keys.length; j++) {
        keys.push(w.keys[j]!);
        for (let g = 0; g < group.size; g++) argv.push(g === group.cost ? w.costs[j]! : g === group.share ? (w.shares?.[j] ?? '') : '');
      }
    }
    this.send(this.shape.def, keys, argv, slot, share).then(
      (reply) => {
        const r = reply as number[];
        // The reply opens with the clock reading, then one result per key, decision after
        // decision. A decision that failed alone (a key holding another type or foreign state)
        // has allowed = -1 on each of its items, and the code (in remaining) on the item whose key it was.
        const { offset: first, stride } = replyLayouts[this.shape.def.name]!;
        let offset = first;
        const perKey = this.shape.perKey;
        for (const w of q) {
          this.answer(w, this.shape.def.name, r, offset, stride, perKey);
          offset += stride * w.keys.length * perKey;
        }
      },
      (err: unknown) => {
        // A slot half-way through a migration refuses multi-key calls (TRYAGAIN): each decision
        // alone follows the ASK redirect, so the batch is sent again one by one.
        if (err instanceof ScriptError && err.redisCode === 'TRYAGAIN') {
          for (const w of q) this.sendBatch([w], true);
        } else for (const w of q) w.fail(err);
      },
    );
  }

  /**
   * One decision's result in a batch reply: decided; failed alone (its key holds another type or
   * foreign state); or ELSEWHERE (a node that does not serve its slot refused to touch its keys,
   * so nothing of it was written): sent again alone, by its slot, where redirects are followed.
   */
  private answer(w: Waiter, script: string, r: readonly number[], offset: number, stride: number, perKey = 1): void {
    if (r[offset + decisionReply.allowed] === -1 && elsewhere(r, offset, stride, w.keys.length * perKey)) {
      this.sendBatch([w], true);
      return;
    }
    const failed = keyFailure(script, r, offset, stride, w.keys, perKey);
    if (failed) w.fail(failed);
    else w.done(r, offset);
  }

  /**
   * Decisions of several slots one primary serves, as one node_batch call on that primary's own
   * connection (it declares no key, so it follows no redirect: a decision whose slot is not
   * served there comes back ELSEWHERE and goes again by its slot). A decision with a key too
   * long for node_batch goes by its slot; so does every decision when the slot table names no
   * primary connection.
   */
  private sendNodeBatch(q: Waiter[], share: boolean): void {
    const node = this.shape.node!;
    const argv = node.argv().slice();
    const sent: Waiter[] = [];
    const prefix = this.cluster!.keyPrefix;
    const max = NODE_KEY_MAX_BYTES - Buffer.byteLength(prefix);
    for (const w of q) {
      if (w.keys.some((k) => k.length > max / 3 && Buffer.byteLength(k) > max)) {
        this.sendBatch([w], true);
        continue;
      }
      sent.push(w);
      for (let j = 0; j < w.keys.length; j++) argv.push(prefix + w.keys[j]!, w.costs[j]!, w.shares?.[j] ?? '');
    }
    if (sent.length === 0) return;
    const call = this.cluster!.send(node.def, argv, sent[0]!.slot, share);
    if (call === null) {
      for (const w of sent) this.sendBatch([w], true);
      return;
    }
    call.then(
      (reply) => {
        const r = reply as number[];
        const { offset: first, stride } = replyLayouts[node.def.name]!;
        let offset = first;
        const perKey = this.shape.perKey;
        for (const w of sent) {
          this.answer(w, node.def.name, r, offset, stride, perKey);
          offset += stride * w.keys.length * perKey;
        }
      },
      (err: unknown) => {
        for (const w of sent) w.fail(err);
      },
    );
  }
}

/** node_batch's ELSEWHERE (lib/args: RL_KEY_ELSEWHERE) on an item of a decision it did not decide. */
const ELSEWHERE = 3;

function elsewhere(r: readonly number[], offset: number, stride: number, n: number): boolean {
  for (let j = 0; j < n; j++) if (r[offset + stride * j + decisionReply.remaining] === ELSEWHERE) return true;
  return false;
}

/** The error of a decision the batch reply marks as failed alone, or null when it was decided. */
function keyFailure(script: string, r: readonly number[], offset: number, stride: number, keys: readonly string[], perKey: number): StateKeyError | null {
  if (r[offset + decisionReply.allowed] !== -1) return null;
  for (let j = 0; j < keys.length * perKey; j++) {
    const code = KEY_ERROR_CODES[r[offset + stride * j + decisionReply.remaining]!];
    if (code) return new StateKeyError(script, code, keys[Math.floor(j / perKey)]!);
  }
  return new StateKeyError(script, 'WRONGSTATE', null);
}
