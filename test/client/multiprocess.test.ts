import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { redisUrl, uniquePrefix } from '../support/redis.js';
import { repoRoot } from '../support/temp-scripts.js';

const run = promisify(execFile);

describe('fleet load', () => {
  it('8 worker processes x 25 concurrent callers on one limit never admit more than it allows', async () => {
    const prefix = uniquePrefix('fleet').slice(0, -1);
    const worker = join(repoRoot, 'test/support/load-worker.ts');
    const outputs = await Promise.all(
      Array.from({ length: 8 }, () => run(process.execPath, ['--import', 'tsx', worker, redisUrl(), prefix, '25', '8'], { cwd: repoRoot, timeout: 240_000 })),
    );
    const results = outputs.map((o) => JSON.parse(o.stdout) as { admitted: number; sources: Record<string, number> });
    const admitted = results.reduce((s, r) => s + r.admitted, 0);
    expect(admitted).toBe(500); // 1600 calls for a burst of 500 that does not refill within the test
    expect(results.every((r) => Object.keys(r.sources).every((src) => src === 'redis' || src === 'deny-cache'))).toBe(true);
  }, 300_000); // eight node processes starting tsx beside a CPU hog can take minutes
});
