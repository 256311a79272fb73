import { UnsupportedServerError } from '../errors.js';
import { transportFor, type RedisClientLike } from './adapters.js';

/** What redlimit learned of a client's server. */
export interface ServerInfo {
  /** 'redis', 'valkey', or 'unknown' when INFO could not be read (e.g. an ACL without +info). */
  product: 'redis' | 'valkey' | 'unknown';
  version: string | null;
  /** Null when supported; else why not. */
  unsupported: UnsupportedServerError | null;
}

/**
 * Redis 7.0+ and Valkey (7.2+) are supported: the peek scripts use the `no-writes` flag and
 * EVALSHA_RO, both new in Redis 7.0. Reads `INFO server` (version fields only).
 */
export function serverInfoFrom(info: string): ServerInfo {
  const field = (name: string) => new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1] ?? null;
  const valkey = field('valkey_version');
  const version = valkey ?? field('redis_version');
  const product = valkey ? 'valkey' : version ? 'redis' : 'unknown';
  const major = version ? Number(version.split('.')[0]) : NaN;
  const unsupported =
    product === 'redis' && major < 7
      ? new UnsupportedServerError(`redlimit needs Redis 7.0 or later (or Valkey); this server is Redis ${version}: its peek scripts use EVALSHA_RO and the no-writes flag`)
      : null;
  return { product, version, unsupported };
}

const checked = new WeakMap<object, Promise<ServerInfo>>();

/** Reads the server's version once per client; never throws (unknown when INFO is refused). */
export function detectServer(client: RedisClientLike): Promise<ServerInfo> {
  let found = checked.get(client);
  if (!found) {
    found = readInfo(client).then(serverInfoFrom, () => ({ product: 'unknown' as const, version: null, unsupported: null }));
    checked.set(client, found);
  }
  return found;
}

async function readInfo(client: RedisClientLike): Promise<string> {
  const t = transportFor(client);
  if (t.kind === 'twin') throw new Error('no server');
  const c = client as { info?: (section: string) => Promise<string>; nodes?: (role: string) => { info(s: string): Promise<string> }[]; isCluster?: boolean; masters?: unknown[]; nodeClient?: (n: unknown) => Promise<{ info(s: string): Promise<string> }> | { info(s: string): Promise<string> } };
  if (c.isCluster && c.nodes) return (await c.nodes('master')[0]!.info('server')) as string;
  if (Array.isArray(c.masters) && c.nodeClient) return (await c.nodeClient(c.masters[0]))!.info('server');
  return c.info!('server');
}
