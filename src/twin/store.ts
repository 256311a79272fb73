/**
 * The twin's keyspace: what Redis holds for the scripts, in process memory. Each entry has a kind
 * (the Redis type it stands for) and an expiry on the twin's clock. Expired entries go lazily on
 * read and actively in small sweeps, as Redis does, so memory stays bounded by live state.
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
  value: TwinValue;
  /** ms on the twin's clock; the entry is gone once now > expiresAt (Redis' rule). */
  expiresAt: number;
}

export class TwinStateError extends Error {}

const SWEEP_EVERY = 64;
const SWEEP_BUDGET = 32;

export class MemoryStore {
  private readonly map = new Map<string, Entry>();
  private sweeper: IterableIterator<[string, Entry]> = this.map.entries();
  private ops = 0;

  get size(): number {
    return this.map.size;
  }

  get<K extends TwinValue['kind']>(key: string, kind: K, now: number, owner = kind as string): Extract<TwinValue, { kind: K }> | undefined {
    if (++this.ops >= SWEEP_EVERY) {
      this.ops = 0;
      this.sweep(now, SWEEP_BUDGET);
    }
    const e = this.map.get(key);
    if (!e) return undefined;
    if (now > e.expiresAt) {
      this.map.delete(key);
      return undefined;
    }
    if (e.value.kind !== kind) throw new TwinStateError(`redlimit ${owner}: key ${key} does not hold ${owner} state`);
    return e.value as Extract<TwinValue, { kind: K }>;
  }

  set(key: string, value: TwinValue, expiresAt: number): void {
    const e = this.map.get(key);
    if (e) {
      e.value = value;
      e.expiresAt = expiresAt;
    } else {
      this.map.set(key, { value, expiresAt });
    }
  }

  /** Keeps the value, moves its expiry (PEXPIRE). */
  expire(key: string, expiresAt: number): void {
    const e = this.map.get(key);
    if (e) e.expiresAt = expiresAt;
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
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.sweeper = this.map.entries();
  }

  /** Drops up to `budget` expired entries, resuming where the last sweep stopped. */
  sweep(now: number, budget: number): number {
    let removed = 0;
    for (let seen = 0; seen < budget; seen++) {
      let next = this.sweeper.next();
      if (next.done) {
        this.sweeper = this.map.entries();
        next = this.sweeper.next();
        if (next.done) break;
      }
      const [key, e] = next.value;
      if (now > e.expiresAt) {
        this.map.delete(key);
        removed++;
      }
    }
    return removed;
  }
}
