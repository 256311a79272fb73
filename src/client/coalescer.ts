import { decisionReply, replyLayouts } from '../../generated/index.js';
import { KEY_ERROR_CODES, ScriptError, StateKeyError } from '../errors.js';
import type { ScriptDef } from '../runtime/index.js';

/** One decision waiting for its batch: its keys and costs (as sent) and how to answer it. */
export interface Waiter {
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
}

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
 * process adds no latency; a lone decision is sent as the limiter's own script. On a Cluster,
 * decisions are grouped per hash slot (every key of one call must live in one slot).
 */
export class Coalescer {
  private readonly queues = new Map<number, Waiter[]>();
  private scheduled = false;
  private readonly flushAll = () => this.flush();
  /** The batch script's per-key group (its @group lines): how many values, and which is the cost. */
  private readonly group: { readonly size: number; readonly cost: number; readonly share: number };

  constructor(
    /** `share`: the call may share a socket write with the turn's other calls (RedisPath.run). */
    private readonly send: (def: ScriptDef, keys: string[], argv: string[], slot: number, share: boolean) => Promise<unknown>,
    private readonly shape: BatchShape,
  ) {
    const fields = shape.def.each?.args.map((a) => a.name) ?? ['cost'];
    this.group = { size: fields.length, cost: fields.indexOf('cost'), share: fields.indexOf('share_ppm') };
  }

  add(slot: number, w: Waiter): void {
    let q = this.queues.get(slot);
    if (q === undefined) {
      q = [];
      this.queues.set(slot, q);
    }
    q.push(w);
    if (q.length >= MAX_BATCH) {
      this.queues.delete(slot);
      this.sendBatch(q, slot);
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private flush(): void {
    this.scheduled = false;
    const queues = [...this.queues];
    this.queues.clear();
    // Several calls at once (a Cluster: one per hash slot) leave in one write per connection.
    const share = queues.length > 1;
    for (const [slot, q] of queues) this.sendBatch(q, slot, share);
  }

  private sendBatch(q: Waiter[], slot: number, share = false): void {
    if (q.length === 1) {
      const w = q[0]!;
      const { def, argv, offset } = this.shape.lone(w);
      this.send(def, [...w.keys], argv, slot, share).then(
        (reply) => w.done(reply as number[], offset),
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
        for (const w of q) {
          const failed = keyFailure(this.shape.def.name, r, offset, stride, w.keys);
          if (failed) w.fail(failed);
          else w.done(r, offset);
          offset += stride * w.keys.length;
        }
      },
      (err: unknown) => {
        // A slot half-way through a migration refuses multi-key calls (TRYAGAIN): each decision
        // alone follows the ASK redirect, so the batch is sent again one by one.
        if (err instanceof ScriptError && err.redisCode === 'TRYAGAIN') {
          for (const w of q) this.sendBatch([w], slot, true);
        } else for (const w of q) w.fail(err);
      },
    );
  }
}

/** The error of a decision the batch reply marks as failed alone, or null when it was decided. */
function keyFailure(script: string, r: readonly number[], offset: number, stride: number, keys: readonly string[]): StateKeyError | null {
  if (r[offset + decisionReply.allowed] !== -1) return null;
  for (let j = 0; j < keys.length; j++) {
    const code = KEY_ERROR_CODES[r[offset + stride * j + decisionReply.remaining]!];
    if (code) return new StateKeyError(script, code, keys[j]!);
  }
  return new StateKeyError(script, 'WRONGSTATE', null);
}
