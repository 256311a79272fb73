import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidConfigError, RedisUnavailableError, StateKeyError } from '../errors.js';
import { isCallerError } from '../client/failure.js';
import type { HttpRateLimiter } from './core.js';
import { requestPath } from './paths.js';
import { check, describe, isFunction, isPlainObject, refuseUnknownKeys } from './validate.js';

export interface OpsOptions {
  /** Decides who may use the endpoint (a token check, mTLS, an internal network...). Required. */
  authorize: (req: Request) => boolean | Promise<boolean>;
  /** Where the endpoint lives. Default `/ratelimit`. */
  basePath?: string;
}

/** A subject in the URL that no limiter could hold (see the key rules in client/keys.ts). */
function badSubject(key: string): string | null {
  if (key.length === 0 || key.length > 512) return 'a subject is 1 to 512 characters';
  if (key.includes('{') || key.includes('}')) return 'a subject has no { or }';
  if (!(key as unknown as { isWellFormed(): boolean }).isWellFormed()) return 'a subject is well-formed UTF-16';
  return null;
}

/**
 * The operations endpoint, opt-in and behind your own authorization:
 * - `GET  {base}/health` — Redis reachable per rule (a peek that reached Redis), breaker states;
 *   503 when any rule's Redis is not reachable.
 * - `GET  {base}/subjects/:key` — that key's usage per rule and limit (read-only peeks).
 * - `POST {base}/subjects/:key/reset` — back to full on every rule.
 * - `POST {base}/breakers/reset` — close every breaker now.
 * - `GET  {base}/counters` — decisions since start by rule, outcome and source.
 * A fetch-style handler: answers null for a request that is not its own. A malformed subject
 * (bad percent-encoding, braces, over 512 characters) is a 400, a known path with another method
 * a 405, a reset that cannot reach Redis a 503.
 */
export function opsHandler(http: HttpRateLimiter, o: OpsOptions) {
  const base = opsBase(o);
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers } });
  const rules = () => http.rules.filter((r) => r.limiter !== null);
  const routes: Array<{ pattern: RegExp; method: 'GET' | 'POST'; run: (m: RegExpExecArray) => Promise<Response> }> = [
    {
      pattern: /^\/health$/,
      method: 'GET',
      run: async () => {
        const out: Record<string, unknown> = {};
        let ok = true;
        for (const r of rules()) {
          const reachable = (await r.limiter!.peek('__health__')).source === 'redis';
          const stats = r.limiter!.stats();
          if (!reachable && stats.breaker) ok = false;
          out[r.name] = { redis: stats.breaker ? (reachable ? 'up' : 'down') : 'none', breaker: stats.breaker?.state ?? null, nodes: Object.fromEntries(Object.entries(stats.nodes).map(([n, s]) => [n, s.state])), warnings: stats.warnings };
        }
        return json(ok ? 200 : 503, { ok, rules: out });
      },
    },
    {
      pattern: /^\/subjects\/([^/]+)$/,
      method: 'GET',
      run: async (m) => {
        const key = m[1]!;
        const out: Record<string, unknown> = {};
        for (const r of rules()) {
          const d = await r.limiter!.peek(key);
          out[r.name] = { source: d.source, limits: d.limits.map((l) => ({ name: l.name, remaining: l.remaining, limit: l.limit, resetAfterMs: l.resetAfterMs })) };
        }
        return json(200, { key, rules: out });
      },
    },
    {
      pattern: /^\/subjects\/([^/]+)\/reset$/,
      method: 'POST',
      run: async (m) => {
        const key = m[1]!;
        await Promise.all(rules().map((r) => r.limiter!.reset(key)));
        return json(200, { key, reset: rules().map((r) => r.name) });
      },
    },
    {
      pattern: /^\/breakers\/reset$/,
      method: 'POST',
      run: async () => {
        const reset: string[] = [];
        for (const r of rules()) {
          r.limiter!.breaker?.reset();
          for (const b of r.limiter!.nodeBreakers()) b.reset();
          reset.push(r.name);
        }
        return json(200, { reset });
      },
    },
    { pattern: /^\/counters$/, method: 'GET', run: async () => json(200, http.counters) },
  ];
  return async (req: Request): Promise<Response | null> => {
    const path = new URL(req.url).pathname;
    if (path !== base && !path.startsWith(`${base}/`)) return null;
    if (!(await o.authorize(req))) return json(401, { error: 'unauthorized' });
    const route = path.slice(base.length);
    const found = routes.map((r) => ({ r, m: r.pattern.exec(route) })).filter((x) => x.m !== null);
    if (found.length === 0) return json(404, { error: 'not found' });
    const hit = found.find((x) => x.r.method === req.method || (x.r.method === 'GET' && req.method === 'HEAD'));
    if (!hit) return json(405, { error: 'method not allowed' }, { Allow: found.map((x) => x.r.method).join(', ') });
    const m = hit.m!;
    if (m[1] !== undefined) {
      let key: string;
      try {
        key = decodeURIComponent(m[1]);
      } catch {
        return json(400, { error: 'bad subject', detail: 'the subject is not valid percent-encoded UTF-8' });
      }
      const bad = badSubject(key);
      if (bad) return json(400, { error: 'bad subject', detail: bad });
      m[1] = key;
    }
    try {
      return await hit.r.run(m);
    } catch (err) {
      if (err instanceof StateKeyError) return json(409, { error: 'foreign state', detail: err.message });
      if (isCallerError(err)) return json(400, { error: 'bad request', detail: (err as Error).message });
      if (err instanceof RedisUnavailableError) return json(503, { error: 'redis unavailable', detail: err.message });
      throw err;
    }
  };
}

