import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, inject } from 'vitest';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { useFunctions } from '../../src/index.js';

/** The Redis the global setup found (REDIS_URL, a container, or a local redis-server). */
export function redisUrl(): string {
  return inject('redisUrl');
}

/** A key prefix no other test uses: tests share one server and isolate by prefix. */
export function uniquePrefix(label: string): string {
  return `rltest:${label}:${randomBytes(4).toString('hex')}:`;
}

export function ioredis(url = redisUrl()): Redis {
  return new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
}

export async function nodeRedis(url = redisUrl()) {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/**
 * A deadline for limiters in tests that are not about deadlines. On a loaded machine Redis itself
 * may wait for the CPU longer than the 100 ms default, and a call would go to the fallback: such a
 * test must not depend on how fast Redis is scheduled.
 */
export const UNHURRIED = { timeoutMs: 10_000 } as const;

/** An ioredis client that has connected (a limiter sends nothing to a client that is not ready). */
export async function readyIoredis(url = redisUrl()): Promise<Redis> {
  const client = ioredis(url);
  await client.ping();
  return client;
}

/**
 * A redis-server of the calling test file's own (FUNCTION LOAD would disturb other files'
 * servers), started before its tests and stopped after them, with the Functions library loaded,
 * and two clients of it: `fn` calls the library (FCALL: what a library keeps between calls,
 * kept), `sha` sends each script by EVALSHA (a fresh script each call).
 */
export function functionsServerForFile(): { readonly fn: Redis; readonly sha: Redis } {
  let server: LocalRedis | undefined;
  let fn: Redis | undefined;
  let sha: Redis | undefined;
  beforeAll(async () => {
    server = await startLocalRedis();
    fn = new Redis(server.url);
    sha = new Redis(server.url);
    await useFunctions(fn);
  });
  afterAll(async () => {
    await fn?.quit();
    await sha?.quit();
    await server?.stop();
  });
  return {
    get fn() {
      return fn!;
    },
    get sha() {
      return sha!;
    },
  };
}
