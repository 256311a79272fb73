// Another process changing a subject's state through its own limiter: reset, refund or block.
// Usage: change-worker.ts <redisUrl> <prefix> <reset|refund|block> <id> [limitsJson] [blocks]
import { Redis } from 'ioredis';
import { createRateLimiter, type LimitSpec } from '../../src/index.js';

const [url, prefix, op, id, limitsJson, blocks] = process.argv.slice(2) as [string, string, string, string, string | undefined, string | undefined];
const redis = new Redis(url);
const limits = JSON.parse(limitsJson ?? '{"name":"q","algo":"quota","limit":3,"unit":"day"}') as LimitSpec | LimitSpec[];
const rl = createRateLimiter({ redis, prefix, limits, blocks: blocks === 'blocks', timeoutMs: 10_000 });
if (op === 'reset') await rl.reset(id);
else if (op === 'refund') await rl.refund(id, { cost: 1 });
else if (op === 'block') await rl.block(id, 600_000);
await rl.close();
redis.disconnect();
