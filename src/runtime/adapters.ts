import { UnsupportedClientError } from '../errors.js';

/**
 * Any client redlimit can run scripts on: ioredis 5 or 6 `Redis` / `Cluster` or node-redis 5 or 6
 * `createClient()` / `createCluster()`. Recognised by shape, so neither library is imported.
 */
export type RedisClientLike = object;

/** What the runner needs from a client. */
export interface ScriptTransport {
  readonly kind: 'ioredis' | 'node-redis' | 'twin';
  evalsha(sha: string, keys: string[], argv: string[], readOnly: boolean): Promise<unknown>;
  eval(source: string, keys: string[], argv: string[], readOnly: boolean): Promise<unknown>;
  /** SCRIPT LOAD on every primary the client talks to. */
  scriptLoad(source: string): Promise<void>;
  /** FCALL / FCALL_RO of a Functions library function. */
  fcall(name: string, keys: string[], argv: string[], readOnly: boolean): Promise<unknown>;
  /** FUNCTION LOAD (REPLACE unless `replace` is false) on every primary the client talks to. */
  functionLoad(source: string, replace?: boolean): Promise<void>;
  /**
   * The calls made from now until this turn's microtasks have run may leave in one socket write
   * (ioredis: its socket corked until process.nextTick; a Cluster's, every primary's). Absent
   * where the client batches its writes by itself (node-redis writes a turn's commands at once).
   */
  shareWrite?(): void;
}

type Fn = (...args: unknown[]) => Promise<unknown>;
type IoredisLike = {
  evalsha: Fn;
  eval: Fn;
  evalsha_ro?: Fn;
  eval_ro?: Fn;
  fcall: Fn;
  fcall_ro?: Fn;
  function: Fn;
  script: Fn;
  nodes?: (role: string) => IoredisLike[];
  isCluster?: boolean;
  /** A Cluster's slot table: per slot, "host:port" of its primary first. */
  slots?: unknown[];
  options?: { host?: string; port?: number };
  stream?: Partial<Corkable>;
};
type Corkable = { cork(): void; uncork(): void };

