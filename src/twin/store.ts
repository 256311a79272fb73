/**
 * The twin's keyspace: what Redis holds for the scripts, in process memory. Each entry has a kind
 * (the Redis type it stands for) and an expiry on the twin's clock.
 *
 * Expired entries go lazily on read (as in Redis) and actively, in expiry order: every entry that
 * has an expiry is queued, keyed by a lower bound of it, in a run (a FIFO of bounds that never
 * decrease: the common case, keys written at a clock that moves forward with one TTL, costs O(1)
 * to queue and to pop) or else a min-heap. Every read first handles a few
 * entries that are due (bounded work, amortised O(1): each entry is queued once per expiry
 * that comes due), and a timer handles the rest while nothing calls. The timer is unref'd (a
 * process exits with a non-empty store) and stops once nothing is left to expire.
 *
 * Ghosts. Deleting and re-inserting keys is what a stream of expiring keys pays most for
 * (the table's memory traffic), and a limiter's keys often come back: a large limit keeps state for a
 * millisecond, and the same ids ask again. So an entry of a key that recurs is not deleted when
 * it expires under traffic: it becomes a ghost (no value, never answered: a read, `has` and
 * `keys` see no key), and the key reuses its slot when it comes back. A key recurs when a caller
 * primes it with a stale handle (see below): where it was found last time, since deleted. Other
 * entries are deleted when they expire, as before, so a stream of distinct ids holds its live
 * state only.
 * Ghosts wait in a FIFO ring (a revived ghost leaves a hole there, touching no other entry).
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

/** The state each algorithm keeps in the twin. */
export const ALGO_KIND = {
  gcra: 'gcra',
  token_bucket: 'token_bucket',
  fixed_window: 'counter',
  quota: 'counter',
  sliding_window: 'sliding_window',
  sliding_log: 'sliding_log',
  block: 'block',
  concurrency: 'leases',
} as const satisfies Record<string, TwinValue['kind']>;

/** The Redis type the Lua stores each kind of state as (a v2 token bucket's hash aside). */
export const KIND_REDIS_TYPE: Record<TwinValue['kind'], 'string' | 'zset'> = {
  gcra: 'string',
  counter: 'string',
  sliding_window: 'string',
  block: 'string',
  token_bucket: 'string',
  sliding_log: 'zset',
  leases: 'zset',
};

interface Entry {
  key: string;
  value: TwinValue;
  /**
   * ms on the twin's clock; the entry is gone once now > expiresAt (Redis' rule). A ghost, or an
   * entry a read found expired within the grace: -Infinity.
   */
  expiresAt: number;
  /** Index in the expiry heap, -1 when not in it (no expiry, removed, in the run, or a ghost). */
  slot: number;
  /** Index in its ring (the expiry run while it holds a value, the ghosts while a ghost); -1 in none. */
  ring: number;
  /** A ghost: it holds no value, and is in the ghost ring. */
  ghost: boolean;
  /** Its key recurs (see the ghosts above): when it expires it becomes a ghost. */
  recurs: boolean;
  /** keyHash of its key under its table's seed (while in the table). */
  hash: number;
  /** Its index in the table's cells, -1 when not in the table. */
  cell: number;
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

/**
 * The grace. Under traffic, an entry is handled (deleted, or made a ghost) only once it has been
 * expired for GRACE_MS or for GRACE_READS to 2 × GRACE_READS reads, whichever comes first: a key
 * that comes back sooner finds its entry where it was and is written over in place (no ghost to
 * make and revive, no map delete and set; its value object is recycled). The reads bound what a
 * frozen or slow clock holds; the time bound what a slow stream holds. Idle, every due entry goes.
 */
const GRACE_MS = 16;
const GRACE_READS = 16384;
/** Due entries each read may handle: above one per call, so a backlog drains. */
const CALL_BUDGET = 4;
/** Due entries (and, idle, ghosts) one timer turn may drop before yielding the event loop. */
const TICK_BUDGET = 8192;
/** The idle sweep looks again after at least / at most this long (ms). */
const TICK_MIN_MS = 10;
const TICK_MAX_MS = 1000;
/** How long (ms of timer turns) the table and the spare pool stay too large before they shrink. */
const SHRINK_AFTER_MS = 1000;
/** Removed entries kept for reuse: at most this many, or a quarter of the table's cells if that is more. */
const SPARE_ENTRIES = 512;
/** Ghosts held at most (a constant: ~100 bytes each beside the key). */
const MAX_GHOSTS = 1 << 14;
/** A ghost not revived within this many reads leaves. */
const GHOST_READS = 1 << 17;
/** The table's smallest size (cells; a power of two). */
const MIN_CELLS = 64;
/** What a removed entry (kept for reuse) and a ghost hold: nothing of what they held. */
const EMPTY: TwinValue = { kind: 'block', untilMs: 0 };

/** A value of a few numbers (not a collection): a ghost or a spare entry may keep it for recycle. */
function fixedSize(v: TwinValue): boolean {
  // A list of what recycle hands out, not of what it does not: the store also holds values of
  // other kinds (fair share's tenant maps, reservation records), which must not outlive their key.
  const k = (v as { kind: string }).kind;
  return k === 'gcra' || k === 'counter' || k === 'sliding_window' || k === 'token_bucket';
}

/**
 * A FIFO of entries with a number each (nondecreasing for the expiry run), in a ring that grows
 * by doubling. An entry may leave from anywhere: it leaves a hole (null), skipped when the head
 * reaches it; holes are compacted away once they outnumber the entries 4 to 1. Each entry keeps
 * its index (Entry.ring), so leaving costs O(1) and touches no other entry.
 */
class Ring {
  private q: (Entry | null)[] = new Array<Entry | null>(64).fill(null);
  private at = new Float64Array(64);
  private mask = 63;
  private head = 0;
  /** Slots in use from the head (entries and holes), and entries. */
  private span = 0;
  count = 0;

