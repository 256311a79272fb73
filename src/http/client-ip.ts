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

/** A BlockList of addresses and CIDRs (IPv4 and IPv6), for trusted proxies and allow / deny lists. */
export function addressList(entries: readonly string[], what: string): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/');
    const family = isIP(address ?? '');
    if (family === 0) throw new InvalidConfigError(`${what}: ${JSON.stringify(entry)} is not an IP address or CIDR`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address!, type);
    else {
      const prefix = Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) throw new InvalidConfigError(`${what}: bad prefix in ${JSON.stringify(entry)}`);
      list.addSubnet(address!, prefix, type);
    }
  }
  return list;
}

export function inList(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/** `::ffff:1.2.3.4` is the IPv4 client 1.2.3.4 (a dual-stack socket's view of it). */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
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
 * The client's address as the rate-limit key: the socket's peer, or the one the trusted proxies
 * report; IPv4-mapped IPv6 unmapped; IPv6 cut to its subnet. Undefined when there is none.
 */
export function clientAddress(remoteAddress: string | undefined, forwardedFor: string | undefined, o: ClientAddressOptions, trusted: BlockList | null): string | undefined {
  let address = remoteAddress ? unmapIPv4(remoteAddress) : undefined;
  const trust = o.trustProxy ?? false;
  if (trust !== false && forwardedFor && address) {
    const chain = forwardedFor.split(',').map((s) => unmapIPv4(s.trim())).filter((s) => isIP(s) !== 0);
    if (trust === true) address = chain[0] ?? address;
    else if (typeof trust === 'number') {
      // The socket peer is the last proxy; each trusted hop before it appended one entry.
      if (trust >= 1 && chain.length > 0) address = chain[Math.max(0, chain.length - trust)] ?? address;
    } else if (trusted) {
      const hops = [...chain, address];
      let i = hops.length - 1;
      while (i > 0 && inList(trusted, hops[i]!)) i--;
      address = hops[i]!;
    }
  }
  if (!address) return undefined;
  const bits = o.ipv6Subnet === undefined ? 56 : o.ipv6Subnet;
  if (isIP(address) === 6 && bits !== false) return ipv6Prefix(address, bits);
  return address;
}