/** Corks `stream` if it is a socket, and keeps it for the uncork. */
function corkInto(held: Corkable[], stream: Partial<Corkable> | undefined): void {
  if (stream === undefined || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function') return;
  stream.cork();
  held.push(stream as Corkable);
}
type NodeRedisLike = {
  evalSha: Fn;
  eval: Fn;
  evalShaRo?: Fn;
  evalRo?: Fn;
  fCall: Fn;
  fCallRo?: Fn;
  scriptLoad?: Fn;
  functionLoad?: Fn;
  masters?: unknown[];
  nodeClient?: (node: unknown) => Promise<{ scriptLoad: Fn; functionLoad: Fn }> | { scriptLoad: Fn; functionLoad: Fn };
};

type TwinLike = { redlimitTwinEval(sha: string, keys: string[], argv: string[]): Promise<unknown> };

const transports = new WeakMap<object, ScriptTransport>();

export function transportFor(client: RedisClientLike): ScriptTransport {
  let t = transports.get(client);
  if (!t) {
    t = detect(client);
    transports.set(client, t);
  }
  return t;
}

function detect(client: RedisClientLike): ScriptTransport {
  const c = client as Partial<IoredisLike & NodeRedisLike & TwinLike>;
  if (typeof c.redlimitTwinEval === 'function') return twinTransport(c as TwinLike);
  if (typeof c.evalsha === 'function' && typeof c.script === 'function') return ioredisTransport(c as unknown as IoredisLike);
  if (typeof c.evalSha === 'function') return nodeRedisTransport(c as NodeRedisLike);
  throw new UnsupportedClientError(
    'redlimit: unsupported Redis client: pass an ioredis Redis/Cluster or a node-redis 5 or 6 client/cluster',
  );
}

/**
 * Most calls one shared write carries (see shareWrite): past it the write leaves and the next
 * call starts another, so Redis starts on the first calls while Node still sends the rest of the
 * turn (the reason the coalescer caps its batches too).
 */
const SHARE_MAX = 32;

function ioredisTransport(c: IoredisLike): ScriptTransport {
  // One socket write per turn for the calls that allow it (see ScriptTransport.shareWrite): each
  // connection's socket corked until process.nextTick (a Cluster: every primary's). The write
  // waits for nothing but the end of this turn's microtasks, so no call waits on I/O.
  let corked: Corkable[] | null = null;
  let shared = 0;
  const uncork = () => {
    const held = corked;
    corked = null;
    if (held !== null) for (const s of held) s.uncork();
  };
  return {
    kind: 'ioredis',
    shareWrite() {
      if (corked !== null) {
        if (++shared < SHARE_MAX) return;
        uncork();
      }
      const held: Corkable[] = [];
      if (c.isCluster) {
        if (c.nodes) for (const n of c.nodes('master')) corkInto(held, n.stream);
      } else corkInto(held, c.stream);
      if (held.length === 0) return;
      corked = held;
      shared = 0;
      process.nextTick(uncork);
    },
    evalsha: (sha, keys, argv, readOnly) =>
      (readOnly && c.evalsha_ro ? c.evalsha_ro : c.evalsha).call(c, sha, keys.length, ...keys, ...argv),
    eval: (source, keys, argv, readOnly) =>
      (readOnly && c.eval_ro ? c.eval_ro : c.eval).call(c, source, keys.length, ...keys, ...argv),
    async scriptLoad(source) {
      const nodes = c.isCluster && c.nodes ? c.nodes('master') : [c];
      await Promise.all(nodes.map((n) => n.script('LOAD', source)));
    },
    fcall: (name, keys, argv, readOnly) => (readOnly && c.fcall_ro ? c.fcall_ro : c.fcall).call(c, name, keys.length, ...keys, ...argv),
    async functionLoad(source, replace = true) {
      const nodes = c.isCluster && c.nodes ? c.nodes('master') : [c];
      await Promise.all(nodes.map((n) => (replace ? n.function('LOAD', 'REPLACE', source) : n.function('LOAD', source))));
    },
  };
}

function nodeRedisTransport(c: NodeRedisLike): ScriptTransport {
  return {
    kind: 'node-redis',
    evalsha: (sha, keys, argv, readOnly) =>
      (readOnly && c.evalShaRo ? c.evalShaRo : c.evalSha).call(c, sha, { keys, arguments: argv }),
    eval: (source, keys, argv, readOnly) =>
      (readOnly && c.evalRo ? c.evalRo : c.eval).call(c, source, { keys, arguments: argv }),
    async scriptLoad(source) {
      if (Array.isArray(c.masters) && c.nodeClient) {
        await Promise.all(c.masters.map(async (m) => (await c.nodeClient!(m)).scriptLoad(source)));
      } else if (c.scriptLoad) {
        await c.scriptLoad(source);
      }
    },
    fcall: (name, keys, argv, readOnly) => (readOnly && c.fCallRo ? c.fCallRo : c.fCall).call(c, name, { keys, arguments: argv }),
    async functionLoad(source, replace = true) {
      if (Array.isArray(c.masters) && c.nodeClient) {
        await Promise.all(c.masters.map(async (m) => (await c.nodeClient!(m)).functionLoad(source, { REPLACE: replace })));
      } else if (c.functionLoad) {
        await c.functionLoad(source, { REPLACE: replace });
      }
    },
  };
}

/**
 * A Cluster client's primaries, each as a client of its own (ioredis: `nodes('master')`;
 * node-redis: `nodeClient(master)`); null for a client that is not a Cluster.
 */
export async function primaryClients(client: RedisClientLike): Promise<RedisClientLike[] | null> {
  const c = client as Partial<IoredisLike & NodeRedisLike>;
  if (c.isCluster === true && typeof c.nodes === 'function') return c.nodes('master') as unknown as RedisClientLike[];
  if (Array.isArray(c.masters) && typeof c.nodeClient === 'function') {
    return (await Promise.all(c.masters.map((m) => c.nodeClient!(m)))) as unknown as RedisClientLike[];
  }
  return null;
}

/** The "host:port" of each primary a Cluster client knows (its topology as it last read it); null when not a Cluster. */
export function primaryAddresses(client: RedisClientLike): string[] | null {
  const c = client as Partial<IoredisLike & NodeRedisLike>;
  if (c.isCluster === true && typeof c.nodes === 'function') return c.nodes('master').map((n) => `${n.options?.host}:${n.options?.port}`);
  if (Array.isArray(c.masters)) return c.masters.map((m) => `${(m as { host?: string }).host}:${(m as { port?: number }).port}`);
  return null;
}

/**
 * The connection of the primary serving `slot` in a Cluster client's slot table, as a client of
 * its own (a call on it follows no redirect); null when not a Cluster or not known. ioredis: the
 * `nodes('master')` entry whose address is the slot's; node-redis: `nodeClient` of the slot's master.
 */
export function primaryFor(client: RedisClientLike, slot: number): RedisClientLike | Promise<RedisClientLike> | null {
  const c = client as Partial<IoredisLike & NodeRedisLike>;
  if (!Array.isArray(c.slots)) return null;
  const entry: unknown = c.slots[slot];
  if (c.isCluster === true && typeof c.nodes === 'function') {
    const address = Array.isArray(entry) ? entry[0] : undefined;
    if (typeof address !== 'string') return null;
    const node = c.nodes('master').find((n) => `${n.options?.host}:${n.options?.port}` === address);
    return node === undefined ? null : (node as unknown as RedisClientLike);
  }
  const master = (entry as { master?: unknown } | undefined)?.master;
  if (master === undefined || typeof c.nodeClient !== 'function') return null;
  return c.nodeClient(master) as unknown as RedisClientLike | Promise<RedisClientLike>;
}

/** The in-memory twin (src/twin/client.ts): scripts are found by SHA, so NOSCRIPT never happens. */
function twinTransport(c: TwinLike): ScriptTransport {
  return {
    kind: 'twin',
    evalsha: (sha, keys, argv) => c.redlimitTwinEval(sha, keys, argv),
    eval: () => Promise.reject(new Error('redlimit: the twin runs only generated scripts, by SHA')),
    scriptLoad: async () => {},
    fcall: () => Promise.reject(new Error('redlimit: the twin has no Functions library')),
    functionLoad: async () => {},
  };
}
