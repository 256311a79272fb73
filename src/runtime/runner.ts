import { ScriptError } from '../errors.js';
import { transportFor, type RedisClientLike } from './adapters.js';
import type { ScriptDef } from './script-def.js';

export interface RunOptions {
  /**
   * Run with EVALSHA_RO (Redis 7+), so a replica may serve it. Default: the script's own
   * read-only flag (peek scripts).
   */
  readOnly?: boolean;
  /**
   * May share one socket write with the other calls of this turn (a lone decision: the next
   * one is likely on its way). Only the first attempt shares; replies and errors are unchanged.
   */
  shareWrite?: boolean;
  /**
   * The client whose Functions state (FCALL or EVALSHA) this call follows when `client` is not
   * it: a Cluster's, for a call on one of its primaries' own connections (node_batch).
   */
  functionsOf?: RedisClientLike;
}

/**
 * The one way redlimit runs a script: EVALSHA by the SHA1 codegen computed; on NOSCRIPT, EVAL
 * the exact source (which also caches it on that node) and carry on. EVAL rather than
 * SCRIPT LOAD because SCRIPT LOAD on a primary does not reach its replicas' caches, and each
 * cluster node has its own cache. Error replies become `ScriptError`; connection errors are
 * passed through untouched for the caller (or the client's breaker) to judge.
 */
export async function runScript(
  client: RedisClientLike,
  def: ScriptDef,
  keys: string[],
  argv: string[],
  options: RunOptions = {},
): Promise<unknown> {
  const transport = transportFor(client);
  const readOnly = options.readOnly ?? def.readOnly;
  if (options.shareWrite) transport.shareWrite?.();
  const owner = options.functionsOf ?? client;
  if (withFunctions.has(owner)) {
    try {
      return await transport.fcall(`redlimit_${def.name}_v${def.version}`, keys, argv, readOnly);
    } catch (err) {
      if (!isReplyError(err)) throw err;
      const failed = new ScriptError(def.name, err.message, { cause: err });
      // A missing function is a plain ERR: "Function not found" (the node that ran the call lacks
      // it: FUNCTION FLUSH, a Cluster primary added later) makes scripts take over at once; any
      // other ERR asks the library itself whether it is still this one (replaced by another
      // release: scripts take over), else the ERR was the script's own. Asking would not do for
      // the first case on a Cluster: the question goes to any node, which may hold it.
      if (failed.redisCode !== 'ERR' || (!FUNCTION_MISSING.test(err.message) && (await holdsLibrary(client, withFunctions.get(owner)!)))) throw failed;
      withFunctions.delete(owner);
    }
  }
  try {
    return await transport.evalsha(def.sha1, keys, argv, readOnly);
  } catch (err) {
    if (!isReplyError(err)) throw err;
    const failed = new ScriptError(def.name, err.message, { cause: err });
    if (failed.redisCode !== 'NOSCRIPT') throw failed;
  }
  try {
    return await transport.eval(def.source, keys, argv, readOnly);
  } catch (err) {
    if (isReplyError(err)) throw new ScriptError(def.name, err.message, { cause: err });
    throw err;
  }
}

/** Redis 7+ and Valkey's reply to FCALL of a function the server does not hold. */
const FUNCTION_MISSING = /^ERR Function not found/i;

/** The first word of an error reply: its code (ERR, NOSCRIPT, WRONGTYPE, BADARG, ...). */
export function replyCode(err: Error): string {
  const space = err.message.indexOf(' ');
  return space < 0 ? err.message : err.message.slice(0, space);
}

/** Per client: the hash `redlimit_library` answers for the library loaded (null: not known). */
const withFunctions = new WeakMap<object, string | null>();

/** Does the server still hold the library FCALL was switched on for? */
async function holdsLibrary(client: RedisClientLike, hash: string | null): Promise<boolean> {
  try {
    const held = await transportFor(client).fcall('redlimit_library', [], [], true);
    return hash === null || String(held) === hash;
  } catch {
    return false;
  }
}

/** From now on, scripts on `client` run through FCALL (the library is known to be loaded). */
export function markFunctions(client: RedisClientLike, libraryHash: string | null = null): void {
  withFunctions.set(client, libraryHash);
}

/**
 * Loads the Redis Functions library (Redis 7+, Valkey) on every primary and runs every script of
 * this client with FCALL from then on: the library's helpers are created once at load instead
 * of on every EVALSHA, which saves server time per call. If a function goes missing later, the
 * runner falls back to EVALSHA by itself.
 */
export async function loadFunctions(client: RedisClientLike, library: string, libraryHash: string | null = null): Promise<void> {
  const transport = transportFor(client);
  if (transport.kind === 'twin') return; // the twin runs scripts by SHA; it has no library
  await transport.functionLoad(library);
  withFunctions.set(client, libraryHash);
}

/** Loads scripts ahead of traffic (SCRIPT LOAD on every primary). Optional: runScript recovers anyway. */
export async function preload(client: RedisClientLike, defs: readonly ScriptDef[]): Promise<void> {
  const transport = transportFor(client);
  for (const def of defs) await transport.scriptLoad(def.source);
}

/** An error reply from Redis, as opposed to a connection or client-side failure. */
export function isReplyError(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError') return true; // ioredis
  for (let p = Object.getPrototypeOf(err); p && p !== Error.prototype; p = Object.getPrototypeOf(p)) {
    if (p.constructor?.name === 'ErrorReply') return true; // node-redis 5 and 6
  }
  return false;
}
