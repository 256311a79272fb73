import { InvalidConfigError } from '../errors.js';
import type { LimitSpec, OnRedisFailure } from './config.js';
import { RateLimiter } from './limiter.js';

/**
 * A limiter from the environment: REDIS_URL (ioredis, created here with settings that never
 * queue or re-send a consume: no offline queue, no auto-resend) and one limit from
 * REDLIMIT_ALGO (default gcra), REDLIMIT_LIMIT, REDLIMIT_PERIOD_MS, REDLIMIT_BURST,
 * plus REDLIMIT_PREFIX, REDLIMIT_ON_FAILURE, REDLIMIT_TIMEOUT_MS, REDLIMIT_FALLBACK_SHARE.
 * close() on the returned limiter also closes the connection it made (also when Redis is down).
 */
export async function fromEnv(env: NodeJS.ProcessEnv = process.env): Promise<RateLimiter> {
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
  }
  return limiter;
}
