import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from '../client/decision.js';
import type { Subject } from '../client/keys.js';
import type { Cost, RateLimiter } from '../client/limiter.js';
import { HttpRateLimiter, type HttpRateLimitOptions, type HttpRequestInfo, type Outcome } from './core.js';
import { requestPath, type PathMatching } from './paths.js';

/** One core, given directly or built from options. */
function core(o: HttpRateLimiter | HttpRateLimitOptions): HttpRateLimiter {
  return o instanceof HttpRateLimiter ? o : new HttpRateLimiter(o);
}

/**
 * A Node request as the core sees it. Rules match paths as any router might (`pathMatching`
 * omitted: Express, Connect and @koa/router fold case and ignore a trailing slash by default,
 * whatever an app setting says for its own router; hand-written handlers often parse with WHATWG
 * URL) unless the adapter knows the router.
 */
export function nodeRequest(req: IncomingMessage, raw: unknown = req, pathMatching?: PathMatching): HttpRequestInfo {
  return {
    method: req.method ?? 'GET',
    path: requestPath((req as { originalUrl?: string }).originalUrl ?? req.url),
    ...(pathMatching ? { pathMatching } : {}),
    header: (name) => {
      const v = req.headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(', ') : v;
    },
    remoteAddress: req.socket?.remoteAddress,
    raw,
  };
}

/**
 * Gives a held concurrency slot back when a Node response closes: sent in full, or its client
 * gone (aborted, reset) — whichever comes first; at once if it has closed already.
 */
function releaseOnClose(res: { closed?: boolean; destroyed?: boolean; once?: (event: 'close', fn: () => void) => unknown }, release: (() => Promise<void>) | undefined): void {
  if (!release) return;
  if (res.closed || res.destroyed || typeof res.once !== 'function') void release();
  else res.once('close', () => void release());
}

/**
 * A body that gives the slot back when it has been read to its end, fails, or is cancelled (the
 * client went away). Chunks pass through as they are, one read per pull.
 */
function releasingBody(body: ReadableStream<Uint8Array>, release: () => Promise<void>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (err) {
          void release();
          ctrl.error(err);
          return;
        }
        if (chunk.done) {
          void release();
          ctrl.close();
        } else ctrl.enqueue(chunk.value);
      },
      cancel(reason) {
        void release();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * A fetch Response whose slot is given back when its body is done: at once without a body (or
 * for HEAD, whose body no one reads), else when the body ends or is cancelled. A Response that
 * cannot be rebuilt (a 101 upgrade) gives it back at once.
 */
function releasedWith(res: Response, release: () => Promise<void>, method: string): Response {
  if (res.body === null || method === 'HEAD') {
    void release();
    return res;
  }
  try {
    return new Response(releasingBody(res.body, release), res);
  } catch {
    void release();
    return res;
  }
}

/** Gives the slot back when the client aborts the request (runtimes that abort `request.signal`). */
function releaseOnAbort(signal: AbortSignal | undefined, release: (() => Promise<void>) | undefined): void {
  if (!release || !signal) return;
  if (signal.aborted) void release();
  else signal.addEventListener('abort', () => void release(), { once: true });
}

/** Writes an outcome on a Node response, unless someone has answered already. */
function writeNode(res: ServerResponse, outcome: Outcome): boolean {
  if (res.headersSent || res.writableEnded) return false;
  for (const [k, v] of Object.entries(outcome.headers)) res.setHeader(k, v);
  if (outcome.pass) return true;
  res.statusCode = outcome.status;
  res.end(outcome.body);
  return false;
}

/**
 * `(req, res, next)` middleware for Node's http server, Express and Connect. Admitted requests go
 * on to `next()`; denied ones are answered here. If the response was already sent when the
 * decision arrives (a timeout handler, another middleware), nothing is written. An error in a
 * user callback goes to `next(err)`; without `next`, a 500. A concurrency slot is given back on
 * the response's 'close': sent in full, or the client gone (even while the handler still runs).
 */
export function nodeRateLimit(options: HttpRateLimiter | HttpRateLimitOptions) {
  const limiter = core(options);
  const middleware = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    limiter.handle(nodeRequest(req)).then(
      (outcome) => {
        if (outcome.pass) releaseOnClose(res, outcome.release);
        if (writeNode(res, outcome)) next?.();
      },
      (err: unknown) => {
        if (next) next(err);
        else if (!res.headersSent) {
          res.statusCode = 500;
          res.end();
        }
      },
    );
  };
  return Object.assign(middleware, { limiter });
}