  get empty(): boolean {
    return this.span === 0;
  }

  /** The oldest entry (the ring is not empty: the head is never a hole). */
  first(): Entry {
    return this.q[this.head]!;
  }

  firstAt(): number {
    return this.span !== 0 ? this.at[this.head]! : Infinity;
  }

  lastAt(): number {
    return this.at[(this.head + this.span - 1) & this.mask]!;
  }

  /** The number `e` was queued with (it is in the ring). */
  atOf(e: Entry): number {
    return this.at[e.ring]!;
  }

  push(e: Entry, n: number): void {
    if (this.span === this.at.length) this.make(this.count * 2 + 64 > this.at.length ? this.at.length * 2 : this.at.length);
    const i = (this.head + this.span++) & this.mask;
    this.q[i] = e;
    this.at[i] = n;
    e.ring = i;
    this.count++;
  }

  /** Takes `e` (in the ring) out; true if it was the head (the first entry changed). */
  remove(e: Entry): boolean {
    const i = e.ring;
    const q = this.q;
    q[i] = null;
    e.ring = -1;
    this.count--;
    if (i !== this.head) {
      if (this.span > 4 * this.count + 1024) this.make(this.at.length); // mostly holes
      return false;
    }
    const mask = this.mask;
    let h = (i + 1) & mask;
    let span = this.span - 1;
    while (span !== 0 && q[h] === null) {
      h = (h + 1) & mask;
      span--;
    }
    this.head = span === 0 ? 0 : h;
    this.span = span;
    return true;
  }

  /** Every entry leaves (their index reset); the ring starts over small. */
  clear(): void {
    for (const e of this.q) if (e) e.ring = -1;
    this.q = new Array<Entry | null>(64).fill(null);
    this.at = new Float64Array(64);
    this.mask = 63;
    this.head = this.span = this.count = 0;
  }

