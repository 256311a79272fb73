import { transportFor, type RedisClientLike } from './adapters.js';

/**
 * The channel the reset, block and refund scripts publish each state key they change on (the
 * message is the key exactly as passed in KEYS). Stated in each of those scripts' headers.
 * PUBLISH takes no key, so a Cluster broadcasts it to every node: one subscription to any node
 * hears every shard.
 */
export const INVALIDATION_CHANNEL = 'redlimit:invalidate';
/** Where refund scripts announce a key they gave units back to (its state was not replaced). */
export const REFUND_CHANNEL = 'redlimit:refund';

/** The keyspace-event channels for deletions made by hand (DEL, UNLINK) in database `db`. */
export function keyEventChannels(db: number): string[] {
  return [`__keyevent@${db}__:del`, `__keyevent@${db}__:unlink`];
}

export interface SubscribeOptions {
  /**
   * Also subscribe to the keyspace events of deletions (standalone servers only: a Cluster node
   * reports only its own keys, and they are not broadcast). Default true.
   */
  keyEvents?: boolean;
  /** How often the subscribed connection is PINGed; one left unanswered a whole period makes it unhealthy. Default 1000. */
  heartbeatMs?: number;
  /** Called on every change of `healthy()`. A change to true means messages may have been missed before it. */
  onHealthChange?: (healthy: boolean) => void;
}

export interface Subscription {
  /** Subscribed and answering right now, on a connection of its own. */
  healthy(): boolean;
  /**
   * The server sends keyspace events for DEL/UNLINK (notify-keyspace-events holds E and g, or A),
   * as CONFIG GET said on the current connection; false when CONFIG is refused, on a Cluster and
   * while not connected.
   */
  keyEvents(): boolean;
  /** Stops for good: closes the connection and every timer. Never rejects. */
  close(): Promise<void>;
}

/** One dedicated subscriber connection, whatever the library; it never reconnects by itself. */
interface Conn {
  connect(): Promise<void>;
  configGet(name: string): Promise<string>;
  subscribe(channels: string[]): Promise<void>;
  ping(): Promise<unknown>;
  close(): void;
}

type Deliver = (channel: string, message: string) => void;
type ConnFactory = (attempt: number, deliver: Deliver, down: () => void) => Promise<Conn>;

const HEARTBEATS_BEFORE_RECONNECT = 10;
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;

/**
 * Subscribes to `channels` on a connection of its own made from `client` (ioredis 5/6 Redis or
 * Cluster, node-redis 5/6 client or cluster). Never throws and never rejects because of Redis:
 * while Redis is down it retries with backoff and `healthy()` is false. The subscription owns its
 * reconnects (the library's own are off on that connection) so that `healthy()` is true only
 * after a SUBSCRIBE the server confirmed on the current connection. Its socket and timers are
 * unref'd: it never keeps a process alive, closed or not. Throws UnsupportedClientError for a
 * client redlimit cannot use; the in-memory twin gets a subscription that is never healthy.
 */
