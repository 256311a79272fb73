/**
 * The twin's keyspace: what Redis holds for the scripts, in process memory. Each entry has a kind
 * (the Redis type it stands for) and an expiry on the twin's clock.
 *
 * Expired entries go lazily on read (as in Redis) and actively, in expiry order: a min-heap holds
 * every entry that has an expiry, keyed by a lower bound of it. Every read first handles a few
 * entries that are due (bounded work, amortised O(1): each entry enters the heap once per expiry
 * that comes due), and a timer handles the rest while nothing calls. The timer is unref'd (a
 * process exits with a non-empty store) and stops once nothing is left to expire.
 *
 * Ghosts. An entry that expires under traffic is not deleted from the map at once: it becomes a
 * ghost (no value, never answered: a read, `has` and `keys` see no key), so a key that comes
 * back reuses its slot. Deleting and re-inserting map keys is what a stream of expiring keys
 * pays most for (V8 rehashes the table), and a limiter's keys often come back: a large limit
 * keeps state for a millisecond, and the same ids ask again. Ghosts are bounded:
 * - cold ghosts (keys not seen to recur) at most half the live entries, oldest out first, so a
 *   stream of distinct ids holds at most 1.5× its live state;
 * - warm ghosts (keys that came back: revived, or created again soon after a ghost of theirs
 *   went, which a small filter of recently evicted keys tells) at most WARM_GHOSTS;
 * - every ghost leaves after GHOST_READS reads, and all leave once a timer turn sees no read
 *   since the last (idle). So memory follows the live state during traffic (plus a bounded
 *   number of recurring keys) and returns to nothing after the TTLs pass, idle or not.
 *
 * The last key looked up is remembered with its entry: a script reads a key, then writes it, so
 * one decision costs one map lookup.
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
  /** Index in the expiry heap, -1 when not in it (no expiry, removed, or a ghost). */
  slot: number;
  /** A ghost's links in its list (cold or warm, oldest first); null while the entry holds a value. */
  prev: Entry | null;
  next: Entry | null;
  /** `reads` when it became a ghost. */
  diedAt: number;
  /** Its key recurs (see the ghosts above): when it expires it becomes a warm ghost. */
  warm: boolean;
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

/** Due entries each read may handle: above one per call, so a backlog drains. */
const CALL_BUDGET = 4;
/** Due entries (and, idle, ghosts) one timer turn may drop before yielding the event loop. */
const TICK_BUDGET = 8192;
/** The idle sweep looks again after at least / at most this long (ms). */
const TICK_MIN_MS = 10;
const TICK_MAX_MS = 1000;
const SPARE_ENTRIES = 512;
/** Warm ghosts held at most (a constant: ~100 bytes each beside the key). */
const WARM_GHOSTS = 1 << 14;
/** A ghost not revived within this many reads leaves. */
const GHOST_READS = 1 << 17;
/** What a removed entry (kept for reuse) and a ghost hold: nothing of what they held. */
const EMPTY: TwinValue = { kind: 'block', untilMs: 0 };

function listHead(): Entry {
  const h: Entry = { key: '', value: EMPTY, expiresAt: -Infinity, slot: -1, prev: null, next: null, diedAt: 0, warm: false };
  h.prev = h;
  h.next = h;
  return h;
}

// --- recently evicted keys --------------------------------------------------------------------

/** Bits per generation of the filter (a power of two), and additions before it rotates. */
const RECENT_BITS = 1 << 19;
const RECENT_ROTATE = 1 << 14;

