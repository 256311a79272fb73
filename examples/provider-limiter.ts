/**
 * L04-style per-agent, per-provider RPM + TPM limiter with usage and reset: one limiter per
 * provider (each has its own limits), the agent as the hash tag.
 */
import { createRateLimiter, type RateLimiter } from 'redlimit';

export class ProviderLimiter {
  private readonly byProvider = new Map<string, RateLimiter>();

  constructor(redis: object | undefined, providers: Record<string, { rpm: number; tpm: number }>) {
    for (const [name, l] of Object.entries(providers)) {
      this.byProvider.set(
        name,
        createRateLimiter({
          redis,
          prefix: `llm:${name}`,
          limits: [
            { name: 'rpm', algo: 'sliding_window', limit: l.rpm, periodMs: 60_000 },
            { name: 'tpm', algo: 'gcra', limit: l.tpm, periodMs: 60_000 },
          ],
        }),
      );
    }
  }

  private get(provider: string): RateLimiter {
    const l = this.byProvider.get(provider);
    if (!l) throw new Error(`unknown provider ${provider}`);
    return l;
  }

  check(agent: string, provider: string, tokens: number) {
    return this.get(provider).limit(agent, { cost: { rpm: 1, tpm: tokens } });
  }

  async getUsage(agent: string, provider: string) {
    const d = await this.get(provider).peek(agent);
    const [rpm, tpm] = d.limits;
    return { requestsLeft: rpm!.remaining, tokensLeft: tpm!.remaining, fullInMs: d.resetAfterMs, source: d.source };
  }

  reset(agent: string, provider: string) {
    return this.get(provider).reset(agent);
  }

  async close() {
    for (const l of this.byProvider.values()) await l.close();
  }
}
