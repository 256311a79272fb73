/**
 * PyAgent-style quota manager: `checkAndConsume(agentId, tokens)` against a daily token budget
 * and a requests-per-minute rate, shared by every worker of the fleet; when Redis is down the
 * in-memory twin keeps enforcing (each of `instances` workers gets its share).
 */
import { createRateLimiter, type RateLimiter } from 'redlimit';

export interface AgentQuotaOptions {
  redis?: object;
  tokensPerDay: number;
  requestsPerMinute: number;
  /** Workers sharing the budget: during an outage each enforces budget / instances. */
  instances?: number;
}

export class AgentQuotaManager {
  private readonly limiter: RateLimiter;

  constructor(o: AgentQuotaOptions) {
    this.limiter = createRateLimiter({
      redis: o.redis,
      prefix: 'agentquota',
      limits: [
        { name: 'rpm', algo: 'gcra', limit: o.requestsPerMinute, periodMs: 60_000 },
        { name: 'tokens', algo: 'quota', limit: o.tokensPerDay, unit: 'day' },
      ],
      onRedisFailure: 'fallback',
      fallbackShare: o.instances ?? 1,
      timeoutMs: 100,
    });
  }

  /** Takes 1 request and `tokens` tokens, or nothing. */
  async checkAndConsume(agentId: string, tokens: number) {
    const d = await this.limiter.limit(agentId, { cost: { rpm: 1, tokens } });
    const budget = d.limits.find((l) => l.name === 'tokens');
    return { allowed: d.allowed, reason: d.deniedBy, tokensLeft: budget?.remaining ?? null, retryAfterMs: d.retryAfterMs, source: d.source };
  }

  /** Gives back tokens reserved but not used (e.g. the model answered shorter than budgeted). */
  async refundTokens(agentId: string, tokens: number) {
    await this.limiter.refund(agentId, { cost: { rpm: 0, tokens } });
  }

  close() {
    return this.limiter.close();
  }
}
