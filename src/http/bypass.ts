import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Internal-service bypass that a header alone cannot spoof: the caller signs the request's
 * method, path and a timestamp with a shared secret (HMAC-SHA256); the limiter accepts it only
 * within `maxAgeMs` of its own clock, comparing in constant time. Several secrets may be valid at
 * once (rotation). Header: `x-ratelimit-bypass: t=<unix ms>,s=<hex signature>`.
 */
export interface BypassOptions {
  secret: string | readonly string[];
  /** Header carrying the signature. Default `x-ratelimit-bypass`. */
  header?: string;
  /** How far the timestamp may be from now, either way. Default 30 000 ms. */
  maxAgeMs?: number;
}

function signature(secret: string, method: string, path: string, t: number): Buffer {
  return createHmac('sha256', secret).update(`${method.toUpperCase()}\n${path}\n${t}`).digest();
}

/** The header value an internal caller sends (`signBypass({ secret, method, path })`). */
export function signBypass(o: { secret: string; method: string; path: string; now?: number }): string {
  const t = o.now ?? Date.now();
  return `t=${t},s=${signature(o.secret, o.method, o.path, t).toString('hex')}`;
}

/** Is this request signed by a holder of one of the secrets, recently enough? */
export function verifyBypass(o: BypassOptions, method: string, path: string, value: string | undefined, now = Date.now()): boolean {
  if (!value) return false;
  const m = /^t=(\d{1,16}),s=([0-9a-f]{64})$/.exec(value.trim());
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now - t) > (o.maxAgeMs ?? 30_000)) return false;
  const given = Buffer.from(m[2]!, 'hex');
  let ok = false;
  for (const secret of typeof o.secret === 'string' ? [o.secret] : o.secret) {
    // Every secret is checked (no early exit): the time taken says nothing about which matched.
    if (timingSafeEqual(given, signature(secret, method, path, t))) ok = true;
  }
  return ok;
}
