import { functionsLibrary, functionsLibraryHash } from '../../generated/index.js';
import { transportFor, type RedisClientLike } from './adapters.js';
import { isReplyError, loadFunctions, markFunctions, replyCode } from './runner.js';

/** Loads redlimit's Functions library on `client` (FUNCTION LOAD REPLACE) and runs every script through FCALL. */
export function useFunctions(client: RedisClientLike): Promise<void> {
  return loadFunctions(client, functionsLibrary, functionsLibraryHash);
}

/** What automatic loading found on a client's server. */
export type FunctionsState = 'fcall' | 'evalsha' | 'other-library' | 'unsupported';

const attempts = new WeakMap<object, Promise<FunctionsState>>();

/**
 * Switches a standalone client to FCALL when its server can hold this exact library, without
 * ever replacing a library someone else loaded: asks the server which redlimit library it holds
 * (FCALL_RO redlimit_library); when none, loads ours without REPLACE. Another release's library,
 * a server without Functions (before 7.0), an ACL user without FUNCTION / FCALL, or a Cluster
 * (every primary would need it; use useFunctions there) all leave the client on EVALSHA, which
 * needs nothing loaded. Runs once per client, in the background; never throws.
 */
export function autoFunctions(client: RedisClientLike): Promise<FunctionsState> {
  let attempt = attempts.get(client);
  if (!attempt) {
    attempt = tryFunctions(client).catch(() => 'unsupported' as const);
    attempts.set(client, attempt);
  }
  return attempt;
}

async function tryFunctions(client: RedisClientLike): Promise<FunctionsState> {
  const t = transportFor(client);
  const c = client as { isCluster?: boolean; masters?: unknown };
  if (t.kind === 'twin' || c.isCluster === true || Array.isArray(c.masters)) return 'unsupported';
  const held = async (): Promise<string | null> => {
    try {
      return String(await t.fcall('redlimit_library', [], [], true));
    } catch (err) {
      // No such function (a plain ERR); NOPERM and the like are thrown (left on EVALSHA).
      if (isReplyError(err) && replyCode(err) === 'ERR') return null;
      throw err;
    }
  };
  let hash = await held();
  if (hash === null) {
    try {
      await t.functionLoad(functionsLibrary, false);
    } catch (err) {
      // ERR: a library of that name is there already (a racing instance, another release);
      // asking again below says which.
      if (!isReplyError(err) || replyCode(err) !== 'ERR') throw err;
    }
    hash = await held(); // loaded now, or by a racing instance, or another release's library
  }
  if (hash !== functionsLibraryHash) return 'other-library';
  markFunctions(client, functionsLibraryHash);
  return 'fcall';
}
