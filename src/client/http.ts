import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from './decision.js';
import type { Cost, RateLimiter } from './limiter.js';
import type { Subject } from './keys.js';

/** Status and headers for a decision: RateLimit-* always, 429 + Retry-After (seconds) when denied. */
export function httpHeaders(d: Decision): { status: number; headers: Record<string, string> } {
  const headers: Record<string, string> = {
    'RateLimit-Limit': String(d.limit),
    'RateLimit-Remaining': String(Math.max(0, d.remaining)),
    'RateLimit-Reset': String(Math.ceil(d.resetAfterMs / 1000)),
  };
  if (d.allowed) return { status: 200, headers };
  if (d.retryAfterMs > 0) headers['Retry-After'] = String(Math.ceil(d.retryAfterMs / 1000));
  return { status: 429, headers };
}

export interface HttpRateLimitOptions<Req extends IncomingMessage> {
  /** Who the request is for (an API key, a user id, the client address...). */
  subject: (req: Req) => Subject;
  cost?: (req: Req) => Cost;
}

/**
 * Middleware for Node's http server, Express and Connect: `(req, res, next)`. Sets the
 * RateLimit headers; a denied request gets 429 with Retry-After and a small JSON body, an
 * admitted one goes on to `next()`. A bad subject (the caller's bug) goes to `next(err)`.
 */
export function httpRateLimit<Req extends IncomingMessage = IncomingMessage>(limiter: RateLimiter, options: HttpRateLimitOptions<Req>) {
  return (req: Req, res: ServerResponse, next?: (err?: unknown) => void): void => {
    let subject: Subject;
    let cost: Cost | undefined;
    try {
      subject = options.subject(req);
      cost = options.cost?.(req);
    } catch (err) {
      if (next) next(err);
      else {
        res.statusCode = 500;
        res.end();
      }
      return;
    }
    limiter.limit(subject, { cost }).then(
      (d) => {
        // Someone answered already (a timeout handler, another middleware): nothing to add.
        if (res.headersSent || res.writableEnded) return;
        const { status, headers } = httpHeaders(d);
        for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
        if (d.allowed) {
          next?.();
          return;
        }
        res.statusCode = status;
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ error: 'rate_limited', deniedBy: d.deniedBy, retryAfterMs: d.retryAfterMs }));
      },
      (err) => {
        if (next) next(err);
        else if (!res.headersSent) {
          res.statusCode = 500;
          res.end();
        }
      },
    ).catch((err: unknown) => {
      // Whatever next() or a header write throws must not become an unhandled rejection.
      if (next) next(err);
    });
  };
}
