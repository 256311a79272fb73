/**
 * The twin's keyspace: what Redis holds for the scripts, in process memory. Each entry has a kind
 * (the Redis type it stands for) and an expiry on the twin's clock.
 *
 * Expired entries go lazily on read (as in Redis) and actively, in expiry order: every entry that
 * has an expiry is queued, keyed by a lower bound of it, in a run (a FIFO of bounds that never
 * decrease: the common case, keys written at a clock that moves forward with one TTL, costs O(1)
 * to queue and to pop) or else a min-heap. Every read first handles a few
 * entries that are due (bounded work, amortised O(1): each entry enters the heap once per expiry
 * that comes due), and a timer handles the rest while nothing calls. The timer is unref'd (a
 * process exits with a non-empty store) and stops once nothing is left to expire.
 *
 * Ghosts. Deleting and re-inserting map keys is what a stream of expiring keys pays most for
 * (V8 rehashes the table), and a limiter's keys often come back: a large limit keeps state for a
 * millisecond, and the same ids ask again. So an entry of a key that recurs is not deleted when
 * it expires under traffic: it becomes a ghost (no value, never answered: a read, `has` and
 * `keys` see no key), and the key reuses its slot when it comes back. A key recurs when a caller
 * primes it with a stale handle (see below): where it was found last time, since deleted. Other
 * entries are deleted when they expire, as before, so a stream of distinct ids holds its live
 * state only.
 * Ghosts are bounded: at most MAX_GHOSTS (oldest out first), each leaves after GHOST_READS reads,
 * and all leave once a timer turn sees no read since the last (idle). So memory follows the live
 * state during traffic (plus a bounded number of recurring keys) and returns to nothing after
 * the TTLs pass, idle or not.
 *
 * The last key looked up is remembered with its entry: a script reads a key, then writes it, so
 * one decision costs one map lookup, and none when the caller kept where the key was found
 * (lastHandle / prime: the fallback keeps it per subject).
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
  /** ms on the twin's clock; the entry is gone once now > expiresAt (Redis' rule). A ghost: -Infinity. */
  expiresAt: number;
  /** Index in the expiry heap, -1 when not in it (no expiry, removed, in the run, or a ghost). */
  slot: number;
  /** Index in the expiry run, -1 when not in it. */
  run: number;
  /** A ghost's links in the ghost list (oldest first); null while the entry holds a value. */
  prev: Entry | null;
  next: Entry | null;
  /** `reads` when it became a ghost. */
  diedAt: number;
  /** Its key recurs (see the ghosts above): when it expires it becomes a ghost. */
  recurs: boolean;
}

export class TwinStateError extends Error {}

/** Where a key was found in a MemoryStore (see lastHandle / prime); nothing to read. */
export type StoreHandle = object;

export interface MemoryStoreOptions {
  /**
   * The clock the callers' `now` comes from, read only by the idle sweep. Without it the idle
   * sweep takes the latest `now` a caller passed and adds the real time elapsed since, which never
   * runs ahead of a clock that keeps real time.
   */
  clock?: () => number;
}

/** Due entries each read may handle: above one per call, so a backlog drains. */
const CALL_BUDGET = 4;
/** Due entries (and, idle, ghosts) one timer turn may drop before yielding the event loop. */
const TICK_BUDGET = 8192;
/** The idle sweep looks again after at least / at most this long (ms). */
const TICK_MIN_MS = 10;
const TICK_MAX_MS = 1000;
const SPARE_ENTRIES = 512;
/** Ghosts held at most (a constant: ~100 bytes each beside the key). */
const MAX_GHOSTS = 1 << 14;
/** A ghost not revived within this many reads leaves. */
const GHOST_READS = 1 << 17;
/** What a removed entry (kept for reuse) and a ghost hold: nothing of what they held. */
const EMPTY: TwinValue = { kind: 'block', untilMs: 0 };

