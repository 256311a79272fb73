/**
 * Minute / hour / day tiers for one API key, checked and consumed atomically in one round trip:
 * the minute tier is a GCRA with a burst multiplier (short spikes are fine), the hour tier a
 * sliding window, the day a calendar quota in the customer's time zone.
 */
import { multi, type MultiItem, type RedisClientLike } from 'redlimit';

export interface Plan {
  perMinute: number;
  burstMultiplier: number;
  perHour: number;
  perDay: number;
  utcOffsetMs: number;
}

export function tierLimits(apiKey: string, plan: Plan): MultiItem[] {
  const tag = `rl:{key:${apiKey}}`; // one hash tag: every tier of a key lives in one cluster slot
  return [
    { key: `${tag}:minute`, algo: 'gcra', limit: plan.perMinute, periodMs: 60_000, burst: Math.ceil(plan.perMinute * plan.burstMultiplier) },
    { key: `${tag}:hour`, algo: 'sliding_window', limit: plan.perHour, periodMs: 3_600_000 },
    { key: `${tag}:day`, algo: 'quota', limit: plan.perDay, unit: 'day', offsetMs: plan.utcOffsetMs },
  ];
}

/** Sends `requests` calls at `now` and returns how many each tier let through and who denied. */
export async function runTiers(client: RedisClientLike, apiKey: string, plan: Plan, requests: number, nowMs?: number) {
  let allowed = 0;
  const deniedBy: Record<string, number> = {};
  const names = ['minute', 'hour', 'day'];
  for (let i = 0; i < requests; i++) {
    const r = await multi(client, { limits: tierLimits(apiKey, plan), nowMs });
    if (r.allowed) allowed++;
    else deniedBy[names[r.deniedIndex - 1]!] = (deniedBy[names[r.deniedIndex - 1]!] ?? 0) + 1;
  }
  return { allowed, deniedBy };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { Redis } = await import('ioredis');
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const plan = { perMinute: 60, burstMultiplier: 1.5, perHour: 1000, perDay: 5000, utcOffsetMs: 3_600_000 };
  console.log(await runTiers(redis, `demo-${process.pid}`, plan, 120));
  await redis.quit();
}
