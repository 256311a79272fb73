/**
 * `npm start`: simulated workers of one fleet share a single limit on real Redis.
 * Redis: REDIS_URL, else localhost:6379, else a redis-server started for the demo.
 */
import { Redis } from 'ioredis';
import { gcra } from '../src/index.js';
import { findRedis } from './find-redis.js';

const WORKERS = 6;
const SECONDS = 5;
const LIMIT = 50; // per second, fleet-wide
const BURST = 10;

const found = await findRedis();
console.log(`redlimit demo on ${found.description}`);
if (!found.url) {
  console.log('Set REDIS_URL or install redis-server to run the demo.');
  process.exit(0);
}
const url = found.url;
console.log(`${WORKERS} workers, each trying ~40 requests/s against one fleet-wide limit of ${LIMIT}/s (burst ${BURST})\n`);
const clients = Array.from({ length: WORKERS }, () => new Redis(url));
const key = `redlimit:demo:${process.pid}`;

for (let second = 1; second <= SECONDS; second++) {
  const perWorker = await Promise.all(
    clients.map(async (client) => {
      let allowed = 0;
      let denied = 0;
      const end = Date.now() + 1000;
      while (Date.now() < end) {
        const r = await gcra(client, { key, limit: LIMIT, periodMs: 1000, burst: BURST });
        if (r.allowed) allowed++;
        else denied++;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return { allowed, denied };
    }),
  );
  const allowed = perWorker.reduce((s, w) => s + w.allowed, 0);
  const denied = perWorker.reduce((s, w) => s + w.denied, 0);
  console.log(`second ${second}: allowed ${String(allowed).padStart(3)}  denied ${String(denied).padStart(3)}  per worker: ${perWorker.map((w) => w.allowed).join(' ')}`);
}
await Promise.all(clients.map((c) => c.quit()));
await found.stop();