/** The same middleware under the name Express users look for. */
export const expressRateLimit = nodeRateLimit;

interface FastifyLike {
  /** Fastify's options after validation; its router's path options live here (top level or routerOptions). */
  initialConfig?: FastifyRouterConfig & { routerOptions?: FastifyRouterConfig };
  addHook(name: 'onRequest', hook: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>): unknown;
  addHook(name: 'onResponse', hook: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>): unknown;
  addHook(name: 'onClose', hook: () => Promise<void>): unknown;
}
interface FastifyRouterConfig {
  caseSensitive?: boolean;
  ignoreTrailingSlash?: boolean;
  ignoreDuplicateSlashes?: boolean;
  useSemicolonDelimiter?: boolean;
}

/** How this Fastify instance's router (find-my-way) matches paths: it decodes once and never resolves dot segments. */
function fastifyMatching(f: FastifyLike): PathMatching | undefined {
  const c = f.initialConfig;
  if (!c) return undefined;
  const r = c.routerOptions ?? {};
  const on = (k: keyof FastifyRouterConfig) => r[k] === true || c[k] === true;
  return { caseInsensitive: r.caseSensitive === false || c.caseSensitive === false, ignoreTrailingSlash: on('ignoreTrailingSlash'), ignoreDuplicateSlashes: on('ignoreDuplicateSlashes'), semicolonDelimiter: on('useSemicolonDelimiter'), resolveDotSegments: false };
}

interface FastifyRequestLike {
  raw: IncomingMessage;
  url: string;
  method: string;
  routeOptions?: { url?: string };
}
interface FastifyReplyLike {
  sent: boolean;
  raw?: ServerResponse;
  header(name: string, value: string): unknown;
  code(status: number): FastifyReplyLike;
  send(body: string): unknown;
}

/**
 * A Fastify plugin: an `onRequest` hook in the context that registers it.
 * `app.register(fastifyRateLimit, options)` at the root limits every route of the app (the plugin
 * is marked `skip-override`, as fastify-plugin does, so it is not encapsulated in a child of its
 * own); registered inside one of your plugins, it limits only that plugin's routes.
 * `await fastifyRateLimit(app, options)` does the same as registering. Rules match paths as this
 * instance's router does (caseSensitive, ignoreTrailingSlash, ignoreDuplicateSlashes,
 * useSemicolonDelimiter; percent-escapes decoded once). A concurrency slot is given back in
 * `onResponse` (error replies too), or on the raw response's 'close' when the client is gone first.
 */
export async function fastifyRateLimit(fastify: FastifyLike, options: HttpRateLimiter | HttpRateLimitOptions): Promise<void> {
  const limiter = core(options);
  const matching = fastifyMatching(fastify);
  const held = new WeakMap<object, () => Promise<void>>();
  fastify.addHook('onRequest', async (request, reply) => {
    const outcome = await limiter.handle(nodeRequest(request.raw, request, matching));
    if (outcome.pass && outcome.release) {
      // Given back once: onResponse (the reply sent, an error reply too), or the raw response's
      // close (the client gone before a reply; also after a reply, a no-op by then).
      held.set(request, outcome.release);
      releaseOnClose(reply.raw ?? {}, outcome.release);
    }
    if (reply.sent) return;
    for (const [k, v] of Object.entries(outcome.headers)) reply.header(k, v);
    if (!outcome.pass) return reply.code(outcome.status).send(outcome.body);
    return undefined;
  });
  fastify.addHook('onResponse', async (request) => {
    await held.get(request)?.();
  });
  if (!(options instanceof HttpRateLimiter)) fastify.addHook('onClose', () => limiter.close());
}
Object.assign(fastifyRateLimit, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'redlimit' });

/**
 * A fetch Request as the core sees it (Hono, Next.js route handlers, Bun, Deno). Its URL is
 * already WHATWG-parsed (dot segments resolved); rules match as any router might unless
 * `pathMatching` says how the router matches.
 */
