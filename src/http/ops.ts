import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidConfigError, RedisUnavailableError, StateKeyError } from '../errors.js';
import { isCallerError } from '../client/failure.js';
import type { HttpRateLimiter } from './core.js';
import { requestPath } from './paths.js';
import { check, describe, isFunction, isPlainObject, refuseUnknownKeys } from './validate.js';
import type { PolicyStore } from '../policy/store.js';

export interface OpsOptions {
  /** Decides who may use the endpoint (a token check, mTLS, an internal network...). Required. */
  authorize: (req: Request) => boolean | Promise<boolean>;
  /** Where the endpoint lives. Default `/ratelimit`. */
  basePath?: string;
  /** A policy store (`createPolicyLimiter(...).policies`, or a PolicyStore) to manage under `{base}/policies`. */
  policies?: PolicyStore;
}

/** Largest request body the endpoint reads (a policy change): the 64 KiB document and its envelope. */
const MAX_BODY_BYTES = 128 * 1024;

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
 * With `policies`:
 * - `GET    {base}/policies` — names and the global version; `GET {base}/policies/:name` — current version;
 *   `GET {base}/policies/:name/history`; `GET {base}/policies/:name/diff?from=&to=`.
 * - `PUT    {base}/policies/:name` — body `{ policy, author, reason?, carryOver?, ifVersion? }`: a new version.
 * - `POST   {base}/policies/:name/rollback` — body `{ version, author, reason? }`.
 * - `DELETE {base}/policies/:name` — body `{ author, reason? }`.
 *   A refused policy is a 400 (nothing stored), an `ifVersion` that is not current a 409.
 * Policy rules (limits from the policy store): health reads the policy version (503 when Redis
 * does not answer); subjects and reset cover a rule whose policy limiter has its own
 * chain(subject), and report `{ resolvedPerRequest: true }` for one whose chain needs the request.
 * A fetch-style handler: answers null for a request that is not its own. A malformed subject
 * (bad percent-encoding, braces, over 512 characters) is a 400, a known path with another method
 * a 405, a reset that cannot reach Redis a 503.
 */
export function opsHandler(http: HttpRateLimiter, o: OpsOptions) {
  const base = opsBase(o);
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers } });
  const rules = () => http.rules.filter((r) => r.limiter !== null);
  // Policy rules: a subject's limits depend on its chain; without a request, only a policy
  // limiter with its own chain(subject) can say what they are.
  const policyRules = () => http.rules.filter((r) => r.policy !== null);
  const bySubject = () => policyRules().filter((r) => r.policy!.limiter.hasChain);
  const routes: Array<{ pattern: RegExp; method: 'GET' | 'POST' | 'PUT' | 'DELETE'; run: (m: RegExpExecArray, req: Request) => Promise<Response> }> = [
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
        for (const r of policyRules()) {
          const p = r.policy!.limiter;
          let timer: NodeJS.Timeout | undefined;
          const reachable = await Promise.race([p.policies.version().then(() => true, () => false), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), 1000)))]);
          clearTimeout(timer);
          if (!reachable) ok = false;
          const stats = p.stats();
          out[r.name] = { redis: reachable ? 'up' : 'down', policyVersion: stats.policyVersion, compiledLimiters: stats.compiledLimiters, corruptEntries: stats.corruptEntries, warnings: stats.warnings };
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
        for (const r of policyRules()) {
          if (!r.policy!.limiter.hasChain) {
            out[r.name] = { resolvedPerRequest: true };
            continue;
          }
          const d = await r.policy!.limiter.peek(key);
          out[r.name] = { source: d.source, policyVersion: d.policyVersion, policies: d.policies, limits: d.limits.map((l) => ({ name: l.name, remaining: l.remaining, limit: l.limit, resetAfterMs: l.resetAfterMs })) };
        }
        return json(200, { key, rules: out });
      },
    },
    {
      pattern: /^\/subjects\/([^/]+)\/reset$/,
      method: 'POST',
      run: async (m) => {
        const key = m[1]!;
        await Promise.all([...rules().map((r) => r.limiter!.reset(key)), ...bySubject().map((r) => r.policy!.limiter.reset(key))]);
        return json(200, { key, reset: [...rules(), ...bySubject()].map((r) => r.name) });
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
    ...(o.policies ? policyRoutes(o.policies, json) : []),
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
      return await hit.r.run(m, req);
    } catch (err) {
      if (err instanceof InvalidConfigError) return json(/ifVersion/.test(err.message) ? 409 : 400, { error: 'refused', detail: err.message.replace(/^redlimit: invalid config: /, '') });
      if (err instanceof StateKeyError) return json(409, { error: 'foreign state', detail: err.message });
      if (isCallerError(err)) return json(400, { error: 'bad request', detail: (err as Error).message });
      if (err instanceof RedisUnavailableError) return json(503, { error: 'redis unavailable', detail: err.message });
      throw err;
    }
  };
}

