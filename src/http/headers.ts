import type { Decision } from '../decision.js';
import { capacity, windowMs, type AnyLimitSpec } from '../client/config.js';
import { InvalidConfigError } from '../errors.js';
import { describe, nearest } from './validate.js';

/**
 * Response header styles:
 * - `ietf`: the current IETF draft, draft-ietf-httpapi-ratelimit-headers-10 (September 2025):
 *   `RateLimit-Policy` lists every limit as `"name";q=<quota>;w=<window s>`, `RateLimit` gives
 *   the limit that denied (or the one closest to denying) as `"name";r=<remaining>;t=<s>`.
 * - `draft-6`: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and
 *   `RateLimit-Policy: <limit>;w=<window s>`, as most clients read today (express-rate-limit's draft-6).
 * - `legacy`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix seconds).
 * - `none`.
 *
 * A concurrency limit is reported like the others, in slots: its quota (`q`, Limit) is its
 * number of slots, `r` / Remaining the slots free, its window (`w`) its ttlMs. When it denies,
 * `t`, Reset and Retry-After are the wait until a held slot expires — an upper bound: a request
 * that finishes frees its slot at once, so a client may retry sooner.
 *
 * A list of styles writes each style's own headers. Every header has one writer: `ietf` and
 * `draft-6` both name a `RateLimit-Policy`, in syntaxes that contradict each other, so that pair
 * is refused (`['ietf', 'legacy']` and `['draft-6', 'legacy']` are fine).
 */
export type HeaderStyle = 'ietf' | 'draft-6' | 'legacy' | 'none';

/** The headers each style writes (Retry-After is written for every denial, whatever the style). */
export const STYLE_HEADERS: Readonly<Record<HeaderStyle, readonly string[]>> = {
  ietf: ['RateLimit-Policy', 'RateLimit'],
  'draft-6': ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy'],
  legacy: ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'],
  none: [],
};
const STYLES = Object.keys(STYLE_HEADERS) as HeaderStyle[];

/** The `headers` option checked: known styles, none twice, `none` alone, no header with two writers. */
export function headerStyles(option: unknown): HeaderStyle[] {
  if (option === undefined) return ['ietf'];
  const list = typeof option === 'string' ? [option] : option;
  if (!Array.isArray(list)) throw new InvalidConfigError(`headers must be a style or a list of styles (${STYLES.join(', ')}), got ${describe(option)}`);
  const out: HeaderStyle[] = [];
  const writer = new Map<string, HeaderStyle>();
  for (const s of list as unknown[]) {
    if (typeof s !== 'string' || !STYLES.includes(s as HeaderStyle)) {
      const near = typeof s === 'string' ? nearest(s, STYLES) : undefined;
      throw new InvalidConfigError(`headers: unknown style ${describe(s)}${near ? ` (did you mean ${near}?)` : ''}; styles: ${STYLES.join(', ')}`);
    }
    const style = s as HeaderStyle;
    if (out.includes(style)) throw new InvalidConfigError(`headers: ${style} is listed twice`);
    if (style === 'none' && list.length > 1) throw new InvalidConfigError('headers: none cannot be combined with other styles');
    for (const h of STYLE_HEADERS[style]) {
      const other = writer.get(h);
      if (other) throw new InvalidConfigError(`headers: ${other} and ${style} both write ${h}, in different syntaxes (a client of one would read a value invalid for it); pick one of them (each combines with legacy)`);
      writer.set(h, style);
    }
    out.push(style);
  }
  return out;
}

/** A limit's window in seconds (a quota's calendar period, a month counted as 30 days). */
export function windowSeconds(l: AnyLimitSpec): number {
  return Math.max(1, Math.ceil(windowMs(l) / 1000));
}

/** What one decision says to a client, in seconds: the limit to report and when to come back. */
export interface Reported {
  name: string;
  limit: number;
  remaining: number;
  /** Seconds until the reported limit resets (when allowed) or this request could pass (when denied). */
  resetSeconds: number;
  windowSeconds: number;
}

/**
 * The numbers every style prints, taken from the decision's top level (the limit that denied, or
 * the one closest to denying: their remaining, limit and reset belong together). A denied
 * request reports the wait until it could pass, so `t` / Reset never exceed Retry-After; a reset
 * never exceeds the limit's window. Null when nothing is known (fail-open, fail-closed).
 */
export function reported(d: Decision, limits: readonly AnyLimitSpec[]): Reported | null {
  if (d.source === 'fail-open' || d.source === 'fail-closed') return null;
  const name = d.limitName ?? limits[0]!.name; // null for a block: report the first limit, fully waited for
  const spec = limits.find((l) => l.name === name) ?? limits[0]!;
  const w = windowSeconds(spec);
  const ms = d.allowed ? d.resetAfterMs : retryMs(d, w);
  return { name, limit: d.limit, remaining: Math.max(0, d.remaining), resetSeconds: Math.min(w, Math.ceil(ms / 1000)), windowSeconds: w };
}

/** The wait a denied decision implies, in ms: its retry time; a cost that can never pass waits a window. */
export function retryMs(d: Decision, windowSecs: number): number {
  return d.retryAfterMs < 0 ? windowSecs * 1000 : d.retryAfterMs;
}

/** Quoted sf-string for a policy name (names are letters, digits, _ and -). */
const sf = (name: string) => `"${name}"`;

export function rateLimitHeaders(style: HeaderStyle, d: Decision, limits: readonly AnyLimitSpec[], now = Date.now()): Record<string, string> {
  const r = reported(d, limits);
  if (style === 'none' || r === null) return {};
  if (style === 'ietf') {
    return {
      'RateLimit-Policy': limits.map((l) => `${sf(l.name)};q=${capacity(l)};w=${windowSeconds(l)}`).join(', '),
      RateLimit: `${sf(r.name)};r=${r.remaining};t=${r.resetSeconds}`,
    };
  }
  if (style === 'draft-6') {
    return {
      'RateLimit-Limit': String(r.limit),
      'RateLimit-Remaining': String(r.remaining),
      'RateLimit-Reset': String(r.resetSeconds),
      'RateLimit-Policy': `${r.limit};w=${r.windowSeconds}`,
    };
  }
  if (style !== 'legacy') throw new InvalidConfigError(`unknown header style ${describe(style)}`);
  return {
    'X-RateLimit-Limit': String(r.limit),
    'X-RateLimit-Remaining': String(r.remaining),
    'X-RateLimit-Reset': String(Math.ceil(now / 1000) + r.resetSeconds),
  };
}
