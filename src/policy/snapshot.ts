import { parseEntry, type PolicyBody } from './document.js';
import { PolicyKeys } from './keys.js';
import type { Layer, Learned } from './resolve.js';
import type { PolicyStore } from './store.js';

/** What one key held at the cached version. */
type Value = { kind: 'doc'; layer: Layer } | { kind: 'adaptive'; learned: Learned | null };

/**
 * The policies this process knows, every entry true at one global version (`version`). A change
 * announced as the next version drops only the policy it names; a gap, a poll that finds another
 * version, or a reconnect drops everything. So a resolution reads entries of one version only:
 * no decision mixes two versions. `lastKnown` keeps every entry ever read for an outage.
 */
export class PolicySnapshot {
  version = -1;
  /** The highest version announced: a read answering an older one is not kept. */
  private announcedMax = -1;
  private entries = new Map<string, Value>();
  private readonly lastKnown = new Map<string, Value>();
  /** The last good body of each policy (a corrupt entry is replaced by it). */
  private readonly lastGood = new Map<string, { body: PolicyBody | null; resets: Record<string, number> }>();
  /** Corrupt entries just parsed with no good version known: repair() looks in their history. */
  private unrepaired: string[] = [];
  /** Server ms minus local ms, from the last read. */
  serverOffsetMs = 0;
  corrupt = 0;
  /** Reads made (each one script call). */
  reads = 0;
  readonly warnings: string[] = [];

  constructor(
    readonly keys: PolicyKeys,
    private readonly store: PolicyStore,
  ) {}

  /** An announcement "<version> <name>" (or "<version> adaptive:<target>"). */
  announced(message: string): void {
    const space = message.indexOf(' ');
    const v = Number(message.slice(0, space));
    if (!Number.isSafeInteger(v)) return;
    if (v > this.announcedMax) this.announcedMax = v;
    if (v <= this.version) return;
    if (v === this.version + 1) {
      const name = message.slice(space + 1);
      this.entries.delete(name.startsWith('adaptive:') ? this.keys.adaptive(name.slice(9)) : this.keys.doc(name));
      this.version = v;
    } else this.drop();
  }

  drop(): void {
    this.entries.clear();
    this.version = -1;
  }

  /** Every value for `keys` at one version: from the cache, or one read for what it lacks. */
  async values(keys: readonly string[], localNow: number): Promise<{ version: number; values: Map<string, Value> }> {
    for (let attempt = 0; ; attempt++) {
      if (this.version < 0 || attempt >= 3) {
        this.reads++;
        const r = await this.store.read(keys);
        this.serverOffsetMs = r.nowMs - localNow;
        if (r.version < this.announcedMax && attempt < 3) continue; // a newer version was announced meanwhile
        if (r.version > this.version) {
          this.entries.clear();
          this.version = r.version;
        }
        const values = new Map(keys.map((k, i) => [k, this.parse(k, r.values[i]!)] as const));
        await this.repair(values);
        if (r.version === this.version) for (const [k, v] of values) this.keep(k, v);
        return { version: r.version, values };
      }
      const missing = keys.filter((k) => !this.entries.has(k));
      if (missing.length > 0) {
        this.reads++;
        const r = await this.store.read(missing);
        this.serverOffsetMs = r.nowMs - localNow;
        if (r.version !== this.version) {
          this.drop();
          continue;
        }
        const got = new Map(missing.map((k, i) => [k, this.parse(k, r.values[i]!)] as const));
        await this.repair(got);
        if (this.version !== r.version) continue; // announced meanwhile: read again
        for (const [k, v] of got) this.keep(k, v);
      }
      // Every key is cached at this.version (an announcement between the read and here would have
      // dropped its own entry: look again).
      if (keys.every((k) => this.entries.has(k))) return { version: this.version, values: new Map(keys.map((k) => [k, this.entries.get(k)!])) };
    }
  }

  /** What is known of `keys` during an outage: the last value read of each (possibly of different versions). */
  known(keys: readonly string[]): Map<string, Value | undefined> {
    return new Map(keys.map((k) => [k, this.entries.get(k) ?? this.lastKnown.get(k)]));
  }

  /** Corrupt entries with no good version known here: the newest valid one of their history (one read each). */
  private async repair(values: Map<string, Value>): Promise<void> {
    for (const name of this.unrepaired.splice(0)) {
      const key = this.keys.doc(name);
      if (!values.has(key)) continue;
      let good: Awaited<ReturnType<PolicyStore['lastGood']>> = null;
      try {
        good = await this.store.lastGood(name);
      } catch {
        // unreachable now: ignored this time, tried again on the next read
      }
      if (!good) continue;
      this.lastGood.set(name, { body: good.body, resets: good.resets });
      this.warn(`policy ${name}: the last good version (${good.version}, from its history) is used`);
      values.set(key, { kind: 'doc', layer: { name, body: good.body, resets: good.resets } });
    }
  }

  private keep(key: string, v: Value): void {
    this.entries.set(key, v);
    this.lastKnown.set(key, v);
  }

  private parse(key: string, raw: string | null): Value {
    const adaptivePrefix = this.keys.adaptive('');
    if (key.startsWith(adaptivePrefix)) {
      const m = raw ? /^(\d+):(\d+):(\d+):(\d+)$/.exec(raw) : null;
      return { kind: 'adaptive', learned: m ? { learned: Number(m[1]), pausedUntilMs: Number(m[4]) } : null };
    }
    const name = key.slice(this.keys.doc('').length);
    if (raw === null) return { kind: 'doc', layer: { name, body: null, resets: {} } };
    try {
      const e = parseEntry(name, raw);
      this.lastGood.set(name, { body: e.body, resets: e.resets });
      return { kind: 'doc', layer: { name, body: e.body, resets: e.resets } };
    } catch (err) {
      this.corrupt++;
      const good = this.lastGood.get(name);
      if (!good) this.unrepaired.push(name);
      this.warn(`policy ${name}: the stored entry is not a valid policy (${(err as Error).message}); ${good ? 'the last good version is used' : 'the last good version of its history is used (none: ignored)'}`);
      return { kind: 'doc', layer: { name, body: good?.body ?? null, resets: good?.resets ?? {} } };
    }
  }

  warn(message: string): void {
    if (this.warnings.includes(message)) return;
    this.warnings.push(message);
    if (this.warnings.length > 50) this.warnings.shift();
  }
}
