import type * as PromClient from 'prom-client';
import type { MetricsHook } from '../client/metrics.js';

const STATE = { closed: 0, 'half-open': 1, open: 2 } as const;

/**
 * A MetricsHook that records into prom-client (an optional peer dependency: pass the module you
 * use, so its registry is yours). Metric names follow Prometheus and OpenTelemetry conventions:
 *   redlimit_decisions_total{limiter,outcome,source}
 *   redlimit_decision_duration_seconds{limiter,source}     (histogram)
 *   redlimit_redis_errors_total{limiter,reason}
 *   redlimit_breaker_state{limiter}                         (0 closed, 1 half-open, 2 open)
 *   redlimit_fallback_decisions_total{limiter} and redlimit_fail_open_decisions_total{limiter}
 *   redlimit_near_limit_decisions_total{limiter,limit}       (admitted with <= 20% left)
 * dashboards/redlimit-grafana.json charts them.
 */
export function prometheusMetrics(prom: typeof PromClient, options: { registry?: PromClient.Registry; prefix?: string } = {}): MetricsHook {
  const registers = options.registry ? [options.registry] : undefined;
  const p = options.prefix ?? 'redlimit_';
  const decisions = new prom.Counter({ name: `${p}decisions_total`, help: 'Rate-limit decisions.', labelNames: ['limiter', 'outcome', 'source'], registers });
  const duration = new prom.Histogram({
    name: `${p}decision_duration_seconds`,
    help: 'Time to decide, from call to answer.',
    labelNames: ['limiter', 'source'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers,
  });
  const errors = new prom.Counter({ name: `${p}redis_errors_total`, help: 'Redis calls that failed, by reason.', labelNames: ['limiter', 'reason'], registers });
  const breaker = new prom.Gauge({ name: `${p}breaker_state`, help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open.', labelNames: ['limiter'], registers });
  const fallback = new prom.Counter({ name: `${p}fallback_decisions_total`, help: 'Decisions made by the in-memory fallback.', labelNames: ['limiter'], registers });
  const failOpen = new prom.Counter({ name: `${p}fail_open_decisions_total`, help: 'Calls allowed because Redis could not decide.', labelNames: ['limiter'], registers });
  const nearLimit = new prom.Counter({ name: `${p}near_limit_decisions_total`, help: 'Admitted decisions with at most 20% of the limit left.', labelNames: ['limiter', 'limit'], registers });
  return {
    decision(e) {
      decisions.inc({ limiter: e.limiter, outcome: e.outcome, source: e.source });
      duration.observe({ limiter: e.limiter, source: e.source }, e.latencyMs / 1000);
      if (e.source === 'fallback') fallback.inc({ limiter: e.limiter });
      if (e.source === 'fail-open') failOpen.inc({ limiter: e.limiter });
      if (e.nearLimit) nearLimit.inc({ limiter: e.limiter, limit: e.limit ?? '' });
    },
    redisError(e) {
      errors.inc({ limiter: e.limiter, reason: e.reason });
    },
    breakerState(e) {
      breaker.set({ limiter: e.limiter }, STATE[e.state]);
    },
  };
}
