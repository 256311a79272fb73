/**
 * User / team / org hierarchy: every request counts against the user's own limit, the team's
 * and the org's shared quota, all or nothing. The org is the hash tag, so a tenant's keys share a
 * cluster slot and one script call sees them all.
 */
import { multi, multiPeek, type MultiItem, type RedisClientLike } from 'redlimit';

export interface Caller {
  org: string;
  team: string;
  user: string;
}

export function hierarchyLimits(c: Caller, cost = 1): MultiItem[] {
  const tag = `rl:{org:${c.org}}`;
  return [
    { key: `${tag}:user:${c.user}`, algo: 'token_bucket', limit: 10, periodMs: 1_000, burst: 20, cost },
    { key: `${tag}:team:${c.team}`, algo: 'sliding_window', limit: 50, periodMs: 1_000, cost },
    { key: `${tag}:org`, algo: 'quota', limit: 1_000, unit: 'month', cost },
  ];
}

export async function request(client: RedisClientLike, c: Caller, cost = 1, nowMs?: number) {
  return multi(client, { limits: hierarchyLimits(c, cost), nowMs });
}

/** Usage as a dashboard shows it, without consuming anything (runs on a replica if routed so). */
export async function usage(client: RedisClientLike, c: Caller, nowMs?: number) {
  const r = await multiPeek(client, { limits: hierarchyLimits(c, 0), nowMs });
  return { user: r.limits[0]!.remaining, team: r.limits[1]!.remaining, org: r.limits[2]!.remaining };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { Redis } = await import('ioredis');
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const org = `acme-${process.pid}`;
  for (const user of ['ann', 'bob']) for (let i = 0; i < 25; i++) await request(redis, { org, team: 'core', user });
  console.log(await usage(redis, { org, team: 'core', user: 'ann' }));
  await redis.quit();
}
