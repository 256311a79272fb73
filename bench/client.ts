import type { Redis } from 'ioredis';
import { createRateLimiter } from '../src/index.js';

/** Decisions/s from one process against one fleet-wide limit, with leases of `size`. */
export async function leaseRate(redis: Redis, size: number, calls: number): Promise<{ perSecond: number; redisShare: number }> {
  const rl = createRateLimiter({
    redis,
    prefix: `bench-lease-${process.pid}`,
    limits: { name: 'fleet', algo: 'gcra', limit: 1_000_000_000, periodMs: 1000 },
    lease: { size, ttlMs: 10_000 },
    denyCache: false,
  });
  let fromRedis = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) {
    const d = await rl.limit('fleet');
    if (d.source !== 'lease') fromRedis++;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await rl.close();
  return { perSecond: calls / seconds, redisShare: fromRedis / calls };
}
