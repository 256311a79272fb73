/**
 * `npm run bench:memory`: Redis bytes per limited id, measured from outside.
 *
 * On a redis-server of its own, each contender makes one decision for each of IDS ids (user-0 ..
 * user-1999), then the bench reads MEMORY USAGE (SAMPLES 0) of every key it made, and OBJECT
 * ENCODING and the stored value of a sample key. The server is flushed between contenders.
 *
 * MEMORY USAGE of a key = its value object (16 B when int-encoded: the value lives in the object)
 * + the key's sds (jemalloc classes 16, 32, 48 B: a key of up to 14 characters takes 16 B, up to
 * 30 takes 32 B) + the dict entry (24 B). So a key one character longer than the peer's costs 16 B
 * for the ids whose length crosses a class: the row with prefix "r" makes redlimit's keys exactly
 * as long as the peer's ("r:{user-1}:m" and "rlflx:user-1"), which isolates the state's own bytes.
 *
 * Contenders: rate-limiter-flexible RateLimiterRedis with its defaults (keyPrefix "rlflx"; points
 * and duration, which v11 requires, at 4 per hour so no key expires while the bench measures), and
 * redlimit createRateLimiter with its defaults (prefix "rl") and one limit of each algorithm at the
 * same 4 per hour (quota: 4 per day), plus gcra at 7 per hour, whose theoretical arrival time has a
 * fraction of a ms, and token_bucket with two decisions per id (the refill between them leaves a
 * fraction of a unit: token_bucket v4's compact integer on the server clock; v3 kept a string).
 */
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createRateLimiter, type LimitSpec } from '../src/index.js';
import { startLocalRedis } from '../devtools/local-redis.js';

const IDS = Number(process.env.BENCH_IDS ?? 2_000);

interface Contender {
  name: string;
  make(redis: Redis): { decide(id: string): Promise<unknown>; close(): Promise<void> };
}

function redlimit(name: string, limit: LimitSpec, prefix?: string, decisions = 1): Contender {
  return {
    name,
    make(redis) {
      const limiter = createRateLimiter({ redis, limits: [limit], timeoutMs: 10_000, ...(prefix ? { prefix } : {}) });
      const decide = async (id: string) => {
        for (let i = 0; i < decisions; i++) await limiter.limit(id);
      };
      return { decide, close: () => limiter.close() };
    },
  };
}

const contenders: Contender[] = [
  {
    name: 'rate-limiter-flexible RateLimiterRedis',
    make(redis) {
      const rl = new RateLimiterRedis({ storeClient: redis, points: 4, duration: 3600 }); // required in v11; the rest defaults
      return { decide: (id) => rl.consume(id).catch((r: unknown) => r), close: async () => {} };
    },
  },
  redlimit('redlimit gcra 4/h', { name: 'm', algo: 'gcra', limit: 4, periodMs: 3_600_000 }),
  redlimit('redlimit gcra 7/h (fractional tat)', { name: 'm', algo: 'gcra', limit: 7, periodMs: 3_600_000 }),
  redlimit('redlimit fixed_window 4/h', { name: 'm', algo: 'fixed_window', limit: 4, periodMs: 3_600_000 }),
  redlimit('redlimit sliding_window 4/h', { name: 'm', algo: 'sliding_window', limit: 4, periodMs: 3_600_000 }),
  redlimit('redlimit token_bucket 4/h', { name: 'm', algo: 'token_bucket', limit: 4, periodMs: 3_600_000 }),
  redlimit('redlimit token_bucket 4/h, 2 decisions per id (a fraction left)', { name: 'm', algo: 'token_bucket', limit: 4, periodMs: 3_600_000 }, undefined, 2),
  redlimit('redlimit quota 4/day', { name: 'm', algo: 'quota', limit: 4, unit: 'day' }),
  redlimit('redlimit gcra 4/h, prefix "r" (keys as long as the peer\'s)', { name: 'm', algo: 'gcra', limit: 4, periodMs: 3_600_000 }, 'r'),
];

async function allKeys(redis: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = (await redis.scan(cursor, 'COUNT', 1000)) as [string, string[]];
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys.sort();
}

async function sample(redis: Redis, key: string): Promise<string> {
  const type = await redis.type(key);
  if (type === 'string') return JSON.stringify(await redis.get(key));
  if (type === 'hash') return JSON.stringify(await redis.hgetall(key));
  return type;
}

async function main(): Promise<void> {
  const server = await startLocalRedis();
  const redis = new Redis(server.port, '127.0.0.1');
  try {
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))![1];
    console.log(`# Redis bytes per limited id: ${IDS} ids, one decision each (redis-server ${version}, own process)\n`);
    const rows: string[][] = [['contender', 'MEMORY USAGE B/id', 'ratio', 'encoding', 'sample key', 'sample value']];
    let reference = NaN;
    for (const c of contenders) {
      await redis.flushall();
      const m = c.make(redis);
      const ids = Array.from({ length: IDS }, (_, i) => `user-${i}`);
      await m.decide('warm-up'); // scripts loaded, connection ready
      await redis.del(...(await allKeys(redis)));
      for (let i = 0; i < ids.length; i += 100) await Promise.all(ids.slice(i, i + 100).map((id) => m.decide(id)));
      const keys = await allKeys(redis);
      let bytes = 0;
      for (const k of keys) bytes += Number(await redis.memory('USAGE', k, 'SAMPLES', '0'));
      const perId = bytes / IDS;
      if (Number.isNaN(reference)) reference = perId;
      const key = keys.find((k) => k.includes('user-1')) ?? keys[0]!;
      const encoding = String(await redis.object('ENCODING', key));
      rows.push([c.name, perId.toFixed(1), (perId / reference).toFixed(2), encoding, key, await sample(redis, key)]);
      if (keys.length !== IDS) rows.push([`  (${keys.length} keys for ${IDS} ids)`, '', '', '', '', '']);
      await m.close();
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
    for (const r of rows) console.log(r.map((cell, i) => (i === 0 || i >= 3 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
  } finally {
    redis.disconnect();
    await server.stop();
  }
}

await main();
