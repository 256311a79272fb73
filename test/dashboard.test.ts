import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as prom from 'prom-client';
import { createRateLimiter } from '../src/index.js';
import { prometheusMetrics } from '../src/metrics/prometheus.js';
import { repoRoot } from './support/temp-scripts.js';

describe('the Grafana dashboard', () => {
  it('parses, and every query names only metrics the Prometheus adapter exports (with data behind them)', async () => {
    const dashboard = JSON.parse(readFileSync(`${repoRoot}/dashboards/redlimit-grafana.json`, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[]; templating: { list: { query?: string }[] } };
    const registry = new prom.Registry();
    const rl = createRateLimiter({ limits: { name: 'r', algo: 'gcra', limit: 5, periodMs: 60_000 }, metrics: prometheusMetrics(prom, { registry }) });
    for (let i = 0; i < 6; i++) await rl.limit('a'); // allowed, near the limit, then denied
    await rl.close();
    const exported = new Set<string>();
    for (const m of await registry.getMetricsAsJSON()) {
      exported.add(m.name);
      if (m.type === ('histogram' as never)) for (const s of ['_bucket', '_sum', '_count']) exported.add(m.name + s);
    }
    const exprs = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...dashboard.templating.list.flatMap((v) => (v.query ? [v.query] : []))];
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(7);
    const named = new Set(exprs.flatMap((e) => e.match(/\bredlimit_[a-z_]+/g) ?? []));
    for (const name of named) expect(exported, name).toContain(name);
    // Every exported metric is charted somewhere.
    for (const name of exported) if (!/_(sum|count)$/.test(name)) expect([...named].some((n) => n === name || `${n}` === `${name}_bucket`) || named.has(`${name}_bucket`), name).toBe(true);
    const near = (await registry.getSingleMetric('redlimit_near_limit_decisions_total')!.get()).values;
    expect(near.reduce((s, v) => s + v.value, 0)).toBe(2); // admitted with 1 and 0 of 5 left; the 6th is a denial, not counted
  });
});
