import type { RedisClientLike } from '../runtime/index.js';
import { primaryAddresses, primaryClients } from '../runtime/adapters.js';
import { keyPrefixOf } from './invalidation.js';

/**
 * Whether a limiter of one key per subject sends the tiers scripts `adopt` on its decisions: a
 * subject's key that holds nothing then looks for the states its limits kept a key per limit
 * (an earlier release's default, or `layout: 'per-limit'`) and takes them over. Looking costs a
 * new subject about a fifth more Redis work (a GET of each of its limits' own keys, and their
 * names built in Lua), so it is done only while such keys may exist.
 *
 * How that is known, once per prefix and set of limit names for every process: a marker key
 * `<prefix>:!adopt:<names>`. The first process to find it missing claims it ("scanning", NX) and
 * SCANs the keyspace for a key of a limit of these names kept a key per limit
 * (`<prefix>:{<tag>}:<name>` or `...:<name>:<id>`), stopping at the first; it then sets the
 * marker to "found" for an hour (then the next look, which stops at the first such key again) or
 * to "none" for a day. A scan that fails (SCAN refused) sets "found" for the hour, and so does
 * one whose server changed under it (its run_id, read by INFO where an ACL allows it: a failover
 * or a restart mid-scan resumes the cursor on a server it does not describe), or on a Cluster
 * whose slot map changed during the scan (a reshard can move keys to a primary already scanned)
 * or names a primary the client does not know (its topology older than a reshard onto a new
 * node; a client behind a NAT map, whose addresses are not the ones CLUSTER SLOTS names, so
 * always keeps looking). Every process
 * reads the marker and follows it until it expires, then looks again: "none" stops looking,
 * anything else keeps looking; a process looks until it has read the marker, and the one that
 * scans looks while it does.
 *
 * A limiter pinned to a key per limit where `auto` would have taken one key per subject (a
 * rolling deploy's pin, or a service that shares a limit's own key) writes "found" every half
 * hour, so a process of one key per subject keeps looking while it runs. Processes of an older
 * release do not: after a rollback to one and back, DEL the marker (or set it to "found").
 * With an ioredis or node-redis client, standalone or Cluster (there the marker lives in its
 * slot, and the scan visits every primary); with another client it always looks. An operator may
 * set the marker: "none" stops looking, anything else keeps it on, for as long as it lives.
 */
export class AdoptionSwitch {
  /** Whether decisions send adopt now. */
  on = true;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly client: RedisClientLike | null,
    private readonly prefix: string,
    private readonly names: readonly string[],
    /** 'follow': a limiter of one key per subject; 'mark': one pinned to a key per limit (writes "found"). */
    private readonly role: 'follow' | 'mark' = 'follow',
  ) {}

  /** The marker's commands (routed by its key on a Cluster). */
  private run: Command | null = null;
  private cluster = false;

  /** Starts once `prepared` resolves (no client, or one it cannot command: always on, nothing marked). */
  start(prepared: Promise<void>, cluster: boolean): void {
    if (this.client === null) return;
    this.cluster = cluster;
    this.run = cluster ? clusterCommand(this.client) : command(this.client);
    if (this.run === null) return;
    void prepared.then(() => (this.role === 'mark' ? this.mark() : this.probe()));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The marker's key. */
  get marker(): string {
    return `${this.prefix}:!adopt:${this.names.join('+')}`;
  }

  private again(ms: number, fn: () => Promise<void>): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void fn(), Math.min(ms, MAX_TIMER_MS));
    this.timer.unref?.();
  }

  /** A key per limit, pinned: "found" now and every half of its life. */
  private async mark(): Promise<void> {
    if (this.closed) return;
    await this.run!(['SET', this.marker, FOUND_VALUE, 'PX', String(FOUND_MS)]).catch(() => {});
    this.again(FOUND_MS / 2, () => this.mark());
  }

  private async probe(): Promise<void> {
    if (this.closed) return;
    const run = this.run!;
    let next = 60_000;
    let claimed = false;
    try {
      let value = (await run(['GET', this.marker])) as string | null;
      let left = Number(await run(['PTTL', this.marker]));
      if (value === null) {
        claimed = (await run(['SET', this.marker, CLAIM_VALUE, 'NX', 'PX', String(SCAN_CLAIM_MS)])) === 'OK';
        if (claimed) {
          this.on = true; // while it looks, it looks for them
          const found = await this.scan(run);
          // Closed mid-scan: nothing learnt (the claim expires, and another process scans).
          if (this.closed) return;
          value = found ? FOUND_VALUE : NONE_VALUE;
          left = found ? FOUND_MS : NONE_MS;
          await run(['SET', this.marker, value, 'PX', String(left)]);
        } else {
          value = CLAIM_VALUE;
          left = 2_000;
        }
      }
      this.on = value !== NONE_VALUE;
      // Expired between GET and PTTL (-2): read it again soon. Without expiry (-1, an
      // operator's): a day later.
      next = left === -2 ? 1_000 : left < 0 ? NONE_MS : value === CLAIM_VALUE ? 2_000 : Math.max(left, 1_000);
    } catch {
      this.on = true;
      // A scan that failed (SCAN refused, the connection lost): "found" for the hour, so nobody
      // waits on the claim meanwhile.
      if (claimed) await run(['SET', this.marker, FOUND_VALUE, 'PX', String(FOUND_MS)]).catch(() => {});
    }
    this.again(next, () => this.probe());
  }

  /**
   * Whether the keyspace holds a key of one of these limits kept a key per limit (stops at the
   * first): on a Cluster, every primary's.
   */
  private async scan(run: Command): Promise<boolean> {
    // ioredis' keyPrefix is not applied to SCAN's MATCH, and the keys come back with it.
    const full = keyPrefixOf(this.client!) + this.prefix;
    const own = new RegExp(`^${escapeRegExp(full)}:\\{[^}]*\\}:(?:${this.names.map(escapeRegExp).join('|')})(?::|$)`);
    const match = scanMatch(escapeGlob(full));
    let servers: Command[] = [run];
    // On a Cluster: the slot map before and after (a reshard mid-scan can move keys from a
    // primary not yet scanned to one already scanned).
    const slotMap = this.cluster ? await slots(run) : null;
    if (this.cluster) {
      const primaries = await primaryClients(this.client!);
      if (primaries === null || primaries.length === 0) throw new Error('no primaries to scan');
      servers = primaries.map((p) => {
        const c = command(p);
        if (c === null) throw new Error('a primary cannot be scanned');
        return c;
      });
      // A primary the server names that the client does not know (its topology older than a
      // reshard onto a new node) would not be scanned: found.
      const known = primaryAddresses(this.client!);
      if (slotMap === null || known === null || slotMap.primaries.some((p) => !known.includes(p))) return true;
    }
    let pages = 0;
    for (const server of servers) {
      // A cursor resumed on another server (a failover or a restart mid-scan) may skip keys: a
      // server that is not the one the scan started on counts as found (looked at again later).
      const started = await runId(server);
      let cursor = '0';
      do {
        const [next, keys] = (await server(['SCAN', cursor, 'MATCH', match, 'COUNT', '1000'])) as [string, string[]];
        if (keys.some((k) => own.test(String(k)))) return true;
        cursor = String(next);
        // A long scan keeps its claim (another process would start one of its own).
        if (++pages % 100 === 0) await run(['PEXPIRE', this.marker, String(SCAN_CLAIM_MS)]);
        if (this.closed) return false;
      } while (cursor !== '0');
      if (started !== (await runId(server))) return true;
    }
    if (this.cluster && (slotMap === null || slotMap.map !== (await slots(run))?.map)) return true;
    return false;
  }
}

