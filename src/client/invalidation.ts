import type { RedisClientLike } from '../runtime/adapters.js';
import { INVALIDATION_CHANNEL, REFUND_CHANNEL, subscribe, type SubscribeOptions, type Subscription } from '../runtime/pubsub.js';

export interface InvalidationOptions {
  /**
   * Only keys starting with this reach the callback (a limiter's key prefix). Default: every key.
   * Keys arrive as the limiter names them: an ioredis client's `keyPrefix` is taken off first.
   */
  prefix?: string;
  /**
   * Called when `healthy()` changes. On a change to true, invalidations may have been missed
   * while it was false: drop everything cached.
   */
  onHealthChange?: (healthy: boolean) => void;
  /** For the shared subscription; the first Invalidation on a client decides (like breakerFor). */
  heartbeatMs?: number;
}

/**
 * What happened to a key: `replaced` — its state was reset, deleted or a block set or lifted
 * (nothing held about it stays true); `refund` — units were given back (a cached denial may pass
 * now, units held elsewhere stay valid).
 */
export type ChangeKind = 'replaced' | 'refund';

interface Shared {
  subscription: Subscription;
  members: Set<Invalidation>;
}

/**
 * An ioredis `keyPrefix` is added to every key the client sends, so the scripts publish the key
 * with it; the limiter knows the key without it.
 */
export function keyPrefixOf(client: RedisClientLike): string {
  const o = (client as { options?: { keyPrefix?: unknown; redisOptions?: { keyPrefix?: unknown } } }).options;
  const p = o?.keyPrefix ?? o?.redisOptions?.keyPrefix;
  return typeof p === 'string' ? p : '';
}

/** One subscription per Redis client, shared by every limiter on it. */
const shared = new WeakMap<object, Shared>();

function join(client: RedisClientLike, member: Invalidation, heartbeatMs: number | undefined): Shared {
  let s = shared.get(client);
  if (!s) {
    const members = new Set<Invalidation>();
    const options: SubscribeOptions = {
      onHealthChange: (healthy) => {
        for (const m of members) m.healthChanged(healthy);
      },
      ...(heartbeatMs !== undefined ? { heartbeatMs } : {}),
    };
    // Every message, on our channels or a keyevent channel, is one key name.
    const keyPrefix = keyPrefixOf(client);
    const subscription = subscribe(client, [INVALIDATION_CHANNEL, REFUND_CHANNEL], (channel, raw) => {
      if (!raw.startsWith(keyPrefix)) return; // another application's key on the same server
      const key = raw.slice(keyPrefix.length);
      const kind: ChangeKind = channel === REFUND_CHANNEL ? 'refund' : 'replaced';
      for (const m of members) m.deliver(key, kind);
    }, options);
    s = { subscription, members };
    shared.set(client, s);
  }
  s.members.add(member);
  return s;
}

/**
 * What a limiter owns to hear about state changed elsewhere: reset, block and refund scripts run
 * by any process (they PUBLISH the key on INVALIDATION_CHANNEL), and DEL/UNLINK by hand when the
 * server sends keyspace events. Nothing happens until `start()`; `close()` leaves the shared
 * subscription to the other limiters on the client and closes it with the last one.
 */
export class Invalidation {
  private joined: Shared | undefined;
  private closed = false;

  constructor(
    private readonly client: RedisClientLike,
    private readonly onKey: (key: string, kind: ChangeKind) => void,
    private readonly options: InvalidationOptions = {},
  ) {}

  /** Joins (or opens) the client's subscription. Idempotent; a no-op after close(). Never throws because of Redis. */
  start(): void {
    if (this.joined || this.closed) return;
    this.joined = join(this.client, this, this.options.heartbeatMs);
  }

  /** The subscription is up: a change made anywhere reaches `onKey` (see INVALIDATION_CHANNEL). */
  healthy(): boolean {
    return this.joined?.subscription.healthy() ?? false;
  }

  /** Deletions by hand (DEL/UNLINK) reach `onKey` too: the server sends keyspace events (standalone only). */
  keyEvents(): boolean {
    return this.joined?.subscription.keyEvents() ?? false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const s = this.joined;
    this.joined = undefined;
    if (!s) return;
    s.members.delete(this);
    if (s.members.size === 0 && shared.get(this.client) === s) {
      shared.delete(this.client);
      await s.subscription.close();
    }
  }

  /** @internal */
  deliver(key: string, kind: ChangeKind): void {
    if (this.closed) return;
    if (this.options.prefix !== undefined && !key.startsWith(this.options.prefix)) return;
    try {
      this.onKey(key, kind);
    } catch {
      // one limiter's callback failing must not keep the key from the others
    }
  }

  /** @internal */
  healthChanged(healthy: boolean): void {
    if (this.closed) return;
    try {
      this.options.onHealthChange?.(healthy);
    } catch {
      // as above
    }
  }
}
