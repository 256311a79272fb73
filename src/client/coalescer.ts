import * as b from '../../generated/index.js';
import type { ScriptDef } from '../runtime/index.js';

/** One decision waiting for its batch: its key, its cost (as sent) and how to answer it. */
export interface Waiter {
  key: string;
  cost: string;
  /** The reply holds this decision's allowed, remaining, reset, retry at `offset`. */
  done(reply: readonly number[], offset: number): void;
  fail(err: unknown): void;
}

/** Most decisions one script call carries: bounds how long one call holds Redis. */
const MAX_BATCH = 256;

/**
 * Coalescing: decisions of one single-limit limiter that arrive in the same event-loop turn go
 * to Redis as one `batch` script call, which decides them in order, each independently and
 * exactly as if sent alone. The flush runs in the same turn's check phase (setImmediate), so an
 * idle process adds no latency; a lone decision is sent as the limit's own script. On a Cluster,
 * decisions are grouped per hash slot (every key of one call must live in one slot).
 */
export class Coalescer {
  private readonly queues = new Map<number, Waiter[]>();
  private scheduled = false;
  private readonly flushAll = () => this.flush();

  constructor(
    private readonly send: (def: ScriptDef, keys: string[], argv: string[], slot: number) => Promise<unknown>,
    /** The limit's own script and ARGV with the cost at `costIndex`. */
    private readonly single: { def: ScriptDef; argv: readonly string[]; costIndex: number },
    /** The batch script's fixed ARGV for this limit. */
    private readonly batchArgv: readonly string[],
  ) {}

  add(slot: number, w: Waiter): void {
    let q = this.queues.get(slot);
    if (!q) {
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
    for (const [slot, q] of queues) this.sendBatch(q, slot);
  }

  private sendBatch(q: Waiter[], slot: number): void {
    let call: Promise<unknown>;
    let first: number;
    if (q.length === 1) {
      const argv = this.single.argv.slice();
      argv[this.single.costIndex] = q[0]!.cost;
      call = this.send(this.single.def, [q[0]!.key], argv, slot);
      first = 0;
    } else {
      const keys = new Array<string>(q.length);
      const argv = this.batchArgv.slice();
      for (let i = 0; i < q.length; i++) {
        keys[i] = q[i]!.key;
        argv.push(q[i]!.cost);
      }
      call = this.send(b.batchScript, keys, argv, slot);
      first = 1; // the batch reply opens with the clock reading
    }
    call.then(
      (reply) => {
        const r = reply as number[];
        for (let i = 0; i < q.length; i++) q[i]!.done(r, first + 4 * i);
      },
      (err: unknown) => {
        // A slot half-way through a migration refuses multi-key calls (TRYAGAIN): each decision
        // alone follows the ASK redirect, so the batch is sent again one by one.
        if (q.length > 1 && /^TRYAGAIN\b/.test((err as { redisMessage?: string }).redisMessage ?? '')) {
          for (const w of q) this.sendBatch([w], slot);
        } else for (const w of q) w.fail(err);
      },
    );
  }
}
