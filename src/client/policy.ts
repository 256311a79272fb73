import { RedisUnavailableError } from '../errors.js';
import type { CircuitBreaker } from './breaker.js';
import type { OnRedisFailure } from './config.js';
import type { Decision } from './decision.js';
import type { Decoder } from './decode.js';
import { isCallerError } from './failure.js';

export { isCallerError };

/**
 * What a limiter answers when Redis could not decide: the fallback (the twin), allowed, or denied
 * — once, for every method. A caller's error is never a Redis failure: it goes back to the caller.
 */
export class FailurePolicy {
  constructor(
    private readonly onFailure: OnRedisFailure,
    private readonly throwWhenFailedClosed: boolean,
    private readonly breaker: CircuitBreaker | null,
    private readonly decode: Decoder,
  ) {}

  answer<T>(err: unknown, onFallback: () => T, wrap: (d: Decision) => T): T {
    if (isCallerError(err)) throw err;
    if (this.onFailure === 'open') return wrap(this.decode.failOpen());
    if (this.onFailure === 'closed') {
      if (this.throwWhenFailedClosed) throw new RedisUnavailableError('redlimit: Redis unavailable and the limiter fails closed', { cause: err });
      return wrap(this.decode.failClosed(this.breaker!.retryAfterMs()));
    }
    return onFallback();
  }
}

/** For operations whose caller must know they did not land (reset, block): a typed error. */
export function unavailable(operation: string) {
  return (err: unknown): never => {
    if (isCallerError(err) || err instanceof RedisUnavailableError) throw err;
    throw new RedisUnavailableError(`redlimit: ${operation} did not reach Redis: ${(err as Error).message}`, { cause: err });
  };
}
