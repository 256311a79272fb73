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

/** A short, bounded label for an error: its Redis error code or a failure kind. */
export function errorReason(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return 'timeout';
    const redisMessage = (err as { redisMessage?: string }).redisMessage;
    if (redisMessage && /does not hold/.test(redisMessage)) return 'wrongtype';
    const code = /^([A-Z]+)\b/.exec(redisMessage ?? err.message)?.[1];
    if (code && ['OOM', 'READONLY', 'NOSCRIPT', 'WRONGTYPE', 'LOADING', 'BUSY', 'MASTERDOWN', 'CLUSTERDOWN', 'TRYAGAIN', 'MOVED', 'ASK', 'NOREPLICAS', 'ERR'].includes(code)) return code.toLowerCase();
    if (/not ready|closed|offline|ECONNREFUSED|ECONNRESET|EPIPE|Connection|socket/i.test(err.message)) return 'connection';
  }
  return 'other';
}
