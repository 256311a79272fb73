/**
 * Every algorithm of scripts-lua/lib/algo_*.lua in TypeScript, step for step, over a MemoryStore:
 * the exact in-memory twin the client falls back to. Same integer math (src/twin/exact.ts,
 * src/twin/bucket.ts), same replies; differential tests hold the two together.
 */
export { apply, keep, type Eval, type Write } from './eval.js';
export * from './gcra.js';
export * from './token-bucket.js';
export * from './windows.js';
export * from './sliding-log.js';
export * from './block.js';
export * from './concurrency.js';
