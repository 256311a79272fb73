import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/index.js';
import { ioredis, redisUrl, UNHURRIED, uniquePrefix } from './support/redis.js';
import { repoRoot } from './support/temp-scripts.js';
import { PYTHON } from '../devtools/python.js';

const run = promisify(execFile);
const BINDING = join(repoRoot, 'generated/python');
const YEAR = 31_622_400_000; // nothing refills, no window ends, during a test

// One limit per algorithm, small enough that a run of calls reaches denials; long periods.
const LIMITS = [
  { name: 'm', algo: 'gcra', limit: 12, periodMs: YEAR, burst: 9 },
  { name: 'm', algo: 'token_bucket', limit: 12, periodMs: YEAR, burst: 10 },
  { name: 'm', algo: 'fixed_window', limit: 11, periodMs: YEAR },
  { name: 'm', algo: 'sliding_window', limit: 13, periodMs: YEAR },
  { name: 'm', algo: 'sliding_log', limit: 10, periodMs: YEAR },
  { name: 'm', algo: 'quota', limit: 14, unit: 'month', timeZone: 'America/Los_Angeles' },
] as const;
const py = (l: (typeof LIMITS)[number]) => ({
  name: l.name, algo: l.algo, limit: l.limit,
  ...('periodMs' in l ? { period_ms: l.periodMs } : {}), ...('burst' in l ? { burst: l.burst } : {}),
  ...('unit' in l ? { unit: l.unit, time_zone: l.timeZone } : {}),
});

type Op = { id: number; cost: number; priority: 'low' | null };

describe("the Python Limiter of one limit runs the algorithm's own script: the same answers as multi, and as Node's limiter", () => {
  it('every algorithm: random costs, ids and priority classes give identical decisions through the own script, through multi, and from a Node limiter on the same keys', async () => {
    const redis = ioredis();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.record({ id: fc.integer({ min: 0, max: 2 }), cost: fc.integer({ min: 0, max: 6 }), priority: fc.constantFrom('low' as const, null) }), { minLength: 1, maxLength: 14 }), async (ops: Op[]) => {
          const prefixes = LIMITS.map((l) => uniquePrefix(`py-single-${l.algo}`).slice(0, -1));
          const code = `import json, sys
sys.path.insert(0, ${JSON.stringify(BINDING)})
import redis, redlimit_scripts as rl
client = redis.Redis.from_url(${JSON.stringify(redisUrl())})
limits = json.loads(${JSON.stringify(JSON.stringify(LIMITS.map(py)))})
prefixes = json.loads(${JSON.stringify(JSON.stringify(prefixes))})
ops = json.loads(${JSON.stringify(JSON.stringify(ops))})
out = []
for spec, prefix in zip(limits, prefixes):
    own = rl.Limiter(client, rl.Limit(**spec), prefix=prefix + "o", priorities={"low": 0.5})
    through_multi = rl.Limiter(client, rl.Limit(**spec), prefix=prefix + "m", priorities={"low": 0.5})
    assert own._single is not None
    through_multi._single = None  # the route before: multi with one item
    rows = []
    for op in ops:
        a = own.limit(f"id-{op['id']}", cost=op["cost"], priority=op["priority"])
        b = through_multi.limit(f"id-{op['id']}", cost=op["cost"], priority=op["priority"])
        rows.append([[d.allowed, d.remaining, d.limit_name, d.denied_by, d.retry_after_ms < 0, d.priority.class_name if d.priority else None, [x.remaining for x in d.limits], d.source] for d in (a, b)])
    out.append(rows)
print(json.dumps(out))`;
          const { stdout } = await run(PYTHON, ['-c', code], { timeout: 60_000 });
          const out = JSON.parse(stdout) as unknown[][][][];
          for (const [i, rows] of out.entries()) {
            for (const [own, multi] of rows as unknown[][]) expect(own, `${LIMITS[i]!.algo}: ${JSON.stringify(ops)}`).toEqual(multi);
            // Node's limiter (coalesced batch) continues the count the Python calls left on the own-script keys.
            const node = createRateLimiter({ redis, prefix: `${prefixes[i]}o`, limits: LIMITS[i] as never, priorities: { low: 0.5 }, denyCache: false, ...UNHURRIED });
            for (const id of [0, 1, 2]) {
              const last = [...ops.keys()].reverse().find((k) => ops[k]!.id === id);
              if (last === undefined) continue;
              const after = ((rows[last] as unknown[][])[0] as [boolean, number])[1]; // what the id held after Python's last call
              expect((await node.peek(`id-${id}`)).remaining, `${LIMITS[i]!.algo} id-${id}`).toBe(after);
            }
            await node.close();
          }
        }),
        { numRuns: 12, seed: 1703 },
      );
    } finally {
      redis.disconnect();
    }
  }, 180_000);
});
