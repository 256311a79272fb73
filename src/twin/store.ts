/**
 * The twin's keyspace: what Redis holds for the scripts, in process memory. Each entry has a kind
 * (the Redis type it stands for) and an expiry on the twin's clock.
 *
 * Expired entries go lazily on read (as in Redis) and actively, in expiry order: a min-heap holds
 * every entry that has an expiry, keyed by a lower bound of it. Every read or write first drops a
 * few entries that are due (bounded work, amortised O(1): each entry enters the heap once per
 * expiry that comes due), and a timer drops the rest while nothing calls. So memory follows the
 * live state during traffic and returns to nothing after the TTLs pass, idle or not. The timer is
 * unref'd (a process exits with a non-empty store) and stops once nothing is left to expire.
 */
export type TwinValue =
  | { kind: 'gcra'; tatMs: number; tatNum: number }
  | { kind: 'token_bucket'; tokens: number; frac: number; tsMs: number }
  | { kind: 'counter'; start: number; count: number }
  | { kind: 'sliding_window'; start: number; cur: number; prev: number }
  | { kind: 'sliding_log'; entries: { ts: number; cum: number; cost: number }[] }
  | { kind: 'leases'; leases: Map<string, number> }
  | { kind: 'block'; untilMs: number };

interface Entry {
  key: string;
  value: TwinValue;
  /** ms on the twin's clock; the entry is gone once now > expiresAt (Redis' rule). */
  expiresAt: number;
  /** Index in the expiry heap, -1 when not in it (no expiry, or removed). */
  slot: number;
}

export class TwinStateError extends Error {}

export interface MemoryStoreOptions {
  /**
   * The clock the callers' `now` comes from, read only by the idle sweep. Without it the idle
   * sweep takes the latest `now` a caller passed and adds the real time elapsed since, which never
   * runs ahead of a clock that keeps real time.
   */
  clock?: () => number;
}

/** Due entries each read or write may drop: above one per call, so a backlog drains. */
const CALL_BUDGET = 4;
/** Due entries one timer turn may drop before yielding the event loop. */
const TICK_BUDGET = 8192;
/** The idle sweep looks again after at least / at most this long (ms). */
const TICK_MIN_MS = 10;
const TICK_MAX_MS = 1000;
const SPARE_ENTRIES = 512;
const RETIRED: TwinValue = { kind: 'block', untilMs: 0 };

export class MemoryStore {
  private readonly map = new Map<string, Entry>();
  /**
   * A 4-ary min-heap of the entries with an expiry: `at[i]` is a lower bound of `queue[i]`'s
   * expiry (moving an expiry later does not touch the heap; the entry is queued again when its
   * bound comes due). Priorities sit in one typed array so sifting does not chase pointers.
   */
  private queue: Entry[] = [];
  private at = new Float64Array(64);
  /**
   * Entries the sweep removed, reused for new keys: a stream of short-lived keys then allocates
   * (and the garbage collector copies) no entry per key. Bounded; entries never leave the store.
   */
  private readonly spare: Entry[] = [];
  private readonly clock: (() => number) | undefined;
  /** Highest `now` a caller has passed, and when (performance.now()) the idle sweep saw it. */
  private seenNow = -Infinity;
  private baseNow = -Infinity;
  private baseWall = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onTick = (): void => this.tick();

  constructor(options: MemoryStoreOptions = {}) {
    this.clock = options.clock;
  }

  get size(): number {
    return this.map.size;
  }

  get<K extends TwinValue['kind']>(key: string, kind: K, now: number, owner = kind as string): Extract<TwinValue, { kind: K }> | undefined {
    if (now > this.seenNow) this.seenNow = now;
    if (this.queue.length !== 0 && now > this.at[0]!) this.sweep(now, CALL_BUDGET);
    const e = this.map.get(key);
    if (!e) return undefined;
    if (now > e.expiresAt) {
      this.drop(e);
      return undefined;
    }
    if (e.value.kind !== kind) throw new TwinStateError(`redlimit ${owner}: key ${key} does not hold ${owner} state`);
    return e.value as Extract<TwinValue, { kind: K }>;
  }

  set(key: string, value: TwinValue, expiresAt: number): void {
    const e = this.map.get(key);
    if (e) {
      e.value = value;
      this.moveExpiry(e, expiresAt);
    } else {
      let created = this.spare.pop();
      if (created) {
        created.key = key;
        created.value = value;
        created.expiresAt = expiresAt;
      } else created = { key, value, expiresAt, slot: -1 };
      this.map.set(key, created);
      if (expiresAt !== Infinity) this.insert(created, expiresAt);
    }
  }

  /** Keeps the value, moves its expiry (PEXPIRE). */
  expire(key: string, expiresAt: number): void {
    const e = this.map.get(key);
    if (e) this.moveExpiry(e, expiresAt);
  }

  /** Every key held (live or not yet swept). */
  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  /** Does `key` hold live state at `now`? */
  has(key: string, now: number): boolean {
    const e = this.map.get(key);
    return e !== undefined && now <= e.expiresAt;
  }

