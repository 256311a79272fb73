export type { ArgSpec, CheckSpec, KeySpec, ReturnSpec, ScriptDef } from './script-def.js';
export type { RedisClientLike, ScriptTransport } from './adapters.js';
export { transportFor, primaryFor } from './adapters.js';
export { runScript, preload, loadFunctions, isReplyError, type RunOptions } from './runner.js';
export { intArg, stringArg, enumArg, keyArg, nonEmpty, trimOptional } from './validate.js';
export { hashSlot, sameSlot, slotOwner } from './slots.js';
export { checks, type MultiItemInput } from './checks.js';
