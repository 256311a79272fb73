import type { Decision } from './client/decision.js';

/** Every error redlimit raises on purpose carries a stable `code`. */
export type RedlimitErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_INVALID_CONFIG'
  | 'ERR_SCRIPT'
  | 'ERR_CROSS_SLOT'
  | 'ERR_UNSUPPORTED_CLIENT'
  | 'ERR_UNSUPPORTED_SERVER'
  | 'ERR_REDIS_UNAVAILABLE'
  | 'ERR_RATE_LIMITED';

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

/** An argument a script would refuse, caught before the round trip. */
export class InvalidArgumentError extends RedlimitError {
  constructor(
    readonly script: string,
    readonly argument: string,
    message: string,
  ) {
    super('ERR_INVALID_ARGUMENT', `redlimit ${script}: ${message}`);
  }
}

/** Redis answered a script call with an error reply (bad argument, WRONGTYPE state key, ...). */
export class ScriptError extends RedlimitError {
  constructor(
    readonly script: string,
    readonly redisMessage: string,
    options?: { cause?: unknown },
  ) {
    super('ERR_SCRIPT', `redlimit ${script}: Redis replied: ${redisMessage}`, options);
  }
}

/** A limiter configuration that cannot work, caught at construction. */
export class InvalidConfigError extends RedlimitError {
  constructor(message: string) {
    super('ERR_INVALID_CONFIG', `redlimit: invalid config: ${message}`);
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
