import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpRateLimiter } from './core.js';

export interface OpsOptions {
  /** Decides who may use the endpoint (a token check, mTLS, an internal network...). Required. */
  authorize: (req: Request) => boolean | Promise<boolean>;
  /** Where the endpoint lives. Default `/ratelimit`. */
  basePath?: string;
}

/**
 * The operations endpoint, opt-in and behind your own authorization:
 * - `GET  {base}/health` — Redis reachable per rule (a peek that reached Redis), breaker states;
 *   503 when any rule's Redis is not reachable.
 * - `GET  {base}/subjects/:key` — that key's usage per rule and limit (read-only peeks).
 * - `POST {base}/subjects/:key/reset` — back to full on every rule.
 * - `POST {base}/breakers/reset` — close every breaker now.
 * - `GET  {base}/counters` — decisions since start by rule, outcome and source.
 * A fetch-style handler: answers null for a request that is not its own.
 */
export function opsHandler(http: HttpRateLimiter, o: OpsOptions) {
  const base = (o.basePath ?? '/ratelimit').replace(/\/$/, '');
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' } });
  const rules = () => http.rules.filter((r) => r.limiter !== null);
  return async (req: Request): Promise<Response | null> => {
    const path = new URL(req.url).pathname;
    if (path !== base && !path.startsWith(`${base}/`)) return null;
    if (!(await o.authorize(req))) return json(401, { error: 'unauthorized' });
    const route = path.slice(base.length);
    const subject = /^\/subjects\/([^/]+)(\/reset)?$/.exec(route);
    if (req.method === 'GET' && route === '/health') {
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const r of rules()) {
        const reachable = (await r.limiter!.peek('__health__')).source === 'redis';
        const stats = r.limiter!.stats();
        if (!reachable && stats.breaker) ok = false;
        out[r.name] = { redis: stats.breaker ? (reachable ? 'up' : 'down') : 'none', breaker: stats.breaker?.state ?? null, nodes: Object.fromEntries(Object.entries(stats.nodes).map(([n, s]) => [n, s.state])), warnings: stats.warnings };
      }
      return json(ok ? 200 : 503, { ok, rules: out });
    }
    if (req.method === 'GET' && subject && !subject[2]) {
      const key = decodeURIComponent(subject[1]!);
      const out: Record<string, unknown> = {};
      for (const r of rules()) {
        const d = await r.limiter!.peek(key);
        out[r.name] = { source: d.source, limits: d.limits.map((l) => ({ name: l.name, remaining: l.remaining, limit: l.limit, resetAfterMs: l.resetAfterMs })) };
      }
      return json(200, { key, rules: out });
    }
    if (req.method === 'POST' && subject && subject[2]) {
      const key = decodeURIComponent(subject[1]!);
      await Promise.all(rules().map((r) => r.limiter!.reset(key)));
      return json(200, { key, reset: rules().map((r) => r.name) });
    }
    if (req.method === 'POST' && route === '/breakers/reset') {
      const reset: string[] = [];
      for (const r of rules()) {
        r.limiter!.breaker?.reset();
        for (const b of r.limiter!.nodeBreakers()) b.reset();
        reset.push(r.name);
      }
      return json(200, { reset });
    }
    if (req.method === 'GET' && route === '/counters') return json(200, http.counters);
    return json(404, { error: 'not found' });
  };
}

/** The operations endpoint as `(req, res, next)` middleware for Node, Express and Connect. */
export function opsMiddleware(http: HttpRateLimiter, o: OpsOptions) {
  const handle = opsHandler(http, o);
  return (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    void (async () => {
      const chunks: Buffer[] = [];
      if (req.method === 'POST') for await (const c of req) chunks.push(c as Buffer);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
      const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, { method: req.method, headers });
      const response = await handle(request);
      if (!response) return next ? next() : ((res.statusCode = 404), res.end());
      res.statusCode = response.status;
      response.headers.forEach((v, k) => res.setHeader(k, v));
      res.end(await response.text());
    })().catch((err: unknown) => (next ? next(err) : ((res.statusCode = 500), res.end())));
  };
}
