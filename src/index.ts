// redlimit: distributed rate limiting on Redis.
export { createRateLimiter, RateLimiter, type Cost, type LimiterStats } from './client/limiter.js';
export type { RateLimiterOptions, LimitSpec, OnRedisFailure } from './client/config.js';
export type { Decision, DecisionSource, LimitResult } from './client/decision.js';
export type { Subject } from './client/keys.js';
export { CircuitBreaker, type BreakerOptions, type BreakerState, type BreakerStats } from './client/breaker.js';
export type { MetricsHook } from './client/metrics.js';
export { isCallerError, classify, type FailureKind } from './client/failure.js';
export { fromEnv } from './client/from-env.js';
export * from './policy/index.js';
export * from './http/index.js';
export * from '../generated/index.js';
export { TwinClient } from './twin/client.js';
export { MemoryStore } from './twin/store.js';
export { preload, runScript, hashSlot, type RedisClientLike, type ScriptDef } from './runtime/index.js';
export { useFunctions, autoFunctions, type FunctionsState } from './runtime/functions.js';
export { detectServer, type ServerInfo } from './runtime/server.js';
export * from './errors.js';
