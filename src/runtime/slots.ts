import { CrossSlotError, InvalidArgumentError } from '../errors.js';

/** CRC16-CCITT (XMODEM), as Redis Cluster uses for key slots. */
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let j = 0; j < 8; j++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    t[i] = crc;
  }
  return t;
})();

/** The Redis Cluster hash slot of a key, honouring a {hash tag}. */
export function hashSlot(key: string): number {
  let s = key;
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) s = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(s)) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc % 16384;
}

/**
 * Every key of one script call must live in one hash slot, or Redis Cluster refuses the call
 * (CROSSSLOT). Checked always, so code that works on a single Redis keeps working on a cluster.
 */
export function sameSlot(script: string, keys: readonly string[], repeats = false): void {
  if (keys.length < 2) return;
  const slot = hashSlot(keys[0]!);
  const other = keys.find((k) => hashSlot(k) !== slot);
  if (other !== undefined) {
    throw new CrossSlotError(
      `redlimit ${script}: keys "${keys[0]}" and "${other}" are in different hash slots; give every key of one call the same hash tag, e.g. "rl:{tenant-42}:user:7" and "rl:{tenant-42}:org"`,
    );
  }
  if (repeats) return;
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) throw new InvalidArgumentError(script, 'keys', `key "${k}" is given twice in one call`);
    seen.add(k);
  }
}

/**
 * The primary that owns `slot` on a Cluster client, as "host:port" from the client's own slot
 * table (ioredis Cluster, node-redis cluster); null for a standalone client or an unknown slot.
 */
export function slotOwner(client: object, slot: number): string | null {
  const c = client as { isCluster?: boolean; slots?: unknown; masters?: unknown };
  if (!Array.isArray(c.slots)) return null;
  const entry: unknown = c.slots[slot];
  if (c.isCluster === true) return Array.isArray(entry) && typeof entry[0] === 'string' ? entry[0] : null; // ioredis: [primary, ...replicas]
  const address = (entry as { master?: { address?: unknown } } | undefined)?.master?.address; // node-redis
  return typeof address === 'string' ? address : null;
}
