/**
 * One process of the multi-process load test: many concurrent callers on one fleet-wide limit.
 * argv: redisUrl prefix callers callsPerCaller. Prints {"admitted":N,"sources":{...}} on stdout.
 */
import { Redis } from 'ioredis';
import { createRateLimiter } from '../../src/index.js';

const [url, prefix, callers, calls] = process.argv.slice(2);
const redis = new Redis(url!, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
await new Promise((resolve) => redis.once('ready', resolve));
const rl = createRateLimiter({
  redis,
  prefix: prefix!,
  limits: [
    { name: 'burst', algo: 'gcra', limit: 1, periodMs: 3_600_000, burst: 500 },
    { name: 'hour', algo: 'sliding_window', limit: 10_000, periodMs: 3_600_000 },
  ],
  timeoutMs: 10_000, // not about deadlines: a starved Redis must not send a call to the fallback
});
let admitted = 0;
const sources: Record<string, number> = {};
await Promise.all(
  Array.from({ length: Number(callers) }, async () => {
    for (let i = 0; i < Number(calls); i++) {
      const d = await rl.limit('fleet');
      if (d.allowed) admitted++;
      sources[d.source] = (sources[d.source] ?? 0) + 1;
    }
  }),
);
await rl.close();
await redis.quit();
process.stdout.write(JSON.stringify({ admitted, sources }));
