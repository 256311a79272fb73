// redlimit: distributed rate limiting on Redis.
export * from '../generated/index.js';
export { TwinClient } from './twin/client.js';
export { MemoryStore } from './twin/store.js';
export { preload, runScript, type RedisClientLike, type ScriptDef } from './runtime/index.js';
export * from './errors.js';
