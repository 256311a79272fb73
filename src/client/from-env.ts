import { InvalidArgumentError, InvalidConfigError } from '../errors.js';
import type { LimitSpec, OnRedisFailure } from './config.js';
import { RateLimiter } from './limiter.js';

/** The warning code a fromEnv() limiter without REDIS_URL emits on its first call. */
export const NO_REDIS_WARNING = 'REDLIMIT_NO_REDIS';

/**
 * A limiter from the environment: REDIS_URL (ioredis, created here with settings that never
 * queue or re-send a consume: no offline queue, no auto-resend) and one limit from
 * REDLIMIT_ALGO (default gcra), REDLIMIT_LIMIT, REDLIMIT_PERIOD_MS, REDLIMIT_BURST,
 * plus REDLIMIT_PREFIX, REDLIMIT_ON_FAILURE, REDLIMIT_TIMEOUT_MS, REDLIMIT_FALLBACK_SHARE.
 * close() on the returned limiter also closes the connection it made (also when Redis is down).
 *
 * It returns a promise (the ioredis import is lazy): `const limiter = await fromEnv()`. Calling a
 * limiter method on the promise itself throws an error that says so. Without REDIS_URL every
 * decision is made in this process's memory, so each process enforces the whole limit on its own:
 * the limiter emits a process warning (code REDLIMIT_NO_REDIS) on its first call.
 */
export function fromEnv(env: NodeJS.ProcessEnv = process.env): Promise<RateLimiter> {
  return guardUnawaited(build(env));
}

async function build(env: NodeJS.ProcessEnv): Promise<RateLimiter> {
  const int = (name: string, fallback?: number): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw)) throw new InvalidConfigError(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  const limit = int('REDLIMIT_LIMIT');
  const periodMs = int('REDLIMIT_PERIOD_MS');
  if (limit === undefined || periodMs === undefined) throw new InvalidConfigError('REDLIMIT_LIMIT and REDLIMIT_PERIOD_MS are required');
  const algo = (env.REDLIMIT_ALGO ?? 'gcra') as 'gcra';
  const spec = { name: 'default', algo, limit, periodMs, ...(env.REDLIMIT_BURST ? { burst: int('REDLIMIT_BURST') } : {}) } as LimitSpec;
  let redis: { quit(): Promise<unknown>; disconnect(): void; status: string } | undefined;
  if (env.REDIS_URL) {
    const { Redis } = await import('ioredis');
    redis = new Redis(env.REDIS_URL, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
    (redis as unknown as { on(e: string, f: () => void): void }).on('error', () => {}); // the breaker and stats() report it
  }
  const limiter = new RateLimiter({
    redis,
    limits: spec,
    prefix: env.REDLIMIT_PREFIX,
    onRedisFailure: env.REDLIMIT_ON_FAILURE as OnRedisFailure | undefined,
    timeoutMs: int('REDLIMIT_TIMEOUT_MS'),
    fallbackShare: int('REDLIMIT_FALLBACK_SHARE'),
  });
  if (redis) {
    const close = limiter.close.bind(limiter);
    limiter.close = async () => {
      await close();
      // QUIT when connected (replies in flight are read); then stop reconnecting either way, so
      // a process whose Redis is down can still exit.
      if (redis!.status === 'ready') await redis!.quit().catch(() => {});
      redis!.disconnect();
    };
  } else warnOnFirstCall(limiter);
  return limiter;
}

/** Calls that decide or change state: the first one of a Redis-less limiter says what it is. */
const USES = ['limit', 'limitOrThrow', 'peek', 'reset', 'refund', 'block', 'acquire'] as const;

function warnOnFirstCall(limiter: RateLimiter): void {
  let warned = false;
  const self = limiter as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of USES) {
    const method = self[name];
    if (typeof method !== 'function') continue;
    self[name] = function (this: unknown, ...args: unknown[]) {
      if (!warned) {
        warned = true;
        process.emitWarning(
          'redlimit: fromEnv() found no REDIS_URL, so every decision is made in this process\'s memory: each process enforces the whole limit on its own (N processes admit N times the limit) and nothing survives a restart. Set REDIS_URL to share the limit.',
          { code: NO_REDIS_WARNING },
        );
      }
      return method.apply(this, args);
    };
  }
}

/**
 * `const l = fromEnv(); l.limit(id)` would fail with "l.limit is not a function": the promise
 * answers every limiter method with an error that names the fix instead.
 */
function guardUnawaited(promise: Promise<RateLimiter>): Promise<RateLimiter> {
  const names = Object.getOwnPropertyNames(RateLimiter.prototype).filter((n) => n !== 'constructor' && !(n in Promise.prototype));
  for (const name of names) {
    Object.defineProperty(promise, name, {
      enumerable: false,
      value() {
        throw new InvalidArgumentError('fromEnv', 'await', `fromEnv() returns a Promise<RateLimiter>, not a limiter: \`const limiter = await fromEnv(); await limiter.${name}(...)\``);
      },
    });
  }
  return promise;
}
