/** Which path produced a decision. */
export type DecisionSource = 'redis' | 'fallback' | 'fail-open' | 'fail-closed' | 'deny-cache' | 'lease';

/** One limit's part of a decision. */
export interface LimitResult {
  name: string;
  allowed: boolean;
  remaining: number;
  limit: number;
  resetAfterMs: number;
  retryAfterMs: number;
}

/** The answer to `limit(id)`: plain data, ready for headers (RateLimit-*, Retry-After). */
export interface Decision {
  allowed: boolean;
  /**
   * The limit `remaining`, `limit` and `resetAfterMs` describe: the one that denied, else the one
   * closest to denying. Null when no limit is known (fail-open, fail-closed, a block).
   */
  limitName: string | null;
  /** Units left on that limit. */
  remaining: number;
  /** That limit's size. */
  limit: number;
  /** ms until every limit is back to full. */
  resetAfterMs: number;
  /** 0 when allowed; ms until this cost could be admitted; -1 never (cost above a limit). */
  retryAfterMs: number;
  /** Name of the first limit that denied, or null. */
  deniedBy: string | null;
  source: DecisionSource;
  /** Per limit, in configuration order (empty for fail-open / fail-closed / deny-cache / lease). */
  limits: LimitResult[];
  /**
   * The priority class the call named and, per limit, the share of its capacity that class may
   * use (it was admitted only if capacity − ⌊capacity × share⌋ units stayed free). Absent when
   * the call named none.
   */
  priority?: { class: string; shares: Record<string, number> };
  /**
   * The concurrency slot this admitted decision holds: its holder id (a string any process may
   * release it with: `limiter.release(subject, holder)`). Absent when it holds none (denied, no
   * concurrency limit, a cost of 0, or admitted without Redis by a limiter that fails open).
   */
  holder?: string;
}