export function subscribe(client: RedisClientLike, channels: readonly string[], onMessage: Deliver, options: SubscribeOptions = {}): Subscription {
  const kind = transportFor(client).kind;
  if (kind === 'twin') return { healthy: () => false, keyEvents: () => false, close: async () => {} };
  const c = client as { isCluster?: boolean; masters?: unknown };
  const cluster = c.isCluster === true || Array.isArray(c.masters);
  const factory: ConnFactory =
    kind === 'ioredis' ? (cluster ? ioredisClusterConn(client) : ioredisConn(client)) : cluster ? nodeRedisClusterConn(client) : nodeRedisConn(client);
  const wantKeyEvents = !cluster && options.keyEvents !== false;
  const all = [...new Set([...channels, ...(wantKeyEvents ? keyEventChannels(databaseOf(client)) : [])])];
  const heartbeatMs = Math.max(10, options.heartbeatMs ?? 1_000);

  let closed = false;
  let healthy = false;
  let keyEvents = false;
  let current: Conn | undefined;
  let attempts = 0;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let pingSince = 0; // heartbeats a PING has been outstanding; 0 = none

  const setHealthy = (value: boolean) => {
    if (healthy === value || (value && closed)) return;
    healthy = value;
    try {
      options.onHealthChange?.(value);
    } catch {
      // a listener's failure is not the subscription's
    }
  };
  const deliver: Deliver = (channel, message) => {
    if (closed) return;
    try {
      onMessage(channel, message);
    } catch {
      // same: never let a listener break the connection's parser
    }
  };
  const stopHeartbeat = () => {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
    pingSince = 0;
  };

  const retryLater = () => {
    if (closed) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** failures++);
    retryTimer = setTimeout(attempt, delay * (0.8 + 0.4 * Math.random()));
    retryTimer.unref();
  };
  const lost = (conn: Conn) => {
    if (conn !== current) return;
    current = undefined;
    stopHeartbeat();
    keyEvents = false;
    setHealthy(false);
    conn.close();
    retryLater();
  };

  const beat = (conn: Conn) => {
    if (conn !== current) return;
    if (pingSince > 0) {
      setHealthy(false); // a PING unanswered for a whole period: paused, hung or cut off
      if (++pingSince > HEARTBEATS_BEFORE_RECONNECT) lost(conn);
      return;
    }
    pingSince = 1;
    conn.ping().then(
      () => {
        if (conn !== current) return;
        pingSince = 0;
        setHealthy(true);
      },
      () => lost(conn),
    );
  };

  async function attempt(): Promise<void> {
    retryTimer = undefined;
    if (closed) return;
    let conn: Conn | undefined;
    try {
      conn = await factory(attempts++, deliver, () => conn && lost(conn));
      if (closed) {
        conn.close();
        return;
      }
      current = conn;
      await conn.connect();
      if (conn !== current) return;
      const flags = wantKeyEvents ? await conn.configGet('notify-keyspace-events').catch(() => '') : '';
      if (conn !== current) return;
      await conn.subscribe(all);
      if (conn !== current) return;
      keyEvents = /E/.test(flags) && /[gA]/.test(flags);
      failures = 0;
      setHealthy(true);
      heartbeat = setInterval(() => beat(conn!), heartbeatMs);
      heartbeat.unref();
    } catch {
      if (conn) lost(conn); // a no-op when its events got there first
      else retryLater(); // no node known yet (a Cluster not connected)
    }
  }
  void attempt();

  return {
    healthy: () => healthy,
    keyEvents: () => keyEvents && healthy,
    close: async () => {
      if (closed) return;
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = undefined;
      stopHeartbeat();
      const conn = current;
      current = undefined;
      healthy = false;
      keyEvents = false;
      conn?.close();
    },
  };
}

function databaseOf(client: RedisClientLike): number {
  const o = (client as { options?: { db?: unknown; database?: unknown } }).options;
  const db = o?.db ?? o?.database;
  return typeof db === 'number' && Number.isInteger(db) && db >= 0 ? db : 0;
}

/** The value of a CONFIG GET reply for one name: an array [name, value] (RESP2), a Map or a plain object (RESP3 / node-redis). */
function configValue(reply: unknown, name: string): string {
  if (Array.isArray(reply)) return String(reply[1] ?? '');
  if (reply instanceof Map) return String(reply.get(name) ?? '');
  if (reply && typeof reply === 'object') return String((reply as Record<string, unknown>)[name] ?? '');
  return '';
}

// ---- ioredis 5 / 6 ---------------------------------------------------------------------------

