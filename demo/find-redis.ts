import { pings, redisServerBinary, startLocalRedis, type LocalRedis } from '../devtools/local-redis.js';

export interface FoundRedis {
  url: string | undefined;
  description: string;
  stop(): Promise<void>;
  /** Present when the demo owns the server and can crash it. */
  kill?: () => Promise<void>;
  restart?: () => Promise<void>;
}

/** A redis-server of the demo's own (so it can show an outage), else REDIS_URL / localhost:6379, else none. */
export async function findRedis(): Promise<FoundRedis> {
  if (!process.env.REDIS_URL && redisServerBinary()) {
    let local: LocalRedis = await startLocalRedis();
    return {
      url: local.url,
      description: `a redis-server started for the demo (port ${local.port})`,
      stop: () => local.stop(),
      kill: () => local.kill(),
      restart: async () => {
        local = await local.restart();
      },
    };
  }
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, description: `REDIS_URL (${process.env.REDIS_URL})`, stop: async () => {} };
  if (await pings(6379, 300)) return { url: 'redis://127.0.0.1:6379', description: 'Redis on localhost:6379', stop: async () => {} };
  return { url: undefined, description: 'no Redis (none configured, none on localhost:6379, no redis-server binary): the embedded in-memory fallback', stop: async () => {} };
}
