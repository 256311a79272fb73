import { functionsLibrary } from '../../generated/index.js';
import type { RedisClientLike } from './adapters.js';
import { loadFunctions } from './runner.js';

/** Loads redlimit's Functions library on `client` and runs every script through FCALL. */
export function useFunctions(client: RedisClientLike): Promise<void> {
  return loadFunctions(client, functionsLibrary);
}