export function fetchRequest(req: Request, remoteAddress?: string, pathMatching?: PathMatching): HttpRequestInfo {
  const url = new URL(req.url);
  return { method: req.method, path: url.pathname, ...(pathMatching ? { pathMatching } : {}), header: (name) => req.headers.get(name) ?? undefined, remoteAddress, raw: req };
}

/**
 * Adds headers to a finished fetch Response: in place (`inPlace`) unless its headers are
 * immutable (a Response from fetch()), else on a copy. Null when it can be neither (a 101 upgrade
 * cannot be copied): then it keeps its own headers.
 */
function withHeaders(res: Response, headers: Record<string, string>, inPlace: boolean): Response | null {
  try {
    if (!inPlace) throw new TypeError('copy');
    for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
    return res;
  } catch {
    try {
      const copy = new Response(res.body, res);
      for (const [k, v] of Object.entries(headers)) copy.headers.set(k, v);
      return copy;
    } catch {
      return null;
    }
  }
}

function toResponse(outcome: Outcome & { pass: false }): Response {
  return new Response(outcome.body, { status: outcome.status, headers: outcome.headers });
}

/**
 * Wraps a fetch-style handler `(req) => Response`: denied requests get their 429 here, admitted
 * ones the handler's response with the rate-limit headers added. `remoteAddress` tells the
 * client's address where the runtime knows it (e.g. Bun's `server.requestIP(req)`). A
 * concurrency slot is given back when the Response's body has been read to its end or cancelled
 * (a streamed body holds it while it streams), at once for a Response without a body or a HEAD,
 * when the handler throws, or when the runtime aborts `req.signal` (the client gone). A runtime
 * that neither reads nor cancels a body it drops leaves the slot to expire after ttlMs.
 */
export function fetchRateLimit<A extends unknown[]>(
  options: HttpRateLimiter | HttpRateLimitOptions,
  handler: (req: Request, ...rest: A) => Response | Promise<Response>,
  remoteAddress?: (req: Request, ...rest: A) => string | undefined,
) {
  const limiter = core(options);
  const wrapped = async (req: Request, ...rest: A): Promise<Response> => {
    const outcome = await limiter.handle(fetchRequest(req, remoteAddress?.(req, ...rest)));
    if (!outcome.pass) return toResponse(outcome);
    const release = outcome.release;
    releaseOnAbort(req.signal, release);
    let res: Response;
    try {
      res = await handler(req, ...rest);
    } catch (err) {
      void release?.();
      throw err;
    }
    const out = withHeaders(res, outcome.headers, false) ?? res; // the handler's Response may be shared: a copy
    return release ? releasedWith(out, release, req.method) : out;
  };
  return Object.assign(wrapped, { limiter });
}

/** What the Hono middleware uses of a Hono Context (typed loosely: any Hono version fits). */
interface HonoContextLike {
  /** `path` is the path Hono routes (decoded once; trailing slash dropped when `strict: false`). */
  req: { raw: Request; path?: string };
  env?: unknown;
  res: Response;
  body: (...args: never[]) => Response;
}

/** How Hono routes a path: decoded once, dot segments resolved, case-sensitive; with `strict: false` a trailing slash is dropped. */
function honoMatching(c: HonoContextLike): PathMatching {
  const raw = new URL(c.req.raw.url).pathname;
  const routed = c.req.path;
  const ignoreTrailingSlash = routed === undefined || (raw.length > 1 && raw.endsWith('/') && !routed.endsWith('/'));
  return { caseInsensitive: false, ignoreTrailingSlash, ignoreDuplicateSlashes: false, semicolonDelimiter: false, resolveDotSegments: true };
}

/**
 * Hono middleware `(c, next)`; on @hono/node-server the socket's address is used. The headers of
 * an admitted request are set on the response after `next()`, so they reach a handler's own
 * `new Response(...)` (or a fetched one) too. A concurrency slot is given back as for
 * fetchRateLimit: once `next()` is done, when the response body ends or is cancelled (an error
 * response from onError too), or when the request's signal aborts (@hono/node-server aborts it
 * when the client goes away).
 */
