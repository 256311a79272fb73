import type { Decision } from './decision.js';

/** Every error redlimit raises on purpose carries a stable `code`. */
export type RedlimitErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_INVALID_CONFIG'
  | 'ERR_SCRIPT'
  | 'ERR_CROSS_SLOT'
  | 'ERR_UNSUPPORTED_CLIENT'
  | 'ERR_UNSUPPORTED_SERVER'
  | 'ERR_REDIS_UNAVAILABLE'
  | 'ERR_RATE_LIMITED'
  | 'ERR_WRONG_STATE';

export class RedlimitError extends Error {
  constructor(
    readonly code: RedlimitErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * An argument a script refuses: caught before the round trip, or refused by the script itself
 * (its BADARG reply, then the ScriptError is the `cause`). The caller's mistake, never Redis'.
 */
export class InvalidArgumentError extends RedlimitError {
  constructor(
    readonly script: string,
    readonly argument: string,
    /** What is wrong, without the `redlimit <script>: ` the message opens with. */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super('ERR_INVALID_ARGUMENT', `redlimit ${script}: ${detail}`, options);
  }
}

/**
 * Redis answered a script call with an error reply. `redisCode` is its first word, the stable
 * part: the scripts' own BADARG (a refused argument) and WRONGSTATE (a key holding a value that
 * is not the script's state), or Redis' WRONGTYPE, TRYAGAIN, MOVED, ASK, NOSCRIPT, OOM, ...
 * Match the code, never the words after it.
 */
export class ScriptError extends RedlimitError {
  readonly redisCode: string;

  constructor(
    readonly script: string,
    readonly redisMessage: string,
    options?: { cause?: unknown },
  ) {
    super('ERR_SCRIPT', `redlimit ${script}: Redis replied: ${redisMessage}`, options);
    const space = redisMessage.indexOf(' ');
    this.redisCode = space < 0 ? redisMessage : redisMessage.slice(0, space);
  }
}

/**
 * A decision's key holds something redlimit did not write: another Redis type (`WRONGTYPE`) or a
 * value that is not this algorithm's state (`WRONGSTATE`) — someone else's data under the
 * prefix, or a limit whose algorithm changed under the same name. Only that decision fails;
 * nothing of it was written, and nothing is counted against Redis. `key` is null when Redis did
 * not say which of the decision's keys it was.
 */
export class StateKeyError extends RedlimitError {
  constructor(
    readonly script: string,
    readonly redisCode: 'WRONGTYPE' | 'WRONGSTATE',
    readonly key: string | null,
    options?: { cause?: unknown },
  ) {
    const what = redisCode === 'WRONGTYPE' ? 'another Redis type' : `a value that is not ${script} state`;
    super('ERR_WRONG_STATE', `redlimit ${script}: ${key === null ? 'a key of this decision' : `key ${key}`} holds ${what} (${redisCode}); delete or rename it`, options);
  }
}

/**
 * The integer a batch reply (batch, multi_batch) gives a decision that failed alone, in the
 * field after its allowed = -1: what its key held. As the scripts' headers state them.
 */
export const KEY_ERROR_CODES: Readonly<Record<number, 'WRONGTYPE' | 'WRONGSTATE'>> = { 1: 'WRONGTYPE', 2: 'WRONGSTATE' };

/** A limiter configuration that cannot work, caught at construction. */
export class InvalidConfigError extends RedlimitError {
  constructor(
    /** What is wrong, without the `redlimit: invalid config: ` the message opens with. */
    readonly detail: string,
  ) {
    super('ERR_INVALID_CONFIG', `redlimit: invalid config: ${detail}`);
  }
}

/** Redis could not decide and the limiter is configured to fail closed with an error. */
export class RedisUnavailableError extends RedlimitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_REDIS_UNAVAILABLE', message, options);
  }
}

/** Thrown by `limitOrThrow` when a call is denied; carries the decision (Retry-After and all). */
export class RateLimitedError extends RedlimitError {
  constructor(readonly decision: Decision) {
    super('ERR_RATE_LIMITED', `redlimit: rate limited by ${decision.deniedBy ?? 'a limit'}; retry after ${decision.retryAfterMs} ms`);
  }
}

export class CrossSlotError extends RedlimitError {
  constructor(message: string) {
    super('ERR_CROSS_SLOT', message);
  }
}

export class UnsupportedClientError extends RedlimitError {
  constructor(message: string) {
    super('ERR_UNSUPPORTED_CLIENT', message);
  }
}

/** The server is older than Redis 7.0 (no EVALSHA_RO, no `no-writes` scripts, no Functions). */
export class UnsupportedServerError extends RedlimitError {
  constructor(message: string) {
    super('ERR_UNSUPPORTED_SERVER', message);
  }
}