function listHead(): Entry {
  const h: Entry = { key: '', value: EMPTY, expiresAt: -Infinity, slot: -1, run: -1, prev: null, next: null, diedAt: 0, recurs: false };
  h.prev = h;
  h.next = h;
  return h;
}

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
   * The run: entries queued in nondecreasing bound order (`runAt`), from `runHead` to `runTail`;
   * null where an entry left before its turn. `runCount` are entries (not holes).
   */
  private runQ: (Entry | null)[] = [];
  private runAt = new Float64Array(64);
  private runHead = 0;
  private runTail = 0;
  private runCount = 0;
  /** The earliest bound queued (heap root or run head); Infinity when nothing is queued. */
  private due = Infinity;
  /**
   * Entries removed from the map, reused for new keys: a stream of short-lived keys then
   * allocates (and the garbage collector copies) no entry per key. Bounded; holding nothing.
   */
  private readonly spare: Entry[] = [];
  private readonly clock: (() => number) | undefined;
  /** Highest `now` a caller has passed, and when (performance.now()) the idle sweep saw it. */
  private seenNow = -Infinity;
  private baseNow = -Infinity;
  private baseWall = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onTick = (): void => this.tick();
  /** The last key looked up and its entry (undefined: absent); always what the map holds. */
  private lastKey: string | undefined = undefined;
  private lastEntry: Entry | undefined = undefined;
  /** Reads so far, and as the last timer turn saw them (none since: idle). */
  private reads = 0;
  private readsAtTick = 0;
  private readonly ghosts = listHead();
  private ghostCount = 0;
  /** A key primed with a stale handle: if it is created next, it recurs. */
  private comingBack: string | undefined = undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.clock = options.clock;
  }

  /**
   * Where the last key looked up was found, as an opaque handle: a caller that will ask for the
   * same key again (the fallback, per subject) passes it back to `prime`.
   */
  get lastHandle(): StoreHandle | undefined {
    return this.lastEntry;
  }

  /**
   * `handle` (a lastHandle of this store) is where `key` was found: if the key is still there, its
   * next lookup costs no map lookup. A stale handle (the key since removed) changes no answer; it
   * tells the store the key recurs (its next entry becomes a ghost when it expires).
   */
  prime(key: string, handle: StoreHandle | undefined): void {
    if (handle === undefined) return;
    // An entry out of the map holds the key '' (forget, clear): equality means it is in the map under `key`.
    if ((handle as Entry).key === key && key !== '') {
      this.lastKey = key;
      this.lastEntry = handle as Entry;
    } else this.comingBack = key; // it was here, and went: the key recurs
  }

  /** Entries held: live, expired but not yet swept, and ghosts (what the store costs in memory). */
  get size(): number {
    return this.map.size;
  }

  get<K extends TwinValue['kind']>(key: string, kind: K, now: number, owner = kind as string): Extract<TwinValue, { kind: K }> | undefined {
    if (now > this.seenNow) this.seenNow = now;
    const reads = ++this.reads;
    if (now > this.due) this.sweepDue(now, CALL_BUDGET, false);
    if (this.ghostCount !== 0) this.age(reads);
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e === undefined) return undefined;
    if (now > e.expiresAt) {
      if (e.prev === null) this.expired(e); // not swept yet
      return undefined;
    }
    if (e.value.kind !== kind) throw new TwinStateError(`redlimit ${owner}: key ${key} does not hold ${owner} state`);
    return e.value as Extract<TwinValue, { kind: K }>;
  }

  set(key: string, value: TwinValue, expiresAt: number): void {
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e !== undefined) {
      if (e.prev !== null) this.unlink(e); // a ghost comes back
      e.value = value;
      this.moveExpiry(e, expiresAt);
      return;
    }
    const recurs = key === this.comingBack;
    this.comingBack = undefined;
    let created = this.spare.pop();
    if (created) {
      created.key = key;
      created.value = value;
      created.expiresAt = expiresAt;
      created.recurs = recurs;
    } else created = { key, value, expiresAt, slot: -1, run: -1, prev: null, next: null, diedAt: 0, recurs };
    this.map.set(key, created);
    this.lastKey = key;
    this.lastEntry = created;
    if (expiresAt !== Infinity) this.insert(created, expiresAt);
  }

  /** Keeps the value, moves its expiry (PEXPIRE; nothing for a key that is gone). */
  expire(key: string, expiresAt: number): void {
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e !== undefined && e.prev === null) this.moveExpiry(e, expiresAt);
  }

  /** Every key held (live or not yet swept; not ghosts). */
  *keys(): IterableIterator<string> {
    for (const [key, e] of this.map) if (e.prev === null) yield key;
  }

  /** Does `key` hold live state at `now`? */
  has(key: string, now: number): boolean {
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    return e !== undefined && now <= e.expiresAt;
  }

  /** Removes `key`; true if it held a value (live or not yet swept), false if absent or a ghost. */
  delete(key: string): boolean {
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e === undefined) return false;
    if (e.prev !== null) {
      this.unlink(e);
      this.forget(e);
      return false;
    }
    this.drop(e);
    return true;
  }

  clear(): void {
    for (const e of this.map.values()) e.key = ''; // handles to them are stale
    this.map.clear();
    this.spare.length = 0;
    for (const e of this.queue) e.slot = -1;
    this.queue = [];
    this.at = new Float64Array(64);
    for (const e of this.runQ) if (e) e.run = -1;
    this.runQ = [];
    this.runAt = new Float64Array(64);
    this.runHead = this.runTail = this.runCount = 0;
    this.due = Infinity;
    this.lastKey = undefined;
    this.lastEntry = undefined;
    const list = this.ghosts;
    for (let g = list.next!; g !== list; ) {
      const next = g.next!;
      g.prev = g.next = null;
      g = next;
    }
    list.prev = list.next = list;
    this.ghostCount = 0;
    this.comingBack = undefined;
    this.stopTimer();
  }

  /** Drops expired entries, earliest expiry first, looking at no more than `budget` of them. */
  sweep(now: number, budget: number): number {
    return this.sweepDue(now, budget, true);
  }

  // --- lookups and ghosts ---------------------------------------------------------------------

  private lookup(key: string): Entry | undefined {
    const e = this.map.get(key);
    this.lastKey = key;
    this.lastEntry = e;
    return e;
  }

  /** Handles due entries (at most `budget` looked at): each goes (`expired`), or is dropped when `drop`. */
  private sweepDue(now: number, budget: number, drop: boolean): number {
    let removed = 0;
    for (let seen = 0; seen < budget; seen++) {
      if (!(now > this.due)) break;
      let e: Entry;
      if (this.queue.length !== 0 && this.at[0] === this.due) {
        e = this.queue[0]!;
        if (!(now > e.expiresAt) && e.expiresAt !== Infinity) {
          // Its expiry moved later since it was queued: queue it again at the expiry it has now.
          this.at[0] = e.expiresAt;
          this.siftDown(0, e, e.expiresAt);
          this.refreshDue();
          continue;
        }
        this.removeAt(0);
      } else {
        e = this.runQ[this.runHead]!;
        this.runRemove(e);
        if (!(now > e.expiresAt)) {
          if (e.expiresAt !== Infinity) this.insert(e, e.expiresAt); // moved later: queued again
          continue;
        }
      }
      if (now > e.expiresAt) {
        if (drop) this.forget(e);
        else this.expired(e);
        removed++;
      }
    }
    return removed;
  }

  /** An entry found expired under traffic: a ghost if its key recurs, else deleted. */
  private expired(e: Entry): void {
    this.unqueue(e);
    if (!e.recurs) {
      this.forget(e);
      return;
    }
    e.value = EMPTY;
    e.expiresAt = -Infinity;
    e.diedAt = this.reads;
    const list = this.ghosts;
    e.prev = list.prev;
    e.next = list;
    list.prev!.next = e;
    list.prev = e;
    if (++this.ghostCount > MAX_GHOSTS) this.evict(list.next!);
    if (this.timer === undefined) this.schedule(TICK_MIN_MS);
  }

  /** Ghosts older than GHOST_READS reads leave (two per read at most: the cap holds meanwhile). */
  private age(reads: number): void {
    const list = this.ghosts;
    for (let i = 0; i < 2; i++) {
      const g = list.next!;
      if (g === list || reads - g.diedAt <= GHOST_READS) return;
      this.evict(g);
    }
  }

  /** A ghost leaves the map. */
  private evict(g: Entry): void {
    this.unlink(g);
    this.forget(g);
  }

  private unlink(g: Entry): void {
    g.prev!.next = g.next;
    g.next!.prev = g.prev;
    g.prev = g.next = null;
    this.ghostCount--;
  }

  /** Drops every ghost, at most `budget` of them; how many went. */
  private purge(budget: number): number {
    const list = this.ghosts;
    let n = 0;
    while (n < budget && list.next !== list) {
      const g = list.next!;
      this.unlink(g);
      this.forget(g);
      n++;
    }
    return n;
  }

  // --- expiry order ---------------------------------------------------------------------------

  private moveExpiry(e: Entry, expiresAt: number): void {
    e.expiresAt = expiresAt;
    // Later: the queue keeps the earlier bound and catches up when it comes due (no work now).
    if (e.slot >= 0) {
      if (expiresAt < this.at[e.slot]!) {
        this.siftUp(e.slot, e, expiresAt);
        this.refreshDue();
      }
    } else if (e.run >= 0) {
      if (expiresAt < this.runAt[e.run]!) {
        this.runRemove(e);
        this.insert(e, expiresAt);
      }
    } else if (expiresAt !== Infinity) this.insert(e, expiresAt);
  }

  private drop(e: Entry): void {
    this.unqueue(e);
    this.forget(e);
  }

  /** Takes `e` out of the expiry queue (heap or run), if it is in it. */
  private unqueue(e: Entry): void {
    if (e.slot >= 0) this.removeAt(e.slot);
    else if (e.run >= 0) this.runRemove(e);
  }

  /** Removes an entry (already out of the heap and the ghost list) from the map, keeping it for reuse. */
  private forget(e: Entry): void {
    this.map.delete(e.key);
    if (this.lastEntry === e) this.lastEntry = undefined;
    e.key = ''; // a handle to it is stale from here on (see prime)
    e.value = EMPTY;
    if (this.spare.length !== SPARE_ENTRIES) this.spare.push(e);
  }

  /** Queues `e` at bound `expiresAt`: in the run when no earlier than its last bound, else in the heap. */
  private insert(e: Entry, expiresAt: number): void {
    if (this.runTail === 0 || expiresAt >= this.runAt[this.runTail - 1]!) this.runPush(e, expiresAt);
    else {
      const n = this.queue.length;
      if (n === this.at.length) {
        const grown = new Float64Array(n * 2);
        grown.set(this.at);
        this.at = grown;
      }
      this.queue.push(e);
      this.siftUp(n, e, expiresAt);
    }
    if (expiresAt < this.due) this.due = expiresAt;
    if (this.timer === undefined) this.schedule(TICK_MIN_MS);
  }

  private removeAt(i: number): void {
    const queue = this.queue;
    queue[i]!.slot = -1;
    const last = queue.pop()!;
    const n = queue.length;
    if (i !== n) {
      const lastAt = this.at[n]!;
      if (i > 0 && lastAt < this.at[(i - 1) >> 2]!) this.siftUp(i, last, lastAt);
      else this.siftDown(i, last, lastAt);
    }
    if (i === 0) this.refreshDue();
  }

  /** The earliest bound queued, after the heap root or the run head changed. */
  private refreshDue(): void {
    const h = this.queue.length !== 0 ? this.at[0]! : Infinity;
    const r = this.runHead !== this.runTail ? this.runAt[this.runHead]! : Infinity;
    this.due = h < r ? h : r;
  }

  // --- the run --------------------------------------------------------------------------------

  private runPush(e: Entry, bound: number): void {
    if (this.runTail === this.runAt.length) this.runMake(this.runCount * 2 + 64 > this.runAt.length ? this.runAt.length * 2 : this.runAt.length);
    const i = this.runTail++;
    this.runQ[i] = e;
    this.runAt[i] = bound;
    e.run = i;
    this.runCount++;
  }

  /** Takes `e` (in the run) out of it: a hole, or the head moves past it and the holes after it. */
  private runRemove(e: Entry): void {
    const i = e.run;
    this.runQ[i] = null;
    e.run = -1;
    this.runCount--;
    if (i === this.runHead) {
      const q = this.runQ;
      let h = i + 1;
      while (h < this.runTail && q[h] === null) h++;
      if (h === this.runTail) this.runHead = this.runTail = 0; // empty: start over
      else this.runHead = h;
      this.refreshDue();
    } else if (this.runTail - this.runHead > 4 * this.runCount + 1024) this.runMake(this.runAt.length); // mostly holes
  }

  /** The run's entries moved to the front of arrays of `size` (holes left out). */
  private runMake(size: number): void {
    const q = this.runQ;
    const at = this.runAt;
    const nq: (Entry | null)[] = [];
    const nat = size === at.length ? at : new Float64Array(size);
    let j = 0;
    for (let i = this.runHead; i < this.runTail; i++) {
      const e = q[i];
      if (e === null || e === undefined) continue;
      nq.push(e);
      nat[j] = at[i]!;
      e.run = j++;
    }
    this.runQ = nq;
    this.runAt = nat;
    this.runHead = 0;
    this.runTail = j;
    this.refreshDue();
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
    // No read since the last turn: nothing revives a ghost now, so they all go.
    const idle = this.reads === this.readsAtTick;
    this.readsAtTick = this.reads;
    const now = this.idleNow();
    const purged = idle ? this.purge(TICK_BUDGET) : 0;
    this.sweep(now, TICK_BUDGET);
    if (this.due === Infinity) {
      // Ghosts left: look again (they go once a turn sees no read).
      if (this.ghostCount !== 0) this.schedule(purged === TICK_BUDGET ? 0 : TICK_MIN_MS);
      return;
    }
    const next = this.due;
    // More due than one turn may take: come back at once; else when the next one is due.
    this.schedule(now > next || purged === TICK_BUDGET ? 0 : Math.min(Math.max(next - now + 1, TICK_MIN_MS), TICK_MAX_MS));
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
