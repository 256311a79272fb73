/**
 * Fair share of one shared limit (a provider's TPM) among many tenants (agents), on the
 * fair_share script: a tenant within its weighted share is admitted whenever the shared limit has
 * room; beyond it, only from capacity that no other active tenant is still owed this window. A
 * lone tenant may use the whole limit (work-conserving). The exact guarantee is the script's
 * header (scripts-lua/fair_share.lua).
 *
 *   const fair = createFairShare({ redis, name: 'openai-tpm', limit: { algo: 'fixed_window', limit: 90_000, periodMs: 60_000 } });
 *   const d = await fair.limit('agent-7', { cost: 1_200 });
 */
import { fairShare, type FairShareResult } from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError } from '../errors.js';
import type { RedisClientLike } from '../runtime/index.js';
import { TwinClient } from '../twin/client.js';
import { callerError, isCallerError } from './failure.js';
import { unavailable } from './policy.js';

export type FairShareAlgo = 'fixed_window' | 'sliding_window';

export interface FairShareOptions {
  /** ioredis / node-redis client or cluster. Omitted: the in-memory twin decides alone (one process). */
  redis?: RedisClientLike;
  /** Key prefix (default `rl`). Keys: `${prefix}:{${name}}:fair:state|tenants|active` (one hash slot). */
  prefix?: string;
  /** The shared limit's name: every instance using the same name shares it. */
  name: string;
  /** The shared limit: `limit` units per window of `periodMs`. */
  limit: { algo: FairShareAlgo; limit: number; periodMs: number };
  /** Per-tenant weights (1..1e6); a tenant not listed weighs `defaultWeight`. */
  weights?: Readonly<Record<string, number>> | ((tenant: string) => number);
  /** Weight of a tenant `weights` does not name (default 1). */
  defaultWeight?: number;
  /** A tenant counts as active this long after it last asked (default and minimum: periodMs). */
  activeWindowMs?: number;
  /** Bound on the active set (1..1000, default 1000): a new tenant beyond it waits. */
  maxTenants?: number;
}

/** Why a call was decided as it was. */
export type FairShareReason = 'within-share' | 'idle-capacity' | 'exhausted' | 'owed' | 'full';
const REASONS: readonly FairShareReason[] = ['within-share', 'idle-capacity', 'exhausted', 'owed', 'full'];

export interface FairShareDecision {
  allowed: boolean;
  /** Units the shared limit has left (after this call when allowed). */
  remaining: number;
  /** 0 when allowed; ms to wait (a fair-share denial: to the next window; sooner if others leave); -1 never. */
  retryAfterMs: number;
  /** ms until the shared limit is back to full. */
  resetAfterMs: number;
  /** This tenant's share now: floor(limit * weight / total active weight). */
  share: number;
  /** What this tenant has taken in the current window (after this call). */
  used: number;
  /** Tenants active now, this one included. */
  activeTenants: number;
  /** Denied because capacity is short: the shared limit is exhausted, or what is left is owed to other active tenants. */
  contended: boolean;
  reason: FairShareReason;
}

export interface FairShare {
  /**
   * Decides one call of `tenant` taking `cost` units (default 1) of the shared limit. Rejects with
   * InvalidArgumentError for a refused argument, StateKeyError when a key holds another type or
   * state, and RedisUnavailableError (its `cause` the client's error) when Redis cannot answer:
   * fair share has no fallback, so the caller decides what a share unknown means.
   */
  limit(tenant: string, options?: { cost?: number; nowMs?: number }): Promise<FairShareDecision>;
}

function positiveInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidConfigError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

export function createFairShare(options: FairShareOptions): FairShare {
  if (typeof options !== 'object' || options === null) throw new InvalidConfigError('createFairShare wants an options object');
  const { name, limit: shared } = options;
  if (typeof name !== 'string' || name === '' || /[{}]/.test(name)) throw new InvalidConfigError(`name must be a non-empty string without braces, got ${String(name)}`);
  if (typeof shared !== 'object' || shared === null) throw new InvalidConfigError('limit must be { algo, limit, periodMs }');
  if (shared.algo !== 'fixed_window' && shared.algo !== 'sliding_window') throw new InvalidConfigError(`limit.algo must be fixed_window or sliding_window, got ${String(shared.algo)}`);
  const limit = positiveInt('limit.limit', shared.limit, 1, 1_000_000_000);
  const periodMs = positiveInt('limit.periodMs', shared.periodMs, 1, 31_622_400_000);
  const activeWindowMs = positiveInt('activeWindowMs', options.activeWindowMs ?? periodMs, periodMs, 31_622_400_000);
  const maxTenants = positiveInt('maxTenants', options.maxTenants ?? 1000, 1, 1000);
  const defaultWeight = positiveInt('defaultWeight', options.defaultWeight ?? 1, 1, 1_000_000);
  const weights = options.weights;
  if (weights !== undefined && typeof weights !== 'function') {
    for (const [tenant, w] of Object.entries(weights)) positiveInt(`weights.${tenant}`, w, 1, 1_000_000);
  }
  const weightOf = (tenant: string): number => {
    const w = typeof weights === 'function' ? weights(tenant) : weights?.[tenant];
    if (w === undefined) return defaultWeight;
    if (!Number.isSafeInteger(w) || w < 1 || w > 1_000_000) throw new InvalidArgumentError('fair_share', 'weight', `weight of ${tenant} must be an integer in 1..1000000, got ${String(w)}`);
    return w;
  };
  const client: RedisClientLike = options.redis ?? (new TwinClient() as unknown as RedisClientLike);
  const base = `${options.prefix ?? 'rl'}:{${name}}:fair`;
  const keys = { stateKey: `${base}:state`, tenantsKey: `${base}:tenants`, activeKey: `${base}:active` };

  return {
    async limit(tenant, { cost = 1, nowMs } = {}) {
      const weight = weightOf(tenant);
      const r: FairShareResult = await fairShare(client, {
        ...keys,
        algo: shared.algo,
        limit,
        periodMs,
        activeWindowMs,
        maxTenants,
        tenant,
        cost,
        weight,
        nowMs,
      }).catch((err: unknown) => {
        if (isCallerError(err)) throw callerError(err, [keys.stateKey]);
        return unavailable('fair share')(err);
      });
      const reason = REASONS[r.reason]!;
      return {
        allowed: r.allowed,
        remaining: r.remaining,
        retryAfterMs: r.retryAfterMs,
        resetAfterMs: r.resetAfterMs,
        share: r.share,
        used: r.used,
        activeTenants: r.activeTenants,
        contended: reason === 'exhausted' || reason === 'owed',
        reason,
      };
    },
  };
}
