// redlimit/http: HTTP middleware for Node, Express, Connect, Fastify, fetch runtimes, Hono and Koa.
export { HttpRateLimiter, createHttpRateLimiter, type HttpRateLimitOptions, type HttpRequestInfo, type RateLimitRule, type PolicyRule, type KeyOption, type Outcome, type HttpResponse, type HttpCounters } from './core.js';
export { nodeRateLimit, expressRateLimit, fastifyRateLimit, fetchRateLimit, honoRateLimit, koaRateLimit, nodeRequest, fetchRequest, httpRateLimit, httpHeaders } from './adapters.js';
export { rateLimitHeaders, type HeaderStyle } from './headers.js';
export { signBypass, verifyBypass, type BypassOptions } from './bypass.js';
export { clientAddress, clientIp, ipv6Prefix, type TrustProxy } from './client-ip.js';
export { ANY_ROUTER, type PathMatching } from './paths.js';
export { opsHandler, opsMiddleware, type OpsOptions } from './ops.js';