/**
 * Set on the options of a limiter that keeps a key per limit for reasons of its own and writes no
 * marker (the policy limiter: its keys carry policy state limit by limit, never a subject's key).
 */
export const NO_ADOPTION_MARK: unique symbol = Symbol('redlimit.noAdoptionMark');

/** The marker's values (the manifest's keyLayout.adoption states them for other languages). */
export const CLAIM_VALUE = 'scanning';
export const FOUND_VALUE = 'found';
export const NONE_VALUE = 'none';

/** What the scan asks SCAN to match: every key of the prefix (glob-escaped) with a hash tag. */
export const scanMatch = (prefix: string): string => `${prefix}:{*}:*`;

/** How long a scan's claim lasts without being renewed. */
export const SCAN_CLAIM_MS = 120_000;
/** How long "found" is believed before the keyspace is looked at again (a look stops at the first such key). */
export const FOUND_MS = 3_600_000;
/** How long "none" is believed before the keyspace is looked at again. */
export const NONE_MS = 86_400_000;
/** setTimeout's limit (2^31 - 1 ms); a longer wait is taken in steps. */
const MAX_TIMER_MS = 2_147_483_647;

type Command = (args: string[]) => Promise<unknown>;

/** A plain command on an ioredis or node-redis client of one server (a Cluster's: clusterCommand); null for anything else. */
function command(client: RedisClientLike): Command | null {
  const c = client as { call?: (...a: string[]) => Promise<unknown>; sendCommand?: (a: string[]) => Promise<unknown> };
  if (typeof c.call === 'function') return (args) => c.call!(...args);
  if (typeof c.sendCommand === 'function') return (args) => c.sendCommand!(args);
  return null;
}

/**
 * The Cluster's slot map as one string (CLUSTER SLOTS: ranges and their primaries), or null when
 * it cannot be read. Slots on the move (MIGRATING) are not in it: a migration that had not ended
 * by the second reading is not seen.
 */
async function slots(run: Command): Promise<{ map: string; primaries: string[] } | null> {
  try {
    const reply = (await run(['CLUSTER', 'SLOTS'])) as unknown[][];
    const ranges = reply.map((r) => [r[0], r[1], (r[2] as unknown[] | undefined)?.slice(0, 2).map(String)] as const).sort((a, b) => Number(a[0]) - Number(b[0]));
    return { map: JSON.stringify(ranges), primaries: [...new Set(ranges.map((r) => `${r[2]?.[0]}:${r[2]?.[1]}`))] };
  } catch {
    return null;
  }
}

/** The server's run_id (INFO server), or null when it is not told (INFO refused by an ACL). */
async function runId(server: Command): Promise<string | null> {
  try {
    return /^run_id:(\w+)/m.exec(String(await server(['INFO', 'server'])))?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * The marker's commands on a Cluster client, routed by the marker's key (its second word):
 * ioredis' `call`; node-redis' `sendCommand(firstKey, isReadonly, args)`. null for anything else.
 */
function clusterCommand(client: RedisClientLike): Command | null {
  const c = client as { call?: (...a: string[]) => Promise<unknown>; sendCommand?: (key: string, readonly: boolean, a: string[]) => Promise<unknown>; masters?: unknown };
  if (typeof c.call === 'function') return (args) => c.call!(...args);
  if (Array.isArray(c.masters) && typeof c.sendCommand === 'function') return (args) => c.sendCommand!(args[1]!, false, args);
  return null;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const escapeGlob = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');
