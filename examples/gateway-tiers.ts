/**
 * Kaizen-style gateway check: minute / hour / day tiers across user, team and org in one atomic
 * call, a fail-open switch for when Redis is down, and Prometheus metrics.
 */
import type * as PromClient from 'prom-client';
import { createRateLimiter, rateLimitHeaders, type Decision, type LimitSpec, type RateLimiter } from 'redlimit';
import { prometheusMetrics } from 'redlimit/prometheus';

export interface GatewayOptions {
  redis?: object;
  failOpen: boolean;
  prom?: typeof PromClient;
  registry?: PromClient.Registry;
}

const tiers: LimitSpec[] = [
  { name: 'user_minute', algo: 'gcra', limit: 60, periodMs: 60_000, burst: 90 },
  { name: 'team_hour', algo: 'sliding_window', limit: 2_000, periodMs: 3_600_000, scope: 'team' },
  { name: 'org_day', algo: 'quota', limit: 20_000, unit: 'day', scope: 'org' },
];

export function createGateway(o: GatewayOptions): RateLimiter {
  return createRateLimiter({
    redis: o.redis,
    name: 'gateway',
    prefix: 'gw',
    limits: tiers,
    onRedisFailure: o.failOpen ? 'open' : 'fallback',
    metrics: o.prom ? prometheusMetrics(o.prom, { registry: o.registry }) : undefined,
    timeoutMs: 50,
  });
}

/** The HTTP answer for a decision: status, draft-6 RateLimit headers and Retry-After when denied. */
export function httpAnswer(d: Decision): { status: number; headers: Record<string, string> } {
  const headers = rateLimitHeaders('draft-6', d, tiers);
  if (d.allowed) return { status: 200, headers };
  return { status: 429, headers: { ...headers, 'Retry-After': String(Math.max(1, Math.ceil(d.retryAfterMs / 1000))) } };
}

export function check(gw: RateLimiter, user: string, team: string, org: string) {
  return gw.limit({ id: user, hashTag: org, scopes: { team, org } });
}
