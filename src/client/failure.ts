import { InvalidArgumentError, ScriptError, StateKeyError } from '../errors.js';

/**
 * What a failed Redis call means, decided here only (by error class and Redis error code, never
 * by the wording of a message):
 * - `caller`: the call itself was wrong — a refused argument (InvalidArgumentError, a script's
 *   BADARG) or a key of its own holding something else (WRONGTYPE, WRONGSTATE). The caller gets
 *   a typed error; the breaker hears nothing and the failure policy is not consulted, so no input
 *   can push other callers off Redis.
 * - `moving`: a Cluster slot on the move (TRYAGAIN, MOVED, ASK). Redis answered, so it is no
 *   failure of Redis; this call still takes the failure path.
 * - `redis`: everything else (connection, timeout, LOADING, BUSY, OOM, READONLY, NOSCRIPT after
 *   the retry, an unknown reply): counts against the breaker, and the failure policy answers.
 */
export type FailureKind = 'caller' | 'moving' | 'redis';

const CALLER_CODES: ReadonlySet<string> = new Set(['BADARG', 'WRONGSTATE', 'WRONGTYPE']);
const MOVING_CODES: ReadonlySet<string> = new Set(['TRYAGAIN', 'MOVED', 'ASK']);

export function classify(err: unknown): FailureKind {
  if (err instanceof InvalidArgumentError || err instanceof StateKeyError) return 'caller';
  if (err instanceof ScriptError) {
    if (CALLER_CODES.has(err.redisCode)) return 'caller';
    if (MOVING_CODES.has(err.redisCode)) return 'moving';
  }
  return 'redis';
}

/** Is this the caller's own mistake (to be thrown to it), rather than Redis failing? */
export function isCallerError(err: unknown): boolean {
  return classify(err) === 'caller';
}

/**
 * The typed error a caller gets for its own mistake: a script's BADARG becomes an
 * InvalidArgumentError, a WRONGTYPE / WRONGSTATE a StateKeyError (naming `keys[0]` when the call
 * had one key, since Redis does not say which). Anything else is returned as it is.
 */
export function callerError(err: unknown, keys: readonly string[]): unknown {
  if (!(err instanceof ScriptError)) return err;
  if (err.redisCode === 'BADARG') {
    // The reply reads `BADARG redlimit <script>: <message>`; the message is what the caller needs.
    const prefix = `BADARG redlimit ${err.script}: `;
    const message = err.redisMessage.startsWith(prefix) ? err.redisMessage.slice(prefix.length) : err.redisMessage;
    return new InvalidArgumentError(err.script, '', message, { cause: err });
  }
  if (err.redisCode === 'WRONGTYPE' || err.redisCode === 'WRONGSTATE') {
    return new StateKeyError(err.script, err.redisCode, keys.length === 1 ? keys[0]! : null, { cause: err });
  }
  return err;
}
