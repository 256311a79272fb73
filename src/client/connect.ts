import * as b from '../../generated/index.js';
import { preload, transportFor, type RedisClientLike, type ScriptDef } from '../runtime/index.js';
import { autoFunctions } from '../runtime/functions.js';
import { detectServer } from '../runtime/server.js';
import { CircuitBreaker, breakerFor, type BreakerOptions } from './breaker.js';
import type { RateLimiterOptions } from './config.js';
import type { LimitPlan } from './plan.js';
import { clientWarnings, whenReadyEvent } from './redis-call.js';
import { RedisPath } from './redis-path.js';

/** A limiter's side of its Redis client: the one path every call takes, and what it found out. */
export interface Connection {
  path: RedisPath;
  breaker: CircuitBreaker;
  cluster: boolean;
  warnings: string[];
  /** Resolves once the server is checked and the scripts (or the Functions library) are loaded. */
  prepared: Promise<void>;
}

/**
 * Sets a limiter up on its client: refuses an unsupported client now rather than per call, shares
 * one breaker per connection (one per primary on a Cluster), and prepares the server in the
 * background.
 */
export function connect(
  redis: RedisClientLike,
  options: RateLimiterOptions,
  plans: readonly LimitPlan[],
  hooks: { onError(reason: string): void; onNodeState(node: string, to: string): void },
): Connection {
  transportFor(redis);
  const warnings = clientWarnings(redis);
  const c = redis as { isCluster?: boolean; masters?: unknown; options?: { retryDelayOnTryAgain?: number } };
  const cluster = c.isCluster === true || Array.isArray(c.masters);
  const tryAgain = c.options?.retryDelayOnTryAgain;
  if (c.isCluster && (tryAgain ?? 100) >= (options.timeoutMs ?? 100) / 2) {
    warnings.push(`ioredis Cluster retryDelayOnTryAgain is ${tryAgain ?? 100} ms: during a slot migration a call can wait that long, past the limiter's deadline; set it to about 5 ms`);
  }
  let breaker: CircuitBreaker;
  if (options.breaker instanceof CircuitBreaker) breaker = options.breaker;
  else {
    const shared = breakerFor(redis, options.breaker as BreakerOptions | undefined);
    breaker = shared.breaker;
    if (shared.conflict) warnings.push('this connection already has a breaker with other options; it is shared, so those options apply');
  }
  const path = new RedisPath(redis, breaker, options.timeoutMs ?? 100, hooks.onError, options.breaker instanceof CircuitBreaker ? undefined : options.breaker, (node, nb) => {
    nb.on('state', ({ to }) => hooks.onNodeState(node, to));
    // A primary that stops answering may have failed over: ask the client for the current slot
    // owners, so its slots go to the promoted replica (with a breaker of its own).
    nb.on('open', () => refreshTopology(redis));
  });
  const prepared = prepare(redis, path, warnings, options.functions ?? true, scriptsOf(plans, options.blocks ?? false));
  return { path, breaker, cluster, warnings, prepared };
}

/** Every script a limiter may run. */
function scriptsOf(plans: readonly LimitPlan[], blocks: boolean): ScriptDef[] {
  const defs = new Set<ScriptDef>([b.batchScript, b.multiScript, b.multiPeekScript, b.resetScript, b.nodeBatchScript, b.tiersScript, b.tiersNodeBatchScript, b.tiersPeekScript, b.tiersRefundScript, b.tiersResetScript]);
  for (const p of plans) for (const c of [p.consume, p.peek, p.refund]) if (c) defs.add(c.def);
  if (blocks) defs.add(b.blockScript);
  return [...defs];
}

/**
 * Once the client is ready: learn the server's version (Redis before 7.0 is refused with a clear
 * error on every call, which then takes the failure path) and, where it can, switch the client to
 * FCALL (helpers created once at load instead of on every EVALSHA); else load the scripts on every
 * primary, which also opens each Cluster node's connection before the first decision needs it.
 */
function prepare(client: RedisClientLike, path: RedisPath, warnings: string[], functions: boolean, scripts: ScriptDef[]): Promise<void> {
  return new Promise<void>((resolve) => {
    whenReadyEvent(client, () => {
      void detectServer(client)
        .then(async (info) => {
          if (info.unsupported) {
            path.refuse(info.unsupported);
            warnings.push(info.unsupported.message);
            process.emitWarning(info.unsupported.message, { code: info.unsupported.code });
            return;
          }
          if (functions && (await autoFunctions(client)) === 'fcall') return;
          await preload(client, scripts).catch(() => {});
        })
        .then(resolve, resolve);
    });
  });
}

/** Asks a Cluster client to reload its slot table (ioredis; node-redis rediscovers on MOVED by itself). */
function refreshTopology(client: object): void {
  const c = client as { refreshSlotsCache?: (cb?: (err?: Error) => void) => void };
  if (typeof c.refreshSlotsCache === 'function') c.refreshSlotsCache(() => {});
}