export function honoRateLimit(options: HttpRateLimiter | HttpRateLimitOptions) {
  const limiter = core(options);
  const middleware = async (c: HonoContextLike, next: () => Promise<void>): Promise<Response | void> => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const outcome = await limiter.handle(fetchRequest(c.req.raw, incoming?.socket?.remoteAddress, honoMatching(c)));
    if (!outcome.pass) return (c.body as unknown as (data: string, status: number, headers: Record<string, string>) => Response).call(c, outcome.body, outcome.status, outcome.headers);
    const release = outcome.release;
    releaseOnAbort(c.req.raw.signal, release);
    try {
      await next();
    } catch (err) {
      void release?.();
      throw err;
    }
    const res = c.res;
    const out = Object.keys(outcome.headers).length === 0 ? res : (withHeaders(res, outcome.headers, true) ?? res);
    const final = release ? releasedWith(out, release, c.req.raw.method) : out;
    if (final !== res) c.res = final;
  };
  return Object.assign(middleware, { limiter });
}

interface KoaContextLike {
  req: IncomingMessage;
  res?: ServerResponse;
  /** The target as received (koa-mount rewrites `req.url` to the mounted path). */
  originalUrl?: string;
  status: number;
  body: unknown;
  set(name: string, value: string): void;
  respond?: boolean;
  headerSent?: boolean;
}

/**
 * Koa middleware `(ctx, next)`. A concurrency slot is given back on the Node response's 'close'
 * (rather than right after `await next()`): Koa writes a stream body after the middleware chain
 * ends, so the slot covers it; an error Koa answers, and a client gone, close it too.
 */
export function koaRateLimit(options: HttpRateLimiter | HttpRateLimitOptions) {
  const limiter = core(options);
  const middleware = async (ctx: KoaContextLike, next: () => Promise<unknown>): Promise<void> => {
    const outcome = await limiter.handle({ ...nodeRequest(ctx.req, ctx), path: requestPath(ctx.originalUrl ?? ctx.req.url) });
    if (outcome.pass) releaseOnClose(ctx.res ?? {}, outcome.release);
    if (ctx.headerSent) return;
    for (const [k, v] of Object.entries(outcome.headers)) ctx.set(k, v);
    if (!outcome.pass) {
      ctx.status = outcome.status;
      ctx.body = outcome.body; // headers already carry the problem+json Content-Type
      return;
    }
    await next();
  };
  return Object.assign(middleware, { limiter });
}

/**
 * The 0.1 middleware, kept working: `httpRateLimit(limiter, { subject, cost })` for Node, Express
 * and Connect, with `RateLimit-Limit/-Remaining/-Reset` headers and the 0.1 JSON 429 body. A
 * request whose subject is missing now gets 400 instead of an error. New code: nodeRateLimit.
 * @deprecated since 0.2
 */
export function httpRateLimit<Req extends IncomingMessage = IncomingMessage>(
  limiter: RateLimiter,
  options: { subject: (req: Req) => Subject | undefined; cost?: (req: Req) => Cost },
) {
  const cost = options.cost;
  return nodeRateLimit({
    rules: [{ name: 'default', limiter, subject: (r) => options.subject(r.raw as Req), ...(cost ? { cost: (r: HttpRequestInfo) => cost(r.raw as Req) } : {}) }],
    headers: 'draft-6',
    onDenied: (_req, d) => ({ status: 429, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ error: 'rate_limited', deniedBy: d.deniedBy, retryAfterMs: d.retryAfterMs }) }),
  });
}

/**
 * The 0.1 helper, kept working: status and `RateLimit-Limit/-Remaining/-Reset` headers for a
 * decision, `Retry-After` when denied (Reset is the wait until this request could pass).
 * @deprecated since 0.2: use rateLimitHeaders
 */
export function httpHeaders(d: Decision): { status: number; headers: Record<string, string> } {
  const waitMs = d.allowed ? d.resetAfterMs : Math.max(0, d.retryAfterMs);
  const headers: Record<string, string> = {
    'RateLimit-Limit': String(d.limit),
    'RateLimit-Remaining': String(Math.max(0, d.remaining)),
    'RateLimit-Reset': String(Math.ceil(waitMs / 1000)),
  };
  if (d.allowed) return { status: 200, headers };
  if (d.retryAfterMs > 0) headers['Retry-After'] = String(Math.ceil(d.retryAfterMs / 1000));
  return { status: 429, headers };
}