  /** The entries, in order and without holes, moved into a ring of `size` (a power of two) from 0. */
  private make(size: number): void {
    const q = this.q;
    const at = this.at;
    const mask = this.mask;
    const nq = new Array<Entry | null>(size).fill(null);
    const nat = new Float64Array(size);
    let j = 0;
    for (let k = 0; k < this.span; k++) {
      const i = (this.head + k) & mask;
      const e = q[i]!;
      if (e === null) continue;
      nq[j] = e;
      nat[j] = at[i]!;
      e.ring = j++;
    }
    this.q = nq;
    this.at = nat;
    this.mask = size - 1;
    this.head = 0;
    this.span = j;
  }
}

/**
 * A probe run this long (cells) does not happen by chance in a table at most half full (runs of
 * linear probing there stay within a few dozen cells even with millions of keys): the keys were
 * chosen to collide. The table then hands its keys to a Map for good (see Table.flood).
 */
const MAX_PROBE = 128;

/** The table's hash of `key` under `seed`: never 0 (an empty cell). Exported for tests. */
export function keyHash(key: string, seed: number): number {
  const n = key.length;
  let h = seed ^ n;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 1 : h;
}

/**
 * The keyspace's index: key → entry, an open-addressing hash table (linear probing, at most half
 * full; removal shifts the entries after it back, so there are no tombstones). A Map does the
 * same job, but a stream of expiring keys (a new id per call) costs it a lookup, an insert and a
 * delete per key, and a rehash of the whole table every so many deletes; here the insert after a
 * lookup that missed takes the empty cell the lookup stopped at, a removal knows its cell
 * (Entry.cell) and hashes nothing, and the table is rebuilt only when it doubles or halves.
 *
 * Keys are hashed in JS with a seed drawn per table (FNV-1a, then murmur3's finaliser), so which
 * ids collide differs per process. That hash is not keyed like a MAC: ids chosen to collide
 * (hash flooding: an attacker naming the ids a limiter keys by) could make probe runs long. A run
 * longer than MAX_PROBE moves every key into a Map (V8's own seeded hash) for the table's life:
 * the store is then as fast as it was with a Map, never slower. Iteration order is the table's
 * (insertion order once on a Map). Exported for tests.
 */
export class Table {
  /** Per cell, the hash of its entry's key; 0: empty (keyHash never answers 0). */
  private hashes = new Int32Array(MIN_CELLS);
  private cells: (Entry | undefined)[] = new Array<Entry | undefined>(MIN_CELLS).fill(undefined);
  private mask = MIN_CELLS - 1;
  count = 0;
  seed: number;
  /** Set once a probe run passed MAX_PROBE: the keys live here from then on (Entry.cell 0: held). */
  private flooded: Map<string, Entry> | null = null;
  /** The cells the table had when it handed its keys to the Map (the spare pool is sized from it). */
  private floodedCells = 0;

  constructor(seed = (Math.random() * 0x1_0000_0000) | 0) {
    this.seed = seed;
  }

  /** Whether the keys moved to a Map (see MAX_PROBE). */
  get onMap(): boolean {
    return this.flooded !== null;
  }
  /**
   * Where the last lookup that missed stopped (the first empty cell from its hash's home, which
   * depends on the hash alone), valid while `version` is unchanged.
   */
  private missHash = 0;
  private missCell = -1;
  private missVersion = -1;
  /** Bumped by every insert, removal and rebuild. */
  private version = 0;

  /** The entry of `key` (hash `h`), or undefined; a miss leaves where `key` would go for insert. */
  find(key: string, h: number): Entry | undefined {
    if (this.flooded !== null) return this.flooded.get(key);
    const hashes = this.hashes;
    const mask = this.mask;
    let i = h & mask;
    for (let n = 0; ; n++) {
      const x = hashes[i]!;
      if (x === 0) break;
      if (x === h) {
        const e = this.cells[i]!;
        if (e.key === key) return e;
      }
      if (n === MAX_PROBE) return this.flood().get(key);
      i = (i + 1) & mask;
    }
    this.missHash = h;
    this.missCell = i;
    this.missVersion = this.version;
    return undefined;
  }

  /** Adds `e` (its key absent from the table, e.hash set). */
  insert(e: Entry): void {
    if (this.flooded !== null) {
      this.flooded.set(e.key, e);
      e.cell = 0;
      this.count++;
      return;
    }
    if (2 * (this.count + 1) > this.cells.length) this.resize(this.cells.length * 2);
    let i: number;
    if (this.missVersion === this.version && this.missHash === e.hash) i = this.missCell;
    else {
      const hashes = this.hashes;
      const mask = this.mask;
      i = e.hash & mask;
      for (let n = 0; hashes[i] !== 0; n++) {
        if (n === MAX_PROBE) {
          this.flood();
          this.insert(e);
          return;
        }
        i = (i + 1) & mask;
      }
    }
    this.hashes[i] = e.hash;
    this.cells[i] = e;
    e.cell = i;
    this.count++;
    this.version++;
  }

