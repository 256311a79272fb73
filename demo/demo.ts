/**
 * `npm start`: six workers of one fleet share a limit of 50 requests/s on real Redis. Midway the
 * Redis goes away (killed, when the demo started it; else the workers are cut off from it) and
 * comes back: watch the breaker open, the in-memory fallback take over (each worker enforcing
 * its 1/6 share), and Redis become authoritative again.
 * Redis: a redis-server the demo starts, else REDIS_URL / localhost:6379, else the fallback alone.
 */
import { Redis } from 'ioredis';
import { createRateLimiter, type DecisionSource, type RateLimiter } from '../src/index.js';
import { findRedis } from './find-redis.js';

const WORKERS = 6;
const LIMIT = 50;
const PHASES = [
  { seconds: 3, label: 'normal' },
  { seconds: 3, label: 'outage' },
  { seconds: 4, label: 'recovered' },
] as const;

const found = await findRedis();
console.log(`redlimit demo: ${WORKERS} workers, one fleet-wide limit of ${LIMIT}/s (gcra, burst 10), on ${found.description}\n`);

const clients: Redis[] = [];
const limiters: RateLimiter[] = [];
const key = `demo-${process.pid}`;
for (let i = 0; i < WORKERS; i++) {
  const redis = found.url ? new Redis(found.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0, retryStrategy: () => 100 }) : undefined;
  redis?.on('error', () => {});
  if (redis) clients.push(redis);
  limiters.push(
    createRateLimiter({
      redis,
      prefix: 'redlimit-demo',
      limits: { name: 'fleet', algo: 'gcra', limit: LIMIT, periodMs: 1000, burst: 10 },
      fallbackShare: WORKERS,
      timeoutMs: 50,
      breaker: { consecutiveFailures: 3, resetTimeoutMs: 500, successesToClose: 2 },
    }),
  );
}
// Give the connections a moment; if Redis does not answer, the fallback decides from the start.
await Promise.race([Promise.all(clients.map((c) => (c.status === 'ready' ? undefined : new Promise((r) => c.once('ready', r))))), new Promise((r) => setTimeout(r, 2000))]);

async function outage(): Promise<string> {
  if (found.kill) {
    await found.kill();
    return 'redis-server killed (SIGKILL)';
  }
  for (const c of clients) c.disconnect();
  return 'workers cut off from Redis';
}

async function recover(): Promise<string> {
  if (found.restart) {
    await found.restart();
    return 'redis-server restarted';
  }
  for (const c of clients) c.connect().catch(() => {});
  return 'workers reconnecting';
}

let second = 0;
for (const phase of PHASES) {
  if (found.url && phase.label === 'outage') console.log(`-- ${await outage()}`);
  if (found.url && phase.label === 'recovered') console.log(`-- ${await recover()}`);
  for (let s = 0; s < phase.seconds; s++) {
    second++;
    const sources: Partial<Record<DecisionSource, number>> = {};
    let allowed = 0;
    let denied = 0;
    const end = Date.now() + 1000;
    await Promise.all(
      limiters.map(async (rl) => {
        while (Date.now() < end) {
          const d = await rl.limit(key);
          if (d.allowed) allowed++;
          else denied++;
          sources[d.source] = (sources[d.source] ?? 0) + 1;
          await new Promise((r) => setTimeout(r, 20));
        }
      }),
    );
    const breakers = limiters.map((l) => l.stats().breaker?.state ?? 'none');
    const src = Object.entries(sources).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`t=${String(second).padStart(2)}s ${phase.label.padEnd(9)} allowed ${String(allowed).padStart(3)}  denied ${String(denied).padStart(3)}  sources: ${src.padEnd(34)} breakers: ${summarize(breakers)}`);
  }
}
console.log('\nallowed stays near 50/s: Redis enforces it fleet-wide; during the outage each worker enforces 50/6.');
await Promise.all(limiters.map((l) => l.close()));
for (const c of clients) c.disconnect();
await found.stop();

function summarize(states: string[]): string {
  const counts = new Map<string, number>();
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${n} ${s}`).join(', ');
}