  delete(key: string): boolean {
    const e = this.map.get(key);
    if (!e) return false;
    this.drop(e);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.spare.length = 0;
    for (const e of this.queue) e.slot = -1;
    this.queue = [];
    this.at = new Float64Array(64);
    this.stopTimer();
  }

  /** Drops expired entries, earliest expiry first, looking at no more than `budget` of them. */
  sweep(now: number, budget: number): number {
    const queue = this.queue;
    const at = this.at;
    let removed = 0;
    for (let seen = 0; seen < budget && queue.length !== 0; seen++) {
      if (!(now > at[0]!)) break;
      const e = queue[0]!;
      if (now > e.expiresAt) {
        this.map.delete(e.key);
        this.removeAt(0);
        this.retire(e);
        removed++;
      } else if (e.expiresAt === Infinity) this.removeAt(0);
      else {
        // Its expiry moved later since it was queued: queue it again at the expiry it has now.
        at[0] = e.expiresAt;
        this.siftDown(0, e, e.expiresAt);
      }
    }
    return removed;
  }

  // --- expiry order ---------------------------------------------------------------------------

  private moveExpiry(e: Entry, expiresAt: number): void {
    e.expiresAt = expiresAt;
    // Later: the heap keeps the earlier bound and catches up when it comes due (no work now).
    if (e.slot < 0) {
      if (expiresAt !== Infinity) this.insert(e, expiresAt);
    } else if (expiresAt < this.at[e.slot]!) this.siftUp(e.slot, e, expiresAt);
  }

  private drop(e: Entry): void {
    this.map.delete(e.key);
    if (e.slot >= 0) this.removeAt(e.slot);
    this.retire(e);
  }

  /** Keeps a removed entry for reuse, holding nothing of what it held. */
  private retire(e: Entry): void {
    if (this.spare.length === SPARE_ENTRIES) return;
    e.key = '';
    e.value = RETIRED;
    this.spare.push(e);
  }

  private insert(e: Entry, expiresAt: number): void {
    const n = this.queue.length;
    if (n === this.at.length) {
      const grown = new Float64Array(n * 2);
      grown.set(this.at);
      this.at = grown;
    }
    this.queue.push(e);
    this.siftUp(n, e, expiresAt);
    if (this.timer === undefined) this.schedule(TICK_MIN_MS);
  }

  private removeAt(i: number): void {
    const queue = this.queue;
    queue[i]!.slot = -1;
    const last = queue.pop()!;
    const n = queue.length;
    if (i === n) return;
    const lastAt = this.at[n]!;
    if (i > 0 && lastAt < this.at[(i - 1) >> 2]!) this.siftUp(i, last, lastAt);
    else this.siftDown(i, last, lastAt);
  }

  /** Puts `e` with priority `p` at hole `i`, moving parents down until the order holds. */
  private siftUp(i: number, e: Entry, p: number): void {
    const queue = this.queue;
    const at = this.at;
    while (i > 0) {
      const parent = (i - 1) >> 2;
      const pp = at[parent]!;
      if (pp <= p) break;
      this.place(i, queue[parent]!, pp);
      i = parent;
    }
    this.place(i, e, p);
  }

  /** Heap slot `i` holds `e` (priority `p`). */
  private place(i: number, e: Entry, p: number): void {
    this.queue[i] = e;
    this.at[i] = p;
    e.slot = i;
  }

  /** Puts `e` with priority `p` at hole `i`, moving the least child up until the order holds. */
  private siftDown(i: number, e: Entry, p: number): void {
    const queue = this.queue;
    const at = this.at;
    const n = queue.length;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      let c = first;
      let cp = at[first]!;
      const end = first + 4 < n ? first + 4 : n;
      for (let j = first + 1; j < end; j++) {
        const jp = at[j]!;
        if (jp < cp) {
          c = j;
          cp = jp;
        }
      }
      if (cp >= p) break;
      this.place(i, queue[c]!, cp);
      i = c;
    }
    this.place(i, e, p);
  }

  // --- idle sweep -----------------------------------------------------------------------------

  /** The callers' clock as the idle sweep sees it (see MemoryStoreOptions.clock). */
  private idleNow(): number {
    if (this.clock) return this.clock();
    const wall = performance.now();
    if (this.seenNow > this.baseNow) {
      this.baseNow = this.seenNow;
      this.baseWall = wall;
    }
    return this.baseNow + (wall - this.baseWall);
  }

  private tick(): void {
    this.timer = undefined;
    const now = this.idleNow();
    this.sweep(now, TICK_BUDGET);
    if (this.queue.length === 0) return;
    const next = this.at[0]!;
    // More due than one turn may take: come back at once; else when the next one is due.
    this.schedule(now > next ? 0 : Math.min(Math.max(next - now + 1, TICK_MIN_MS), TICK_MAX_MS));
  }

  private schedule(delayMs: number): void {
    const t = setTimeout(this.onTick, delayMs);
    t.unref?.();
    this.timer = t;
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