  /** Takes `e` out (nothing if it is not in the table, as Map.delete); the entries after it in its run move back. */
  remove(e: Entry): void {
    let hole = e.cell;
    if (hole < 0) return;
    if (this.flooded !== null) {
      this.flooded.delete(e.key);
      e.cell = -1;
      this.count--;
      return;
    }
    const hashes = this.hashes;
    const cells = this.cells;
    const mask = this.mask;
    e.cell = -1;
    let i = (hole + 1) & mask;
    for (;;) {
      const x = hashes[i]!;
      if (x === 0) break;
      // An entry may move back to the hole only if that keeps it at or after its home cell.
      if (((i - (x & mask)) & mask) >= ((i - hole) & mask)) {
        const m = cells[i]!;
        hashes[hole] = x;
        cells[hole] = m;
        m.cell = hole;
        hole = i;
      }
      i = (i + 1) & mask;
    }
    hashes[hole] = 0;
    cells[hole] = undefined;
    this.count--;
    this.version++;
  }

  /** Cells: at least twice the most entries held since the table last shrank. */
  get capacity(): number {
    return this.flooded === null ? this.cells.length : Math.max(this.floodedCells, 2 * this.count);
  }

  /** Less than 1/8 full (and above its smallest size). A Map sizes itself. */
  oversized(): boolean {
    return this.flooded === null && this.cells.length > MIN_CELLS && 8 * this.count < this.cells.length;
  }

  /**
   * Shrinks the table to fit what it holds (a quarter full at most after), if it is oversized.
   * Not on removal: a stream of keys swept in bursts would shrink it and grow it back again and
   * again; the idle sweep calls this (MemoryStore.fitMemory).
   */
  fit(): void {
    if (!this.oversized()) return;
    let next = MIN_CELLS;
    while (next < 4 * this.count) next *= 2;
    this.resize(next);
  }

  /** Every entry held, in cell order (a copy: the caller may remove while it goes through them). */
  entries(): Entry[] {
    if (this.flooded !== null) return [...this.flooded.values()];
    const out: Entry[] = [];
    for (const e of this.cells) if (e !== undefined) out.push(e);
    return out;
  }

  /** Empties the table (the entries' cells reset); a table that moved to a Map stays on one. */
  clear(): void {
    if (this.flooded !== null) {
      for (const e of this.flooded.values()) e.cell = -1;
      this.flooded.clear();
      this.count = 0;
      this.version++;
      return;
    }
    for (const e of this.cells) if (e !== undefined) e.cell = -1;
    this.hashes = new Int32Array(MIN_CELLS);
    this.cells = new Array<Entry | undefined>(MIN_CELLS).fill(undefined);
    this.mask = MIN_CELLS - 1;
    this.count = 0;
    this.version++;
  }

  /** Moves every key into a Map, for good (a probe run passed MAX_PROBE: see the class doc). */
  private flood(): Map<string, Entry> {
    const map = new Map<string, Entry>();
    for (const e of this.cells) {
      if (e === undefined) continue;
      map.set(e.key, e);
      e.cell = 0;
    }
    this.floodedCells = this.cells.length;
    this.flooded = map;
    this.hashes = new Int32Array(0);
    this.cells = [];
    this.mask = 0;
    this.version++;
    return map;
  }

