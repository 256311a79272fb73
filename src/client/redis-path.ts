import { RedisUnavailableError } from '../errors.js';
import { primaryFor, runScript, slotOwner, type RedisClientLike, type ScriptDef } from '../runtime/index.js';
import { CircuitBreaker, type BreakerOptions } from './breaker.js';
import { callerError, classify } from './failure.js';
import { errorReason } from './metrics.js';
import { readiness, TimeoutError, whenReady } from './redis-call.js';

interface Pending {
  /** Loop-available time (see `loopNow`) when the call started. */
  start: number;
  settled: boolean;
  breaker: CircuitBreaker;
  reject: (err: unknown) => void;
}

const SHARE = { shareWrite: true };
const NO_KEYS: readonly string[] = [];
const NO_OPTIONS = {};
const BREAKER_OPEN = () => new RedisUnavailableError('redlimit: circuit breaker is open');

/**
 * The one way a limiter talks to Redis: every method's call goes through `run`, which applies the
 * circuit breaker, the readiness check (nothing is sent to a client that is not ready, so nothing
 * waits in an offline queue to be replayed as a stale consume) and the deadline, and tells the
 * breaker how it went. What to answer on failure is the caller's policy; how failure is detected
 * is decided here only.
 *
 * On a Cluster, each primary has a breaker of its own (found from the client's slot table), so
 * one dead shard sends only its own slots to the failure path; `breaker` is the one used when
 * the owner is unknown (and the only one on a standalone client).
 *
 * Deadlines: no timer per call. One sweep runs every timeoutMs/8 while calls are in flight, and
 * a call fails once it has waited timeoutMs of *event-loop-available* time: when the sweep itself
 * fires late, the process was busy (a slow event loop, not a slow Redis), and that delay is not
 * charged to Redis. So a healthy Redis never opens the breaker because this process is loaded,
 * while a Redis that does not answer still fails every call within about timeoutMs.
 */
export class RedisPath {
  private readonly pending: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastSweep = 0;
  /** Total ms the event loop was late for the sweep: time no reply could have been read. */
  private stalled = 0;
  private readonly sweepMs: number;
  private refused: Error | null = null;

  /** Per Cluster primary ("host:port"). */
  readonly nodeBreakers = new Map<string, CircuitBreaker>();

  constructor(
    readonly client: RedisClientLike,
    readonly breaker: CircuitBreaker,
    private readonly timeoutMs: number,
    private readonly onError: (reason: string) => void,
    private readonly nodeBreakerOptions: BreakerOptions | undefined,
    private readonly onNodeBreaker: (node: string, breaker: CircuitBreaker) => void = () => {},
  ) {
    this.sweepMs = Math.max(1, Math.floor(timeoutMs / 8));
  }

  /** The breaker guarding the primary that owns `slot` (-1: not a Cluster call). */
  breakerFor(slot: number): CircuitBreaker {
    if (slot < 0) return this.breaker;
    const node = slotOwner(this.client, slot);
    if (node === null) return this.breaker;
    let b = this.nodeBreakers.get(node);
    if (!b) {
      b = new CircuitBreaker(this.nodeBreakerOptions);
      this.nodeBreakers.set(node, b);
      this.onNodeBreaker(node, b);
    }
    return b;
  }

  /**
   * Runs a script on Redis. Rejects with the failure (and has told the breaker); the caller's
   * own mistakes (see failure.ts) as a typed error: InvalidArgumentError, StateKeyError.
   */
  run(def: ScriptDef, keys: string[], argv: string[], slot = -1, share = false): Promise<unknown> {
    if (this.refused) return Promise.reject(this.refused);
    const breaker = slot < 0 ? this.breaker : this.breakerFor(slot);
    if (!breaker.tryAcquire()) return Promise.reject(BREAKER_OPEN());
    const work =
      readiness(this.client) === null
        ? runScript(this.client, def, keys, argv, share ? SHARE : NO_OPTIONS)
        : whenReady(this.client, this.timeoutMs).then(() => runScript(this.client, def, keys, argv));
    return this.guard(work, breaker, keys);
  }

  /**
   * Runs a script that declares no key (node_batch) on the own connection of the Cluster primary
   * serving `slot`, so it follows no redirect; its breaker, readiness and deadline as `run`'s.
   * null (nothing sent) when the slot table names no primary for `slot`.
   */
  runOnNode(def: ScriptDef, argv: string[], slot: number, share = false): Promise<unknown> | null {
    if (this.refused) return Promise.reject(this.refused);
    const node = primaryFor(this.client, slot);
    if (node === null) return null;
    const breaker = this.breakerFor(slot);
    if (!breaker.tryAcquire()) return Promise.reject(BREAKER_OPEN());
    const options = { shareWrite: share, functionsOf: this.client };
    const go = (n: RedisClientLike) => runScript(n, def, [], argv, options);
    const ready = readiness(this.client) === null ? null : whenReady(this.client, this.timeoutMs);
    const work = ready === null && !(node instanceof Promise) ? go(node) : Promise.all([node, ready]).then(([n]) => go(n));
    return this.guard(work, breaker, NO_KEYS);
  }

  private loopNow(): number {
    return performance.now() - this.stalled;
  }

  private guard(work: Promise<unknown>, breaker: CircuitBreaker, keys: readonly string[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const p: Pending = { start: this.loopNow(), settled: false, breaker, reject };
      this.pending.push(p);
      if (this.timer === null) this.startSweep();
      work.then(
        (value) => {
          if (p.settled) return; // too late: the caller has been answered without Redis
          p.settled = true;
          breaker.success();
          resolve(value);
        },
        (err: unknown) => {
          if (p.settled) return;
          p.settled = true;
          reject(this.judge(err, breaker, keys));
        },
      );
    });
  }

  /**
   * Tells the breaker what a failed call says about Redis, and returns what the caller gets. A
   * caller error is no verdict on Redis: it counts neither way (except that a half-open probe
   * Redis answered must give its probe slot back, which only a success does). A slot on the move
   * is Redis answering (a success); this call still takes the failure path.
   */
  private judge(err: unknown, breaker: CircuitBreaker, keys: readonly string[]): unknown {
    const kind = classify(err);
    if (kind === 'caller') {
      breaker.release();
      return callerError(err, keys);
    }
    if (kind === 'moving') breaker.success();
    else breaker.failure(err);
    this.onError(errorReason(err));
    return err;
  }

  private startSweep(): void {
    this.lastSweep = performance.now();
    this.timer = setInterval(() => this.sweep(), this.sweepMs);
    this.timer.unref();
  }

  private sweep(): void {
    const now = performance.now();
    const late = now - this.lastSweep - this.sweepMs;
    if (late > 0) this.stalled += late;
    this.lastSweep = now;
    const loopNow = now - this.stalled;
    // Calls start in order and share one timeout, so the oldest are at the head.
    while (this.head < this.pending.length) {
      const p = this.pending[this.head]!;
      if (!p.settled) {
        if (loopNow - p.start < this.timeoutMs) break;
        p.settled = true;
        const err = new TimeoutError(this.timeoutMs);
        p.breaker.failure(err);
        this.onError('timeout');
        p.reject(err);
      }
      this.head++;
    }
    if (this.head > 1024 || this.head === this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
    if (this.pending.length === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Every later call fails with `err` without being sent (an unsupported server). */
  refuse(err: Error): void {
    this.refused = err;
  }

  /** Stops the sweep; calls still in flight settle on their own (or never: close came first). */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