/** A request body up to MAX_BODY_BYTES (more is refused by the route as a bad body). */
async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return '{"tooLarge":true}';
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The policy routes: the name is in m[1] (checked like a subject, then by the store). */
function policyRoutes(store: PolicyStore, json: (status: number, body: unknown, headers?: Record<string, string>) => Response) {
  const body = async (req: Request): Promise<Record<string, unknown>> => {
    const text = await req.text();
    if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw new InvalidConfigError(`the body is over ${MAX_BODY_BYTES} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text || '{}');
    } catch {
      throw new InvalidConfigError('the body is not JSON');
    }
    if (!isPlainObject(parsed)) throw new InvalidConfigError('the body must be a JSON object');
    if ((parsed as { tooLarge?: unknown }).tooLarge === true) throw new InvalidConfigError(`the body is over ${MAX_BODY_BYTES} bytes`);
    return parsed as Record<string, unknown>;
  };
  const change = (b: Record<string, unknown>) => ({
    author: b.author as string,
    ...(b.reason !== undefined ? { reason: b.reason as string } : {}),
    ...(b.carryOver !== undefined ? { carryOver: b.carryOver as 'as-is' } : {}),
    ...(b.ifVersion !== undefined ? { ifVersion: b.ifVersion as number } : {}),
  });
  const int = (raw: string | null, what: string) => {
    if (raw === null || !/^\d+$/.test(raw)) throw new InvalidConfigError(`${what} must be a version number`);
    return Number(raw);
  };
  return [
    { pattern: /^\/policies$/, method: 'GET' as const, run: async () => json(200, { version: await store.version(), names: await store.list() }) },
    {
      pattern: /^\/policies\/([^/]+)$/,
      method: 'GET' as const,
      run: async (m: RegExpExecArray) => {
        const v = await store.get(m[1]!);
        return v ? json(200, v) : json(404, { error: 'no such policy', name: m[1] });
      },
    },
    { pattern: /^\/policies\/([^/]+)\/history$/, method: 'GET' as const, run: async (m: RegExpExecArray) => json(200, await store.history(m[1]!)) },
    {
      pattern: /^\/policies\/([^/]+)\/diff$/,
      method: 'GET' as const,
      run: async (m: RegExpExecArray, req: Request) => {
        const q = new URL(req.url).searchParams;
        return json(200, await store.diff(m[1]!, int(q.get('from'), 'from'), int(q.get('to'), 'to')));
      },
    },
    {
      pattern: /^\/policies\/([^/]+)$/,
      method: 'PUT' as const,
      run: async (m: RegExpExecArray, req: Request) => {
        const b = await body(req);
        return json(200, { name: m[1], version: await store.set(m[1]!, b.policy as never, change(b)) });
      },
    },
    {
      pattern: /^\/policies\/([^/]+)\/rollback$/,
      method: 'POST' as const,
      run: async (m: RegExpExecArray, req: Request) => {
        const b = await body(req);
        return json(200, { name: m[1], version: await store.rollback(m[1]!, b.version as number, change(b)) });
      },
    },
    {
      pattern: /^\/policies\/([^/]+)$/,
      method: 'DELETE' as const,
      run: async (m: RegExpExecArray, req: Request) => json(200, { name: m[1], version: await store.remove(m[1]!, change(await body(req))) }),
    },
  ];
}

function opsBase(o: OpsOptions): string {
  if (!isPlainObject(o)) throw new InvalidConfigError(`operations endpoint options must be { authorize, basePath? }, got ${describe(o)}`);
  refuseUnknownKeys(o, ['authorize', 'basePath', 'policies'], 'operations endpoint options');
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
        const method = req.method ?? 'GET';
        const body = (method === 'PUT' || method === 'POST' || method === 'DELETE') && o.policies && (path === `${base}/policies` || path.startsWith(`${base}/policies/`)) ? await readBody(req) : undefined;
        request = new Request(url, { method, headers, ...(body !== undefined ? { body } : {}) });
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
