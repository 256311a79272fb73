import type { BreakerState } from './breaker.js';
import type { DecisionSource } from './decision.js';

/**
 * What a limiter reports, for any metrics system. Every method is optional. Names follow
 * OpenTelemetry conventions when an adapter maps them (redlimit.decisions, redlimit.decision.duration,
 * redlimit.redis.errors, redlimit.breaker.state).
 */
export interface MetricsHook {
  /**
   * Every decision. `nearLimit`: admitted with at most 20% of the reported limit left (the
   * subject is close to being denied); `limit` names that limit (null when none is known).
   */
  decision?(e: { limiter: string; outcome: 'allowed' | 'denied'; source: DecisionSource; latencyMs: number; limit: string | null; nearLimit: boolean }): void;
  redisError?(e: { limiter: string; reason: string }): void;
  breakerState?(e: { limiter: string; state: BreakerState }): void;
}

const REASONS: ReadonlySet<string> = new Set(['OOM', 'READONLY', 'NOSCRIPT', 'WRONGTYPE', 'WRONGSTATE', 'BADARG', 'LOADING', 'BUSY', 'MASTERDOWN', 'CLUSTERDOWN', 'TRYAGAIN', 'MOVED', 'ASK', 'NOREPLICAS', 'ERR']);
const CONNECTION_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);
/** What the clients reject with when there is no connection to send on (node-redis, ioredis). */
const CONNECTION_CLASSES: ReadonlySet<string> = new Set([
  'NotReadyError',
  'ClientClosedError',
  'ClientOfflineError',
  'SocketClosedUnexpectedlyError',
  'ConnectionTimeoutError',
  'DisconnectsClientError',
  'RootNodesUnavailableError',
  'ReconnectStrategyError',
  'MaxRetriesPerRequestError',
  'ClusterAllFailedError',
]);

/**
 * A short, bounded label for an error: its Redis error code (the reply's first word, from the
 * error's `redisCode`), or a failure kind, by error class and code only.
 */
export function errorReason(err: unknown): string {
  if (!(err instanceof Error)) return 'other';
  if (err.name === 'TimeoutError') return 'timeout';
  const redisCode = (err as { redisCode?: unknown }).redisCode;
  if (typeof redisCode === 'string') return REASONS.has(redisCode) ? redisCode.toLowerCase() : 'other';
  const sysCode = (err as { code?: unknown }).code;
  if (typeof sysCode === 'string' && CONNECTION_CODES.has(sysCode)) return 'connection';
  // ioredis rejects with a plain Error when the connection is gone ("Connection is closed.",
  // offline queue off): no reply, so no code. Replies all carry codes (handled above).
  if (CONNECTION_CLASSES.has(err.name) || CONNECTION_CLASSES.has(err.constructor.name) || err.constructor === Error) return 'connection';
  return 'other';
}
