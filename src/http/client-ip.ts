import { BlockList, isIP } from 'node:net';
import { InvalidConfigError } from '../errors.js';

/**
 * Which proxies may say who the client is. `false` (default): nobody — the socket's peer is the
 * client and X-Forwarded-For is ignored (a client could write anything there). A number: that
 * many proxies sit in front of the app, so the client is that many entries from the right of
 * the chain. A list of addresses / CIDRs: walk the chain from the socket inwards while the hop is
 * one of them. `true`: trust the whole chain (only behind a proxy that overwrites the header).
 */
export type TrustProxy = boolean | number | readonly string[];

export interface ClientAddressOptions {
  trustProxy?: TrustProxy;
  /** IPv6 clients are keyed by this prefix (an ISP hands a subscriber a /56 or /64). Default 56; false: the whole address. */
  ipv6Subnet?: number | false;
}

/**
 * A BlockList of addresses and CIDRs (IPv4 and IPv6), for trusted proxies and allow / deny lists.
 * An IPv4-mapped entry (`::ffff:1.2.3.4`, `::ffff:10.0.0.0/104`) is its IPv4 address or subnet,
 * as client addresses are.
 */
export function addressList(entries: readonly string[], what: string): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    if (typeof entry !== 'string') throw new InvalidConfigError(`${what}: entries must be strings, got ${typeof entry}`);
    const [given, bits, extra] = entry.split('/');
    const address = unmapIPv4(given ?? '');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) throw new InvalidConfigError(`${what}: ${JSON.stringify(entry)} is not an IP address or CIDR`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, type);
    else {
      let prefix = /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
      if (family === 4 && address !== given) prefix -= 96; // ::ffff:a.b.c.d/104 is a.b.c.d/8
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) throw new InvalidConfigError(`${what}: bad prefix in ${JSON.stringify(entry)}`);
      list.addSubnet(address, prefix, type);
    }
  }
  return list;
}

/** Is this address (IPv4 or IPv6, a zone id ignored) in the list? */
export function inList(list: BlockList, address: string): boolean {
  const plain = address.split('%')[0]!;
  const family = isIP(plain);
  return family !== 0 && list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
}

/** `::ffff:1.2.3.4` is the IPv4 client 1.2.3.4 (a dual-stack socket's view of it). */
export function unmapIPv4(address: string): string {
  const v4 = /:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (!v4 || isIP(address) !== 6) return address;
  const g = ipv6Groups(address);
  return g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff ? v4[1]! : address;
}

/**
 * One X-Forwarded-For entry as an address: `[v6]:port`, `[v6]` and `v4:port` (some proxies
 * write ports) reduced to the address, IPv4-mapped unmapped. Null for anything else (`unknown`,
 * an obfuscated name): it keeps its place in the chain but names nobody.
 */
function forwardedAddress(entry: string): string | null {
  let s = entry.trim();
  if (s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1);
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracketed) s = bracketed[1]!;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(s)) s = s.slice(0, s.lastIndexOf(':'));
  s = unmapIPv4(s);
  return isIP(s) !== 0 ? s : null;
}

/** The 8 groups of an IPv6 address (handles `::` and an embedded IPv4 tail). */
function ipv6Groups(address: string): number[] {
  let text = address.split('%')[0]!.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16));
}

/** An IPv6 address cut to its first `bits` bits, as `prefix::/bits` (the key of that subnet). */
export function ipv6Prefix(address: string, bits: number): string {
  const groups = ipv6Groups(address);
  const out = groups.map((g, i) => {
    const from = i * 16;
    if (from >= bits) return 0;
    if (from + 16 <= bits) return g;
    return g & (0xffff << (16 - (bits - from))) & 0xffff;
  });
  return `${out.map((g) => g.toString(16)).join(':')}/${bits}`;
}

/**
 * The client's address: the socket's peer, or the one the trusted proxies report, IPv4-mapped
 * IPv6 unmapped. This is what allow and deny lists are checked against. Undefined when there is
 * none. Positions in X-Forwarded-For count every entry, well-formed or not (a proxy's `unknown`
 * or `1.2.3.4:5678` must not shift the chain onto an entry the client wrote); if the entry the
 * trust setting points at names no address, the nearest trusted hop is the client.
 */
export function clientIp(remoteAddress: string | undefined, forwardedFor: string | undefined, o: ClientAddressOptions, trusted: BlockList | null): string | undefined {
  const socket = remoteAddress ? unmapIPv4(remoteAddress) : undefined;
  const trust = o.trustProxy ?? false;
  if (trust === false || !forwardedFor || !socket) return socket;
  const chain = forwardedFor.split(',').map(forwardedAddress);
  if (trust === true) return chain.find((a) => a !== null) ?? socket;
  if (typeof trust === 'number') {
    // The socket peer is the last proxy; each trusted hop before it appended one entry.
    if (trust < 1 || chain.length === 0) return socket;
    for (let i = Math.max(0, chain.length - trust); i < chain.length; i++) if (chain[i]) return chain[i]!;
    return socket;
  }
  if (!trusted) return socket;
  let client = socket;
  for (let i = chain.length - 1; i >= 0 && inList(trusted, client); i--) {
    const hop = chain[i];
    if (!hop) break;
    client = hop;
  }
  return client;
}

/** The rate-limit key of a client address: IPv6 cut to its subnet (`ipv6Subnet`), IPv4 as it is. */
export function addressKey(address: string, o: ClientAddressOptions): string {
  const bits = o.ipv6Subnet === undefined ? 56 : o.ipv6Subnet;
  if (bits !== false && isIP(address.split('%')[0]!) === 6) return ipv6Prefix(address, bits);
  return address;
}

/** The client's address as the rate-limit key (clientIp, then addressKey). */
export function clientAddress(remoteAddress: string | undefined, forwardedFor: string | undefined, o: ClientAddressOptions, trusted: BlockList | null): string | undefined {
  const ip = clientIp(remoteAddress, forwardedFor, o, trusted);
  return ip === undefined ? undefined : addressKey(ip, o);
}
