/**
 * The twin of scripts-lua/fair_share.lua (with lib/fair.lua): the same decision over the same
 * keys, the same replies. The shared limit's state is the fixed_window / sliding_window state
 * the other scripts keep; the tenants hash and the active sorted set are entries of their own
 * kinds here (the store's TwinValue does not list them: cast, as reservation.ts does).
 */
import { ScriptError } from '../errors.js';
import * as a from './algorithms.js';
import type { TwinCall } from './scripts.js';
import type { MemoryStore, TwinValue } from './store.js';

const SIMULATED_GRACE_MS = 60_000;

/** The tenants hash: W, w:<tenant>, u:<tenant> ("start:used"). */
interface TenantsValue {
  kind: 'fair_tenants';
  total: number;
  weights: Map<string, number>;
  usage: Map<string, { start: number; used: number }>;
}
/** The active sorted set: tenant -> ms it last asked. */
interface ActiveValue {
  kind: 'fair_active';
  seen: Map<string, number>;
}
const TENANTS_KIND = 'fair_tenants' as unknown as TwinValue['kind'];
const ACTIVE_KIND = 'fair_active' as unknown as TwinValue['kind'];

/** Reply reasons (fair_share's header). */
export const FAIR_REASON = { withinShare: 0, idleCapacity: 1, exhausted: 2, owed: 3, full: 4 } as const;

function readTenants(store: MemoryStore, key: string, now: number): TenantsValue | undefined {
  return store.get(key, TENANTS_KIND, now, 'fair_share') as unknown as TenantsValue | undefined;
}
function readActive(store: MemoryStore, key: string, now: number): ActiveValue | undefined {
  return store.get(key, ACTIVE_KIND, now, 'fair_share') as unknown as ActiveValue | undefined;
}

/** rl_fair_share: floor(limit * weight / total), exact (limit <= 1e9, weight <= 1e6). */
export function fairShare(limit: number, weight: number, total: number): number {
  const p = limit * weight;
  return (p - (p % total)) / total;
}

function usedIn(tenants: TenantsValue, tenant: string, start: number): number {
  const u = tenants.usage.get(tenant);
  return u !== undefined && u.start === start ? u.used : 0;
}

/** rl_fair_owed: what the other active tenants are still owed this window (stops past `cap`). */
function owed(tenants: TenantsValue, active: ActiveValue, tenant: string, limit: number, total: number, start: number, cap: number): number {
  let sum = 0;
  for (const member of active.seen.keys()) {
    if (member === tenant) continue;
    const left = fairShare(limit, tenants.weights.get(member) ?? 0, total) - usedIn(tenants, member, start);
    if (left > 0) {
      sum += left;
      if (sum > cap) return sum;
    }
  }
  return sum;
}

export function twinFairShare(c: TwinCall): number[] {
  const { store, now, simulated } = c;
  const algo = c.args.algo as string;
  const limit = c.args.limit as number;
  const periodMs = c.args.period_ms as number;
  const tenant = c.args.tenant as string;
  const activeWindowMs = c.args.active_window_ms as number;
  const cost = c.args.cost as number;
  const weight = c.args.weight as number;
  const maxTenants = c.args.max_tenants as number;
  if (activeWindowMs < periodMs) {
    throw new ScriptError(c.script, `BADARG redlimit fair_share: active_window_ms must be at least period_ms (${periodMs}), got ${activeWindowMs}`);
  }
  const [stateKey, tenantsKey, activeKey] = c.keys as [string, string, string];

  // rl_fair_trim: the Lua writes the trim whatever follows; so does the twin (in place).
  let tenants = readTenants(store, tenantsKey, now);
  let active = readActive(store, activeKey, now);
  if (active !== undefined) {
    const gone: string[] = [];
    for (const [member, seen] of active.seen) if (seen <= now - activeWindowMs) gone.push(member);
    if (gone.length > 0) {
      let drop = 0;
      for (const member of gone) {
        drop += tenants?.weights.get(member) ?? 0;
        tenants?.weights.delete(member);
        tenants?.usage.delete(member);
        active.seen.delete(member);
      }
      if (tenants) tenants.total -= drop;
      if (active.seen.size === 0) {
        store.delete(activeKey);
        active = undefined;
      }
    }
  }

  let total = tenants?.total ?? 0;
  const oldWeight = tenants?.weights.get(tenant);
  let count = active?.seen.size ?? 0;
  if (oldWeight === undefined) {
    if (count >= maxTenants) {
      let oldest = Infinity;
      for (const seen of active!.seen.values()) if (seen < oldest) oldest = seen;
      return [0, 0, 0, oldest + activeWindowMs - now, 0, 0, count, FAIR_REASON.full];
    }
    count += 1;
    total += weight;
  } else total += weight - oldWeight;

  const start = a.windowStart(now, periodMs, 0);
  let used = tenants ? usedIn(tenants, tenant, start) : 0;
  const share = fairShare(limit, weight, total);

  const evalAt = (units: number): a.Eval =>
    algo === 'fixed_window' ? a.fixedWindowEval(store, stateKey, limit, periodMs, 0, units, now, simulated) : a.slidingWindowEval(store, stateKey, limit, periodMs, units, now, simulated);
  let [allowed, remaining, reset, retry, writes] = evalAt(cost);
  let reason: number = FAIR_REASON.withinShare;
  if (allowed === 0) reason = FAIR_REASON.exhausted;
  else if (used + cost > share) {
    reason = FAIR_REASON.idleCapacity;
    const others = tenants && active ? owed(tenants, active, tenant, limit, total, start, remaining) : 0;
    if (others > remaining) {
      const [, nowRemaining, nowReset] = evalAt(0);
      [allowed, remaining, reset, retry, reason] = [0, nowRemaining, nowReset, start + periodMs - now, FAIR_REASON.owed];
    }
  }

  const expiresAt = now + activeWindowMs + (simulated ? SIMULATED_GRACE_MS : 0);
  if (!active) active = { kind: 'fair_active', seen: new Map() };
  const before = active.seen.get(tenant);
  active.seen.set(tenant, before === undefined ? now : Math.max(before, now)); // ZADD GT
  store.set(activeKey, active as unknown as TwinValue, expiresAt);
  if (!tenants) tenants = { kind: 'fair_tenants', total: 0, weights: new Map(), usage: new Map() };
  if (allowed === 1) {
    a.apply(store, writes);
    used += cost;
    tenants.usage.set(tenant, { start, used });
  }
  tenants.total = total;
  tenants.weights.set(tenant, weight);
  store.set(tenantsKey, tenants as unknown as TwinValue, expiresAt);
  return [allowed, remaining, reset, retry, share, used, count, reason];
}