type IoredisConn = {
  duplicate(override: object): IoredisConn;
  connect(): Promise<void>;
  disconnect(): void;
  call(...args: string[]): Promise<unknown>;
  subscribe(...channels: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
  on(event: string, fn: (...args: never[]) => void): unknown;
  stream?: { unref?: () => void };
};

/** Ours: no reconnect, no replay, no auto-resubscribe; connects when asked. */
const IOREDIS_OVERRIDES = {
  lazyConnect: true,
  retryStrategy: null,
  reconnectOnError: null,
  autoResubscribe: false,
  autoResendUnfulfilledCommands: false,
  enableOfflineQueue: true,
  maxRetriesPerRequest: null,
};

function ioredisWrap(dup: IoredisConn, deliver: Deliver, down: () => void): Conn {
  dup.on('error', () => {});
  dup.on('message', (channel: string, message: string) => deliver(channel, message));
  dup.on('connect', () => dup.stream?.unref?.());
  dup.on('close', down);
  dup.on('end', down);
  return {
    connect: () => dup.connect(),
    configGet: async (name) => configValue(await dup.call('CONFIG', 'GET', name), name),
    subscribe: async (channels) => {
      await dup.subscribe(...channels);
    },
    ping: () => dup.ping(),
    close: () => {
      try {
        dup.disconnect();
      } catch {
        // already gone
      }
    },
  };
}

function ioredisConn(client: RedisClientLike): ConnFactory {
  return async (_attempt, deliver, down) => ioredisWrap((client as IoredisConn).duplicate(IOREDIS_OVERRIDES), deliver, down);
}

/** A connection of our own to one primary, a different one on each attempt. */
function ioredisClusterConn(client: RedisClientLike): ConnFactory {
  const cluster = client as { nodes(role: string): IoredisConn[] };
  return async (attempt, deliver, down) => {
    const nodes = cluster.nodes('master');
    if (nodes.length === 0) throw new Error('no cluster node known yet');
    return ioredisWrap(nodes[attempt % nodes.length]!.duplicate(IOREDIS_OVERRIDES), deliver, down);
  };
}

// ---- node-redis 5 / 6 ------------------------------------------------------------------------

type NodeRedisConn = {
  options?: { socket?: object };
  duplicate(overrides: object): NodeRedisConn;
  connect(): Promise<unknown>;
  destroy?: () => void;
  disconnect?: () => Promise<void>;
  unref?: () => void;
  sendCommand(args: string[]): Promise<unknown>;
  subscribe(channels: string[], listener: (message: string, channel: string) => void): Promise<unknown>;
  ping(): Promise<unknown>;
  on(event: string, fn: (...args: never[]) => void): unknown;
  readonly isReady?: boolean;
};

function nodeRedisWrap(source: NodeRedisConn, deliver: Deliver, down: () => void): Conn {
  const dup = source.duplicate({ socket: { ...source.options?.socket, reconnectStrategy: false } });
  let started = false;
  dup.on('error', () => {
    if (started && !dup.isReady) down();
  });
  dup.on('end', () => {
    if (started) down();
  });
  dup.unref?.();
  return {
    connect: async () => {
      started = true;
      await dup.connect();
    },
    configGet: async (name) => configValue(await dup.sendCommand(['CONFIG', 'GET', name]), name),
    subscribe: async (channels) => {
      await dup.subscribe(channels, (message, channel) => deliver(channel, message));
    },
    ping: () => dup.ping(),
    close: () => {
      try {
        if (dup.destroy) dup.destroy();
        else void dup.disconnect?.().catch(() => {});
      } catch {
        // already closed
      }
    },
  };
}

function nodeRedisConn(client: RedisClientLike): ConnFactory {
  return async (_attempt, deliver, down) => nodeRedisWrap(client as NodeRedisConn, deliver, down);
}

function nodeRedisClusterConn(client: RedisClientLike): ConnFactory {
  const cluster = client as { masters: unknown[]; nodeClient(node: unknown): NodeRedisConn | Promise<NodeRedisConn> };
  return async (attempt, deliver, down) => {
    const masters = cluster.masters;
    if (masters.length === 0) throw new Error('no cluster node known yet');
    const node = await cluster.nodeClient(masters[attempt % masters.length]);
    return nodeRedisWrap(node, deliver, down);
  };
}
