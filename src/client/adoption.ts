import type { RedisClientLike } from '../runtime/index.js';
import type { AnyLimitSpec } from './config.js';

/**
 * Whether a limiter of one key per subject sends the tiers scripts `adopt` on its decisions: a
 * subject's key that holds nothing then looks for the states its limits kept a key per limit
 * (an earlier release's default, or `layout: 'per-limit'`) and takes them over. Looking costs a
 * new subject about a fifth more Redis work (one MGET of its limits' own keys, and their names
 * built in Lua), so it is done only while such keys may exist.
 *
 * How that is known, once per prefix and set of limit names for every process: a marker key
 * `<prefix>:!adopt:<names>`. The first process to find it missing claims it ("scanning", NX) and
 * SCANs the keyspace for a key of a limit of these names kept a key per limit
 * (`<prefix>:{<tag>}:<name>` or `...:<name>:<id>`), stopping at the first; it then sets the
 * marker to "found" for `windowMs` (the longest any such state can live, and an hour for a
 * rolling deploy to finish) or to "none" for a day. Every process reads the marker and follows
 * it until it expires, then looks again: "none" stops looking, anything else (found, a scan under
 * way, the marker unreadable) keeps looking. A process starts looking, so nothing is missed while
 * the marker is read. Only on a standalone server with an ioredis or node-redis client (a Cluster
 * keeps a key per limit by default; a limiter of layout 'subject' there always looks). An operator
 * may set the marker: "none" stops looking, anything else keeps it on, for as long as it lives.
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
    private readonly windowMs: number,
  ) {}

  /** Starts following the marker once `prepared` resolves (no client, or a Cluster: always on). */
  start(prepared: Promise<void>, cluster: boolean): void {
    if (this.client === null || cluster || command(this.client) === null) return;
    void prepared.then(() => this.probe());
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

  private async probe(): Promise<void> {
    if (this.closed) return;
    const run = command(this.client!)!;
    let next = 60_000;
    try {
      let value = (await run(['GET', this.marker])) as string | null;
      let left = Number(await run(['PTTL', this.marker]));
      if (value === null) {
        const claimed = await run(['SET', this.marker, 'scanning', 'NX', 'PX', String(SCAN_CLAIM_MS)]);
        if (claimed === 'OK') {
          const found = await this.scan(run);
          // Closed mid-scan: nothing learnt (the claim expires, and another process scans).
          if (this.closed) return;
          value = found ? 'found' : 'none';
          left = value === 'found' ? this.windowMs : NONE_MS;
          await run(['SET', this.marker, value, 'PX', String(left)]);
        } else {
          value = 'scanning';
          left = 2_000;
        }
      }
      this.on = value !== 'none';
      // A marker without expiry (an operator's: "none" to stop looking, anything else to keep
      // looking) is read again a day later.
      next = value === 'scanning' ? 2_000 : left < 0 ? NONE_MS : Math.max(left, 1_000);
    } catch {
      this.on = true;
    }
    if (this.closed) return;
    this.timer = setTimeout(() => void this.probe(), Math.min(next, MAX_TIMER_MS));
    this.timer.unref?.();
  }

  /** Whether the keyspace holds a key of one of these limits kept a key per limit (stops at the first). */
  private async scan(run: Command): Promise<boolean> {
    // ioredis' keyPrefix is not applied to SCAN's MATCH, and the keys come back with it.
    const full = ((this.client as { options?: { keyPrefix?: string } }).options?.keyPrefix ?? '') + this.prefix;
    const own = new RegExp(`^${escapeRegExp(full)}:\\{[^}]*\\}:(?:${this.names.map(escapeRegExp).join('|')})(?::|$)`);
    const match = `${escapeGlob(full)}:{*}:*`;
    let cursor = '0';
    let pages = 0;
    do {
      const [next, keys] = (await run(['SCAN', cursor, 'MATCH', match, 'COUNT', '1000'])) as [string, string[]];
      if (keys.some((k) => own.test(String(k)))) return true;
      cursor = String(next);
      // A long scan keeps its claim (another process would start one of its own).
      if (++pages % 100 === 0) await run(['PEXPIRE', this.marker, String(SCAN_CLAIM_MS)]);
      if (this.closed) return false;
    } while (cursor !== '0');
    return false;
  }
}

/** How long a scan's claim lasts without being renewed. */
const SCAN_CLAIM_MS = 120_000;
/** How long "none" is believed before the keyspace is looked at again. */
const NONE_MS = 86_400_000;
/** setTimeout's limit (2^31 - 1 ms); a longer wait is taken in steps. */
const MAX_TIMER_MS = 2_147_483_647;
const HOUR = 3_600_000;
const UNIT_MS: Record<string, number> = { day: 86_400_000, week: 7 * 86_400_000, month: 31 * 86_400_000 };

/**
 * The longest a state of these limits, kept a key per limit, can live (a bucket's refill from
 * empty, twice for a reservation's debt; a window's end, two for a sliding window; a quota's
 * period and a day for its zone), and an hour for a rolling deploy.
 */
export function adoptionWindowMs(limits: readonly AnyLimitSpec[]): number {
  let longest = 0;
  for (const l of limits) {
    const o = l as unknown as { algo: string; limit: number; periodMs?: number; burst?: number; unit?: string };
    let life = 0;
    if (o.algo === 'gcra' || o.algo === 'token_bucket') life = 2 * Math.ceil(((o.burst ?? o.limit) * o.periodMs!) / o.limit);
    else if (o.algo === 'fixed_window') life = o.periodMs!;
    else if (o.algo === 'sliding_window') life = 2 * o.periodMs!;
    else if (o.algo === 'quota') life = (UNIT_MS[o.unit ?? 'day'] ?? UNIT_MS.month!) + UNIT_MS.day!;
    if (life > longest) longest = life;
  }
  return longest + HOUR;
}

type Command = (args: string[]) => Promise<unknown>;

/** A plain command on a standalone ioredis or node-redis client; null for anything else. */
function command(client: RedisClientLike): Command | null {
  const c = client as { isCluster?: boolean; masters?: unknown; call?: (...a: string[]) => Promise<unknown>; sendCommand?: (a: string[]) => Promise<unknown> };
  if (c.isCluster === true || Array.isArray(c.masters)) return null;
  if (typeof c.call === 'function') return (args) => c.call!(...args);
  if (typeof c.sendCommand === 'function') return (args) => c.sendCommand!(args);
  return null;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const escapeGlob = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');
