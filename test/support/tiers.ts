/** What the tiers script tests share: the limits they draw, as specs, tz_rules and multi groups. */

export const DAY = 86_400_000;
export const GRACE = 60_000;
export const T0 = Date.UTC(2026, 2, 20, 10); // a Friday
/** A time zone's rules: CET, then CEST from 2026-03-29 01:00 UTC. */
export const CET = `3600000;${Date.UTC(2026, 2, 29, 1)}:7200000`;

export type Algo = 'gcra' | 'token_bucket' | 'fixed_window' | 'sliding_window' | 'quota';
export interface Limit {
  algo: Algo;
  limit: number;
  periodMs?: number;
  burst?: number;
  offsetMs: number;
  unit?: 'day' | 'week' | 'month';
  /** quota: takes the CET rules in tz_rules. */
  tz?: boolean;
}

export function specOf(l: Limit): string {
  switch (l.algo) {
    case 'gcra':
    case 'token_bucket':
      return `${l.algo},${l.limit},${l.periodMs},${l.burst},,`;
    case 'fixed_window':
      return `fixed_window,${l.limit},${l.periodMs},,${l.offsetMs},`;
    case 'sliding_window':
      return `sliding_window,${l.limit},${l.periodMs},,,`;
    default:
      return `quota,${l.limit},,,${l.offsetMs},${l.unit}`;
  }
}
export const specsOf = (limits: readonly Limit[]) => limits.map(specOf).join(';');
export const tzOf = (limits: readonly Limit[]) => (limits.some((l) => l.tz) ? limits.map((l) => (l.tz ? CET : '')).join('|') : '');

/** multi's ARGV group for one limit: algo, limit, period_ms, cost, burst, offset_ms, unit, share_ppm, holder (reserve's: the first 8). */
export function multiGroup(l: Limit, cost: number, share: number | undefined): string[] {
  const offset = l.algo === 'fixed_window' || l.algo === 'quota' ? String(l.offsetMs) : '';
  return [l.algo, String(l.limit), l.periodMs === undefined ? '' : String(l.periodMs), String(cost), l.burst === undefined ? '' : String(l.burst), offset, l.unit ?? '', share === undefined ? '' : String(share), ''];
}

