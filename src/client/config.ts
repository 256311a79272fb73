import { InvalidConfigError } from '../errors.js';
import type { BreakerOptions, CircuitBreaker } from './breaker.js';
import type { MetricsHook } from './metrics.js';

/** One limit of a limiter. `name` keys it in costs, results and Redis keys. */
export type LimitSpec =
  | { name: string; algo: 'gcra' | 'token_bucket'; limit: number; periodMs: number; burst?: number; scope?: string }
  | { name: string; algo: 'fixed_window'; limit: number; periodMs: number; offsetMs?: number; scope?: string }
  | { name: string; algo: 'sliding_window' | 'sliding_log'; limit: number; periodMs: number; scope?: string }
  | { name: string; algo: 'quota'; limit: number; unit: 'day' | 'week' | 'month'; utcOffsetMs?: number; scope?: string };

export type OnRedisFailure = 'fallback' | 'open' | 'closed';

export interface RateLimiterOptions {
  /** ioredis Redis/Cluster or node-redis 5 client/cluster. Omit to run on the in-memory twin only. */
  redis?: object;
  /** Key prefix. Default "rl". Keys are `${prefix}:{hashTag}:${limit.name}:${scopeValue}`. */
  prefix?: string;
  /** Name for metrics. Default: the prefix. */
  name?: string;
  /** One limit or several (checked atomically together by the `multi` script). */
  limits: LimitSpec | LimitSpec[];
  /** What to answer when Redis cannot: the in-memory twin (default), allow, or deny. */
  onRedisFailure?: OnRedisFailure;
  /** With `fallback`: each instance enforces limit / fallbackShare (expected number of instances). Default 1. */
  fallbackShare?: number;
  /** With `closed`: throw RedisUnavailableError instead of answering denied. Default false. */
  throwWhenFailedClosed?: boolean;
  /** A breaker (shared as you like) or its options; default one breaker per Redis connection. */
  breaker?: CircuitBreaker | BreakerOptions;
  /** Deadline of one Redis round trip, ms. Default 100. */
  timeoutMs?: number;
  /** Answer ids that Redis denied locally until their exact retry time. Default true. */
  denyCache?: boolean | { maxEntries?: number };
  /** Take units from Redis in batches and spend them locally (opt-in). */
  lease?: { size: number; ttlMs?: number };
  metrics?: MetricsHook;
  /** Clock for local bookkeeping (deny cache, leases, fallback). Default Date.now. */
  clock?: () => number;
}

const ALGOS = ['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota'];
const NAME = /^[A-Za-z0-9_-]+$/;

function positiveInt(value: unknown, what: string, max = 1_000_000_000): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidConfigError(`${what} must be an integer between 1 and ${max}, got ${String(value)}`);
  }
}

/** Checks a configuration up front, with messages that say what to change. */
export function validateConfig(o: RateLimiterOptions): LimitSpec[] {
  if (!o || typeof o !== 'object') throw new InvalidConfigError('options must be an object');
  const limits = Array.isArray(o.limits) ? o.limits : o.limits ? [o.limits] : [];
  if (limits.length === 0) throw new InvalidConfigError('limits must name at least one limit');
  const names = new Set<string>();
  for (const l of limits) {
    if (!l || typeof l.name !== 'string' || !NAME.test(l.name)) throw new InvalidConfigError(`every limit needs a name of letters, digits, _ or - (got ${JSON.stringify(l?.name)})`);
    if (names.has(l.name)) throw new InvalidConfigError(`limit name ${l.name} is used twice`);
    names.add(l.name);
    if (!ALGOS.includes(l.algo)) throw new InvalidConfigError(`limit ${l.name}: algo must be one of ${ALGOS.join(', ')}, got ${JSON.stringify(l.algo)}`);
    positiveInt(l.limit, `limit ${l.name}: limit`, l.algo === 'quota' ? 1e15 : 1e9);
    if (l.algo === 'quota') {
      if (!['day', 'week', 'month'].includes(l.unit)) throw new InvalidConfigError(`limit ${l.name}: unit must be day, week or month`);
    } else positiveInt(l.periodMs, `limit ${l.name}: periodMs`, 31_622_400_000);
    if ((l.algo === 'gcra' || l.algo === 'token_bucket') && l.burst !== undefined) positiveInt(l.burst, `limit ${l.name}: burst`);
  }
  if (o.prefix !== undefined && (typeof o.prefix !== 'string' || o.prefix.length === 0 || /[{}]/.test(o.prefix))) {
    throw new InvalidConfigError('prefix must be a non-empty string without { or }');
  }
  if (o.onRedisFailure !== undefined && !['fallback', 'open', 'closed'].includes(o.onRedisFailure)) {
    throw new InvalidConfigError(`onRedisFailure must be fallback, open or closed, got ${JSON.stringify(o.onRedisFailure)}`);
  }
  if (o.fallbackShare !== undefined) positiveInt(o.fallbackShare, 'fallbackShare', 10_000);
  if (o.timeoutMs !== undefined) positiveInt(o.timeoutMs, 'timeoutMs', 60_000);
  if (o.lease) {
    positiveInt(o.lease.size, 'lease.size', 1_000_000);
    if (o.lease.ttlMs !== undefined) positiveInt(o.lease.ttlMs, 'lease.ttlMs', 3_600_000);
    const log = limits.find((l) => l.algo === 'sliding_log');
    if (log) throw new InvalidConfigError(`lease cannot be used with sliding_log limit ${log.name}: its units cannot be given back`);
  }
  return limits;
}