function opsBase(o: OpsOptions): string {
  if (!isPlainObject(o)) throw new InvalidConfigError(`operations endpoint options must be { authorize, basePath? }, got ${describe(o)}`);
  refuseUnknownKeys(o, ['authorize', 'basePath'], 'operations endpoint options');
  if (!isFunction(o.authorize)) throw new InvalidConfigError('operations endpoint: authorize (a function deciding who may use it) is required');
  check(o.basePath, (b) => typeof b === 'string' && b.startsWith('/'), 'basePath', 'a path starting with /');
  return (o.basePath ?? '/ratelimit').replace(/\/+$/, '');
}

/**
 * The operations endpoint as `(req, res, next)` middleware for Node, Express and Connect. A request
 * for another path goes on to `next()` untouched (its body is never read; the endpoint reads no
 * body). The Request handed to `authorize` has the URL `http://localhost` + the request target
 * (the Host header is not parsed; it is among the headers) and every header Node accepted that
 * a fetch Headers accepts too.
 */
export function opsMiddleware(http: HttpRateLimiter, o: OpsOptions) {
  const handle = opsHandler(http, o);
  const base = opsBase(o);
  return (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    const path = requestPath(req.url);
    const notOurs = () => (next ? next() : ((res.statusCode = 404), res.end()));
    if (path !== base && !path.startsWith(`${base}/`) && !path.includes('.') && !path.includes('%')) return void notOurs();
    void (async () => {
      let request: Request;
      try {
        const target = req.url ?? '/';
        const url = new URL(target.startsWith('/') ? `http://localhost${target}` : target);
        url.protocol = 'http:';
        url.host = 'localhost';
        const headers = new Headers();
        for (const [k, v] of Object.entries(req.headers)) {
          if (v === undefined) continue;
          try {
            headers.set(k, Array.isArray(v) ? v.join(', ') : v);
          } catch {
            // a value Node accepts but fetch refuses: not needed to route or authorize
          }
        }
        request = new Request(url, { method: req.method ?? 'GET', headers });
      } catch {
        if (path !== base && !path.startsWith(`${base}/`)) return notOurs();
        res.statusCode = 400;
        res.setHeader('Content-Type', 'application/json');
        return res.end(JSON.stringify({ error: 'bad request' }));
      }
      const response = await handle(request);
      if (!response) return notOurs();
      res.statusCode = response.status;
      response.headers.forEach((v, k) => res.setHeader(k, v));
      res.end(req.method === 'HEAD' ? undefined : await response.text());
    })().catch((err: unknown) => (next ? next(err) : ((res.statusCode = 500), res.end())));
  };
}