/** A key's hash for the filter: FNV-1a over its characters (the first and last 32 of a long key). */
function hashKey(key: string): number {
  const n = key.length;
  let h = 0x811c9dc5 ^ n;
  if (n <= 64) {
    for (let i = 0; i < n; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  } else {
    for (let i = 0; i < 32; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    for (let i = n - 32; i < n; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  }
  return h;
}

/**
 * The keys of recently evicted ghosts, approximately: a Bloom filter (3 probes) in two
 * generations, the older dropped every RECENT_ROTATE additions. A false "yes" only makes a new
 * key warm (a warm ghost at most, bounded); it never changes an answer.
 */
class RecentKeys {
  private current = new Int32Array(RECENT_BITS >>> 5);
  private previous = new Int32Array(RECENT_BITS >>> 5);
  private added = 0;

  add(key: string): void {
    if (++this.added > RECENT_ROTATE) {
      const older = this.previous;
      this.previous = this.current;
      older.fill(0);
      this.current = older;
      this.added = 1;
    }
    const h = hashKey(key);
    const step = (Math.imul(h ^ (h >>> 16), 0x9e3779b1) | 1) >>> 0;
    const bits = this.current;
    for (let i = 0, p = h >>> 0; i < 3; i++, p = (p + step) >>> 0) bits[(p & (RECENT_BITS - 1)) >>> 5]! |= 1 << (p & 31);
  }

  has(key: string): boolean {
    const h = hashKey(key);
    const step = (Math.imul(h ^ (h >>> 16), 0x9e3779b1) | 1) >>> 0;
    return RecentKeys.holds(this.current, h >>> 0, step) || RecentKeys.holds(this.previous, h >>> 0, step);
  }

  private static holds(bits: Int32Array, p: number, step: number): boolean {
    for (let i = 0; i < 3; i++, p = (p + step) >>> 0) if ((bits[(p & (RECENT_BITS - 1)) >>> 5]! & (1 << (p & 31))) === 0) return false;
    return true;
  }
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
  private readonly cold = listHead();
  private readonly warm = listHead();
  private coldCount = 0;
  private warmCount = 0;
  private recent: RecentKeys | undefined = undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.clock = options.clock;
  }

  /** Entries held: live, expired but not yet swept, and ghosts (what the store costs in memory). */
  get size(): number {
    return this.map.size;
  }

  get<K extends TwinValue['kind']>(key: string, kind: K, now: number, owner = kind as string): Extract<TwinValue, { kind: K }> | undefined {
    if (now > this.seenNow) this.seenNow = now;
    const reads = ++this.reads;
    if (this.queue.length !== 0 && now > this.at[0]!) this.sweepDue(now, CALL_BUDGET, true);
    if (this.coldCount + this.warmCount !== 0) this.age(reads);
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e === undefined) return undefined;
    if (now > e.expiresAt) {
      if (e.prev === null) this.haunt(e); // expired, not swept yet
      return undefined;
    }
    if (e.value.kind !== kind) throw new TwinStateError(`redlimit ${owner}: key ${key} does not hold ${owner} state`);
    return e.value as Extract<TwinValue, { kind: K }>;
  }

  set(key: string, value: TwinValue, expiresAt: number): void {
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e !== undefined) {
      if (e.prev !== null) {
        this.unlink(e);
        e.warm = true; // it came back
      }
      e.value = value;
      this.moveExpiry(e, expiresAt);
      return;
    }
    const warm = this.recent !== undefined && this.recent.has(key);
    let created = this.spare.pop();
    if (created) {
      created.key = key;
      created.value = value;
      created.expiresAt = expiresAt;
      created.warm = warm;
    } else created = { key, value, expiresAt, slot: -1, prev: null, next: null, diedAt: 0, warm };
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
    this.map.clear();
    this.spare.length = 0;
    for (const e of this.queue) e.slot = -1;
    this.queue = [];
    this.at = new Float64Array(64);
    this.lastKey = undefined;
    this.lastEntry = undefined;
    for (const list of [this.cold, this.warm]) {
      for (let g = list.next!; g !== list; ) {
        const next = g.next!;
        g.prev = g.next = null;
        g = next;
      }
      list.prev = list.next = list;
    }
    this.coldCount = this.warmCount = 0;
    this.recent = undefined;
    this.stopTimer();
  }

  /** Drops expired entries, earliest expiry first, looking at no more than `budget` of them. */
  sweep(now: number, budget: number): number {
    return this.sweepDue(now, budget, false);
  }

  // --- lookups and ghosts ---------------------------------------------------------------------

  private lookup(key: string): Entry | undefined {
    const e = this.map.get(key);
    this.lastKey = key;
    this.lastEntry = e;
    return e;
  }

  /** Handles due entries (at most `budget` looked at): each becomes a ghost, or is dropped. */
  private sweepDue(now: number, budget: number, haunt: boolean): number {
    const queue = this.queue;
    const at = this.at;
    let removed = 0;
    for (let seen = 0; seen < budget && queue.length !== 0; seen++) {
      if (!(now > at[0]!)) break;
      const e = queue[0]!;
      if (now > e.expiresAt) {
        this.removeAt(0);
        if (haunt) this.haunt(e);
        else this.forget(e);
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

  /** An expired entry becomes a ghost (see above), and the ghosts' bounds hold again. */
  private haunt(e: Entry): void {
    if (e.slot >= 0) this.removeAt(e.slot);
    e.value = EMPTY;
    e.expiresAt = -Infinity;
    e.diedAt = this.reads;
    const list = e.warm ? this.warm : this.cold;
    e.prev = list.prev;
    e.next = list;
    list.prev!.next = e;
    list.prev = e;
    if (e.warm) {
      if (++this.warmCount > WARM_GHOSTS) this.evict(this.warm.next!);
    } else {
      this.coldCount++;
      // Cold ghosts at most half the live entries (the map holds live entries and ghosts).
      while (this.coldCount !== 0 && 2 * this.coldCount > this.map.size - this.coldCount - this.warmCount) this.evict(this.cold.next!);
    }
    if (this.timer === undefined) this.schedule(TICK_MIN_MS);
  }

  /** Ghosts older than GHOST_READS reads leave (a few per read: the other bounds hold meanwhile). */
  private age(reads: number): void {
    for (let i = 0; i < 2; i++) {
      const c = this.cold.next!;
      if (c !== this.cold && reads - c.diedAt > GHOST_READS) this.evict(c);
      const w = this.warm.next!;
      if (w !== this.warm && reads - w.diedAt > GHOST_READS) this.evict(w);
    }
  }

  /** A ghost leaves the map; its key is remembered as recently evicted. */
  private evict(g: Entry): void {
    this.unlink(g);
    (this.recent ??= new RecentKeys()).add(g.key);
    this.forget(g);
  }

  private unlink(g: Entry): void {
    g.prev!.next = g.next;
    g.next!.prev = g.prev;
    g.prev = g.next = null;
    if (g.warm) this.warmCount--;
    else this.coldCount--;
  }

  /** Drops every ghost, at most `budget` of them; how many went. */
  private purge(budget: number): number {
    let n = 0;
    for (const list of [this.cold, this.warm]) {
      while (n < budget && list.next !== list) {
        const g = list.next!;
        this.unlink(g);
        this.forget(g);
        n++;
      }
    }
    return n;
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
    if (e.slot >= 0) this.removeAt(e.slot);
    this.forget(e);
  }

  /** Removes an entry (out of the heap and the ghost lists) from the map, keeping it for reuse. */
  private forget(e: Entry): void {
    this.map.delete(e.key);
    if (this.lastEntry === e) this.lastEntry = undefined;
    if (this.spare.length === SPARE_ENTRIES) return;
    e.key = '';
    e.value = EMPTY;
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
    // No read since the last turn: nothing revives a ghost now, so they all go.
    const idle = this.reads === this.readsAtTick;
    this.readsAtTick = this.reads;
    const now = this.idleNow();
    const purged = idle ? this.purge(TICK_BUDGET) : 0;
    this.sweep(now, TICK_BUDGET);
    const ghosts = this.coldCount + this.warmCount;
    if (this.queue.length === 0) {
      // Ghosts left: look again (they go once a turn sees no read).
      if (ghosts !== 0) this.schedule(purged === TICK_BUDGET ? 0 : TICK_MIN_MS);
      return;
    }
    const next = this.at[0]!;
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
