/**
 * RPM + TPM per agent and provider: one call costs 1 request and N tokens, checked together
 * (all or nothing). Per-call overrides let a premium agent or a provider outage change limits
 * without new keys. When a call is denied, retryAfterMs says how long the slowest limit needs.
 */
import { multi, type MultiItem, type RedisClientLike } from 'redlimit';

export interface ProviderLimits {
  rpm: number;
  tpm: number;
}

export const DEFAULTS: Record<string, ProviderLimits> = {
  openai: { rpm: 60, tpm: 90_000 },
  anthropic: { rpm: 50, tpm: 80_000 },
};

export function llmLimits(agent: string, provider: string, tokens: number, override?: Partial<ProviderLimits>): MultiItem[] {
  const l = { ...DEFAULTS[provider]!, ...override };
  const tag = `rl:{agent:${agent}}:${provider}`;
  return [
    { key: `${tag}:rpm`, algo: 'sliding_log', limit: l.rpm, periodMs: 60_000, cost: 1 },
    { key: `${tag}:tpm`, algo: 'gcra', limit: l.tpm, periodMs: 60_000, cost: tokens },
  ];
}

export async function checkCall(client: RedisClientLike, agent: string, provider: string, tokens: number, override?: Partial<ProviderLimits>, nowMs?: number) {
  const r = await multi(client, { limits: llmLimits(agent, provider, tokens, override), nowMs });
  return { allowed: r.allowed, deniedBy: r.allowed ? null : r.deniedIndex === 1 ? 'rpm' : 'tpm', retryAfterMs: r.retryAfterMs, tokensLeft: r.limits[1]!.remaining };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { Redis } = await import('ioredis');
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const agent = `agent-${process.pid}`;
  for (const tokens of [30_000, 30_000, 30_000, 10_000]) console.log(await checkCall(redis, agent, 'openai', tokens));
  await redis.quit();
}
