import { fixedWindowPeek } from '../../generated/index.js';
import type { RedisClientLike } from '../../src/runtime/index.js';

/** What the day window of the multi-process test counted, read through the script (not its state encoding). */
export async function windowCount(redis: RedisClientLike, key: string): Promise<number> {
  const LIMIT = 1_000_000_000;
  return LIMIT - (await fixedWindowPeek(redis, { key, limit: LIMIT, periodMs: 86_400_000, cost: 0 })).remaining;
}
