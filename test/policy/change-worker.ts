/**
 * One process of the policy multi-process test: `callers` concurrent callers make `calls` decisions
 * each (and on until they see a newer policy version) on one subject through a PolicyLimiter. The process started with `changer` = 1 lowers the
 * limit (policy_set) after its 25th admitted call. argv: redisUrl prefix callers calls changer newLimit.
 * Prints {"decisions":[[startMs,endMs,allowed,version],...],"change":{version,doneMs,counter}|null}.
 */
import { Redis } from 'ioredis';
import { createPolicyLimiter } from '../../src/policy/index.js';
import { windowCount } from './change-worker-count.js';

const [url, prefix, callers, calls, changer, newLimit] = process.argv.slice(2);
const redis = new Redis(url!, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
await new Promise((resolve) => redis.once('ready', resolve));
const limiter = createPolicyLimiter({ redis, prefix: prefix!, chain: () => ['default'], timeoutMs: 5_000 });
// Subscribed before the load starts (a process that starts late would just poll).
for (let i = 0; i < 2000 && !limiter.stats().subscribed; i++) await new Promise((r) => setTimeout(r, 5));
// A barrier: the load starts when every process is ready, so the change lands while all decide.
await redis.incr(`${prefix}:ready`);
for (let i = 0; i < 6000 && Number(await redis.get(`${prefix}:ready`)) < 4; i++) await new Promise((r) => setTimeout(r, 10));
const decisions: Array<[number, number, number, number]> = [];
let firstVersion = -2;
let sawChange = false;
let admitted = 0;
let change: { version: number; doneMs: number; counter: number } | null = null;
let changing: Promise<void> | null = null;
await Promise.all(
  Array.from({ length: Number(callers) }, async () => {
    // At least `calls` decisions, and on until this process has decided at a newer version (bounded).
    for (let i = 0; (i < Number(calls) || !sawChange) && i < 40 * Number(calls); i++) {
      const start = Date.now();
      const d = await limiter.limit('fleet');
      if (firstVersion === -2) firstVersion = d.policyVersion;
      else if (d.policyVersion > firstVersion) sawChange = true;
      decisions.push([start, Date.now(), d.allowed ? 1 : 0, d.policyVersion]);
      if (d.allowed) admitted++;
      if (changer === '1' && admitted >= 25 && !changing) {
        changing = limiter.policies
          .set('default', { limits: [{ name: 'rpd', algo: 'fixed_window', limit: Number(newLimit), periodMs: 86_400_000 }] }, { author: 'worker', reason: 'lower under load' })
          .then(async (version) => {
            const doneMs = Date.now();
            change = { version, doneMs, counter: await windowCount(redis, `${prefix}:{fleet}:rpd`) };
          });
      }
    }
  }),
);
await changing;
await limiter.close();
await redis.quit();
process.stdout.write(JSON.stringify({ decisions, change }));
