import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { gcra, tokenBucket } from '../../generated/index.js';
import { ioredis, nodeRedis, uniquePrefix } from '../support/redis.js';

let connections: Redis[];
let prefix: string;
beforeAll(() => {
  connections = Array.from({ length: 4 }, () => ioredis());
  prefix = uniquePrefix('conc');
});
afterAll(() => Promise.all(connections.map((c) => c.quit())));

describe.each([
  { name: 'gcra', run: gcra },
  { name: 'token_bucket', run: tokenBucket },
])('$name under concurrency', ({ name, run }) => {
  it('200 concurrent callers over 4 connections never exceed the burst', async () => {
    const key = `${prefix}${name}`;
    // One unit per hour after a burst of 50: on the server clock nothing refills during the test.
    const args = { key, limit: 1, periodMs: 3_600_000, burst: 50 };
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => run(connections[i % 4]!, args)));
    const admitted = results.filter((r) => r.allowed).length;
    expect(admitted).toBe(50);
    expect(results.filter((r) => !r.allowed).every((r) => r.retryAfterMs > 0)).toBe(true);
    // Every remaining value from 49 down to 0 was handed out exactly once.
    expect(results.filter((r) => r.allowed).map((r) => r.remaining).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('runs the same through node-redis 5', async () => {
    const client = await nodeRedis();
    try {
      const key = `${prefix}${name}:node`;
      const results = await Promise.all(Array.from({ length: 40 }, () => run(client, { key, limit: 1, periodMs: 3_600_000, burst: 10 })));
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
    } finally {
      await client.quit();
    }
  });
});
