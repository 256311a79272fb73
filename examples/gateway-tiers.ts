/**
 * Kaizen-style gateway check: minute / hour / day tiers across user, team and org in one atomic
 * call, a fail-open switch for when Redis is down, and Prometheus metrics.
 */
import type * as PromClient from 'prom-client';
import { createRateLimiter, type Decision, type RateLimiter } from '../src/index.js';
import { prometheusMetrics } from '../src/metrics/prometheus.js';

export interface GatewayOptions {
  redis?: object;
  failOpen: boolean;
  prom?: typeof PromClient;
  registry?: PromClient.Registry;
}

export function createGateway(o: GatewayOptions): RateLimiter {
  return createRateLimiter({
    redis: o.redis,
    name: 'gateway',
    prefix: 'gw',
    limits: [
      { name: 'user_minute', algo: 'gcra', limit: 60, periodMs: 60_000, burst: 90 },
      { name: 'team_hour', algo: 'sliding_window', limit: 2_000, periodMs: 3_600_000, scope: 'team' },
      { name: 'org_day', algo: 'quota', limit: 20_000, unit: 'day', scope: 'org' },
    ],
    onRedisFailure: o.failOpen ? 'open' : 'fallback',
    metrics: o.prom ? prometheusMetrics(o.prom, { registry: o.registry }) : undefined,
    timeoutMs: 50,
  });
}

/** The HTTP answer for a decision: 429 with Retry-After (seconds) and RateLimit headers. */
export function httpAnswer(d: Decision): { status: number; headers: Record<string, string> } {
  const headers: Record<string, string> = {
    'RateLimit-Limit': String(d.limit),
    'RateLimit-Remaining': String(d.remaining),
    'RateLimit-Reset': String(Math.ceil(d.resetAfterMs / 1000)),
  };
  if (d.allowed) return { status: 200, headers };
  if (d.retryAfterMs > 0) headers['Retry-After'] = String(Math.ceil(d.retryAfterMs / 1000));
  return { status: 429, headers };
}

export function check(gw: RateLimiter, user: string, team: string, org: string) {
  return gw.limit({ id: user, hashTag: org, scopes: { team, org } });
}
