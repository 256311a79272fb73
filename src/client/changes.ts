/**
 * Keys changed elsewhere (a reset, refund or block by another instance, the CLI, another
 * language, a DEL seen through keyspace events), and when this process heard of it. Every local
 * cache (deny cache, leases, what the fallback learned) asks `since` before it answers from an
 * entry made at `t`: an entry older than a change to one of its keys is stale and is dropped.
 *
 * Bounded: past `max` changed keys, the record is cleared and `onOverflow` drops every local
 * cache instead (only ever costs Redis calls, never a wrong answer).
 */
export class Changes {
  private readonly at = new Map<string, number>();
  /** The same, for changes that replaced a key's state (reset, DEL, block), not mere refunds. */
  private readonly replacedAt = new Map<string, number>();

  constructor(
    private readonly onOverflow: () => void,
    private readonly max = 10_000,
  ) {}

  /** Announcements of this instance's own changes still on their way back (key → count). */
  private readonly echoes = new Map<string, number>();

  /**
   * This instance is about to change `keys` itself (and has updated its own caches): the
   * announcement that comes back for each is not news. Returns the undo for a change that did
   * not land.
   */
  expect(keys: readonly string[]): () => void {
    if (this.echoes.size >= this.max) this.echoes.clear();
    for (const k of keys) this.echoes.set(k, (this.echoes.get(k) ?? 0) + 1);
    return () => {
      for (const k of keys) this.heard(k);
    };
  }

  /** An announcement arrived for `key`: true when it is news (not the echo of our own change). */
  heard(key: string): boolean {
    const n = this.echoes.get(key);
    if (n === undefined) return true;
    if (n <= 1) this.echoes.delete(key);
    else this.echoes.set(key, n - 1);
    return false;
  }

  mark(key: string, now: number, replaced: boolean): void {
    if (!this.at.has(key) && this.at.size >= this.max) {
      this.clear();
      this.onOverflow();
    }
    this.at.set(key, now);
    if (replaced) this.replacedAt.set(key, now);
  }

  /** Did one of `keys` change (only: have its state replaced) at or after `t`? */
  since(keys: readonly string[], t: number, replacedOnly = false): boolean {
    const at = replacedOnly ? this.replacedAt : this.at;
    if (at.size === 0) return false;
    for (let i = 0; i < keys.length; i++) {
      const c = at.get(keys[i]!);
      if (c !== undefined && c >= t) return true;
    }
    return false;
  }

  clear(): void {
    this.at.clear();
    this.replacedAt.clear();
  }
}