  private resize(size: number): void {
    const old = this.cells;
    const hashes = new Int32Array(size);
    const cells = new Array<Entry | undefined>(size).fill(undefined);
    const mask = size - 1;
    for (const e of old) {
      if (e === undefined) continue;
      let i = e.hash & mask;
      while (hashes[i] !== 0) i = (i + 1) & mask;
      hashes[i] = e.hash;
      cells[i] = e;
      e.cell = i;
    }
    this.hashes = hashes;
    this.cells = cells;
    this.mask = mask;
    this.version++;
  }
}

export class MemoryStore {
  private readonly map = new Table();
  /**
   * A 4-ary min-heap of the entries with an expiry not in the run: `at[i]` is a lower bound of `queue[i]`'s
   * expiry (moving an expiry later does not touch the heap; the entry is queued again when its
   * bound comes due). Priorities sit in one typed array so sifting does not chase pointers.
   */
  private queue: Entry[] = [];
  private at = new Float64Array(64);
  /** The run: entries queued in nondecreasing bound order. */
  private readonly run = new Ring();
  /** The earliest bound queued (heap root or run head); Infinity when nothing is queued. */
  private due = Infinity;
  /**
   * Entries removed from the map, reused for new keys: a stream of short-lived keys then
   * allocates (and the garbage collector copies) no entry per key. Holding nothing; bounded by
   * SPARE_ENTRIES or a quarter of the table's cells (about half to all of the most entries held
   * since it last shrank), whichever is more: a stream of keys is swept in bursts (a GC pause
   * moves the clock on by several ms at once, and every key of those ms comes due together; a
   * limiter between two bursts of new ids sees all of them expire), and a pool sized to the store
   * keeps what a fixed one would drop, only to allocate as many entries again right after. It
   * shrinks with the table (fitMemory).
   */
  private readonly spare: Entry[] = [];
  private readonly clock: (() => number) | undefined;
  /** Highest `now` a caller has passed, and when (performance.now()) the idle sweep saw it. */
  private seenNow = -Infinity;
  private baseNow = -Infinity;
  private baseWall = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onTick = (): void => this.tick();
  /** The delay the pending timer was set with; how long the table and pool have been too large (see fitMemory). */
  private timerMs = 0;
  private oversizedMs = 0;
  /** The last key looked up and its entry (undefined: absent); always what the map holds. */
  private lastKey: string | undefined = undefined;
  private lastEntry: Entry | undefined = undefined;
  /** keyHash(lastKey) while lastKey is set: an insert of it after a miss hashes nothing. */
  private lastHash = 0;
  /** Reads so far, and as the last timer turn saw them (none since: idle). */
  private reads = 0;
  private readsAtTick = 0;
  /** The ghosts, oldest first, each with `reads` when it became one. */
  private readonly ghosts = new Ring();
  /** A key primed with a stale handle: if it is created next, it recurs. */
  private comingBack: string | undefined = undefined;
  /** The grace's read marks: `now` at the last mark and the one before; reads until the next. */
  private markNow = -Infinity;
  private prevMarkNow = -Infinity;
  private readsToMark = GRACE_READS;

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
      this.lastHash = (handle as Entry).hash;
    } else this.comingBack = key; // it was here, and went: the key recurs
  }

  /** Entries held: live, expired but not yet swept, and ghosts (what the store costs in memory). */
  get size(): number {
    return this.map.count;
  }

  get<K extends TwinValue['kind']>(key: string, kind: K, now: number, owner = kind as string): Extract<TwinValue, { kind: K }> | undefined {
    if (now > this.seenNow) this.seenNow = now;
    const reads = ++this.reads;
    if (--this.readsToMark === 0) {
      this.readsToMark = GRACE_READS;
      this.prevMarkNow = this.markNow;
      this.markNow = now;
    }
    const cut = this.graceCut(now);
    if (cut > this.due) this.sweepDue(cut, CALL_BUDGET, false);
    if (this.ghosts.count !== 0) this.age(reads);
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e === undefined) return undefined;
    if (now > e.expiresAt) {
      // Not swept yet: past the grace it goes now; within it, it is gone as in Redis (expire does not
      // revive it) but stays where it is, for set to write over or the sweep to handle.
      if (!e.ghost) {
        if (cut > e.expiresAt) this.expired(e);
        else e.expiresAt = -Infinity;
      }
      return undefined;
    }
    if (e.value.kind !== kind) throw new TwinStateError(`redlimit ${owner}: key ${key} does not hold ${owner} state`);
    return e.value as Extract<TwinValue, { kind: K }>;
  }

  set(key: string, value: TwinValue, expiresAt: number): void {
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e !== undefined) {
      if (e.ghost) this.unlink(e); // a ghost comes back
      // Gone within the grace (see get) and written again: queued at its new expiry now, at the
      // run's end as a rule (left at its old bound, the sweep would queue it again in the heap).
      else if (e.expiresAt === -Infinity && e.ring >= 0) this.runRemove(e);
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
      created.hash = this.lastHash;
    } else created = { key, value, expiresAt, slot: -1, ring: -1, ghost: false, recurs, hash: this.lastHash, cell: -1 };
    this.map.insert(created); // the lookup above made lastKey this key (lastHash its hash)
    this.lastKey = key;
    this.lastEntry = created;
    if (expiresAt !== Infinity) this.insert(created, expiresAt);
  }

  /**
   * A value object of `kind` to fill and pass to set(key, ...) next instead of allocating one (a
   * caller that found `key` absent or expired at `now`, and will write it): the one `key`'s entry
   * held before it expired, if the key was the last looked up; else one a removed entry left; else
   * undefined. Never a live value, never one of sliding_log or leases (they hold collections).
   */
  recycle<K extends 'gcra' | 'counter' | 'sliding_window' | 'token_bucket'>(key: string, kind: K, now: number): Extract<TwinValue, { kind: K }> | undefined {
    if (key === this.lastKey && this.lastEntry !== undefined) {
      const e = this.lastEntry;
      return (e.ghost || now > e.expiresAt) && e.value.kind === kind ? (e.value as Extract<TwinValue, { kind: K }>) : undefined;
    }
    const sp = this.spare.length !== 0 ? this.spare[this.spare.length - 1]! : undefined;
    if (sp === undefined || sp.value.kind !== kind) return undefined;
    const v = sp.value;
    sp.value = EMPTY;
    return v as Extract<TwinValue, { kind: K }>;
  }

  /** Keeps the value, moves its expiry (PEXPIRE; nothing for a key that is gone). */
  expire(key: string, expiresAt: number): void {
    const e = key === this.lastKey ? this.lastEntry : this.lookup(key);
    if (e !== undefined && !e.ghost && e.expiresAt !== -Infinity) this.moveExpiry(e, expiresAt);
  }

  /** Every key held (live or not yet swept; not ghosts), in no particular order. */
  *keys(): IterableIterator<string> {
    for (const e of this.map.entries()) if (!e.ghost && e.cell >= 0) yield e.key;
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
    if (e.ghost) {
      this.unlink(e);
      this.forget(e);
      return false;
    }
    // Found expired by a read (within the grace, it waits where it is): gone already, as DEL of an expired key answers 0.
    const live = e.expiresAt !== -Infinity;
    this.drop(e);
    return live;
  }

  clear(): void {
    for (const e of this.map.entries()) {
      e.key = ''; // handles to them are stale
      e.ghost = false;
    }
    this.map.clear();
    this.spare.length = 0;
    for (const e of this.queue) e.slot = -1;
    this.queue = [];
    this.at = new Float64Array(64);
    this.run.clear();
    this.due = Infinity;
    this.lastKey = undefined;
    this.lastEntry = undefined;
    this.ghosts.clear();
    this.comingBack = undefined;
    this.stopTimer();
  }

  /** Drops expired entries, earliest expiry first, looking at no more than `budget` of them. */
  sweep(now: number, budget: number): number {
    return this.sweepDue(now, budget, true);
  }

  // --- lookups and ghosts ---------------------------------------------------------------------

  /**
   * Entries whose expiry is before the result may be handled at `now`: past the grace (GRACE_MS,
   * or the `now` of the mark before last: expired at least GRACE_READS reads ago), never past `now`.
   */
  private graceCut(now: number): number {
    const t = now - GRACE_MS;
    const cut = t > this.prevMarkNow ? t : this.prevMarkNow;
    return cut < now ? cut : now;
  }

  private lookup(key: string): Entry | undefined {
    const h = keyHash(key, this.map.seed);
    const e = this.map.find(key, h);
    this.lastKey = key;
    this.lastHash = h;
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
        e = this.run.first();
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
    if (!fixedSize(e.value)) e.value = EMPTY; // a fixed-size value stays, for recycle
    e.expiresAt = -Infinity;
    e.ghost = true;
    this.ghosts.push(e, this.reads);
    if (this.ghosts.count > MAX_GHOSTS) this.evict(this.ghosts.first());
    if (this.timer === undefined) this.schedule(TICK_MIN_MS);
  }

  /** Ghosts older than GHOST_READS reads leave (two per read at most: the cap holds meanwhile). */
  private age(reads: number): void {
    const ghosts = this.ghosts;
    for (let i = 0; i < 2; i++) {
      if (ghosts.empty || reads - ghosts.firstAt() <= GHOST_READS) return;
      this.evict(ghosts.first());
    }
  }

  /** A ghost leaves the map. */
  private evict(g: Entry): void {
    this.unlink(g);
    this.forget(g);
  }

  /** A ghost is no longer one (it leaves, or its key came back). */
  private unlink(g: Entry): void {
    this.ghosts.remove(g);
    g.ghost = false;
  }

  /** Drops every ghost, at most `budget` of them; how many went. */
  private purge(budget: number): number {
    let n = 0;
    while (n < budget && !this.ghosts.empty) {
      const g = this.ghosts.first();
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
    } else if (e.ring >= 0) {
      if (expiresAt < this.run.atOf(e)) {
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
    else if (e.ring >= 0) this.runRemove(e);
  }

  /** Removes an entry (already out of the expiry queue and the ghost ring) from the map, keeping it for reuse. */
  private forget(e: Entry): void {
    this.map.remove(e);
    if (this.lastEntry === e) this.lastEntry = undefined; // lastKey stays (absent now), lastHash with it
    e.key = ''; // a handle to it is stale from here on (see prime)
    if (this.spare.length < this.spareCap()) {
      if (!fixedSize(e.value)) e.value = EMPTY; // a fixed-size value stays, for recycle
      this.spare.push(e);
    } else e.value = EMPTY;
  }

  /** Queues `e` at bound `expiresAt`: in the run when no earlier than its last bound, else in the heap. */
  private insert(e: Entry, expiresAt: number): void {
    if (this.run.empty || expiresAt >= this.run.lastAt()) this.run.push(e, expiresAt);
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
    const r = this.run.firstAt();
    this.due = h < r ? h : r;
  }

  // --- the run --------------------------------------------------------------------------------

  /** Takes `e` (in the run) out of it. */
  private runRemove(e: Entry): void {
    if (this.run.remove(e)) this.refreshDue();
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

  /**
   * The table and the spare pool shrink to what the store holds once they have been too large for
   * it for SHRINK_AFTER_MS of timer turns (`waited`: how long this turn's timer waited): not at
   * once, so a limiter between two bursts of new ids does not rebuild them for each burst. True
   * while they are still too large.
   */
  private fitMemory(waited: number): boolean {
    if (!this.map.oversized()) {
      this.oversizedMs = 0;
      return false;
    }
    this.oversizedMs += waited;
    if (this.oversizedMs < SHRINK_AFTER_MS) return true;
    this.map.fit();
    const cap = this.spareCap();
    if (this.spare.length > cap) this.spare.length = cap;
    this.oversizedMs = 0;
    return false;
  }

  /** How many removed entries the store keeps for reuse (see spare). */
  private spareCap(): number {
    const c = this.map.capacity >>> 2;
    return c > SPARE_ENTRIES ? c : SPARE_ENTRIES;
  }

  private tick(): void {
    const waited = this.timerMs;
    this.timer = undefined;
    // No read since the last turn: nothing revives a ghost now, so they all go.
    const idle = this.reads === this.readsAtTick;
    this.readsAtTick = this.reads;
    const now = this.idleNow();
    const purged = idle ? this.purge(TICK_BUDGET) : 0;
    // Under traffic, the grace holds here too (see GRACE_MS); idle, every due entry goes.
    const cut = idle ? now : this.graceCut(now);
    this.sweep(cut, TICK_BUDGET);
    const oversized = this.fitMemory(waited);
    if (this.due === Infinity) {
      // Ghosts left: look again (they go once a turn sees no read).
      if (this.ghosts.count !== 0) this.schedule(purged === TICK_BUDGET ? 0 : TICK_MIN_MS);
      else if (oversized) this.schedule(TICK_MAX_MS); // to shrink the table and the pool
      return;
    }
    const next = this.due;
    // More due than one turn may take: come back at once; else when the next one is due (past its grace).
    this.schedule(cut > next || purged === TICK_BUDGET ? 0 : Math.min(Math.max(next + GRACE_MS - now + 1, TICK_MIN_MS), TICK_MAX_MS));
  }

  private schedule(delayMs: number): void {
    const t = setTimeout(this.onTick, delayMs);
    t.unref?.();
    this.timer = t;
    this.timerMs = delayMs;
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
