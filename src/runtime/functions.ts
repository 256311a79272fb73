import { functionsLibrary, functionsLibraryHash } from '../../generated/index.js';
import { primaryClients, transportFor, type RedisClientLike } from './adapters.js';
import { isReplyError, loadFunctions, markFunctions, replyCode } from './runner.js';

/** Loads redlimit's Functions library on `client` (FUNCTION LOAD REPLACE) and runs every script through FCALL. */
export function useFunctions(client: RedisClientLike): Promise<void> {
  return loadFunctions(client, functionsLibrary, functionsLibraryHash);
}

/** What automatic loading found on a client's server. */
export type FunctionsState = 'fcall' | 'evalsha' | 'other-library' | 'unsupported';

const attempts = new WeakMap<object, Promise<FunctionsState>>();

/**
 * Switches a client to FCALL when its server can hold this exact library, without ever
 * replacing a library someone else loaded: asks the server which redlimit library it holds
 * (FCALL_RO redlimit_library); when none, loads ours without REPLACE. A Cluster switches only if
 * every primary holds this library then (its replicas get it by replication; a primary added
 * later without it makes the first FCALL there fall back to EVALSHA for good, see runScript).
 * Another release's library, a server without Functions (before 7.0) or an ACL user without
 * FUNCTION / FCALL leave the client on EVALSHA, which needs nothing loaded. Runs once per
 * client, in the background; never throws.
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
  if (transportFor(client).kind === 'twin') return 'unsupported';
  const primaries = await primaryClients(client);
  if (primaries !== null) {
    if (primaries.length === 0) return 'unsupported';
    // Every primary must hold this library: the first that cannot says why.
    const states = await Promise.all(primaries.map((p) => holdOurs(p)));
    const refused = states.find((s) => s !== 'fcall');
    if (refused !== undefined) return refused;
  } else {
    const state = await holdOurs(client);
    if (state !== 'fcall') return state;
  }
  markFunctions(client, functionsLibraryHash);
  return 'fcall';
}

/** Makes one server hold this library if it holds no redlimit library: 'fcall' when it then holds this one. */
async function holdOurs(server: RedisClientLike): Promise<FunctionsState> {
  const t = transportFor(server);
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
  return hash === functionsLibraryHash ? 'fcall' : 'other-library';
}
