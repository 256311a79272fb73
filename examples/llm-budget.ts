/**
 * A team's daily LLM budget in money: each model has a price per million tokens in integer minor
 * units (micro-dollars here, so no price is a fraction), a call costs tokens × price, and that
 * cost is taken from a calendar-day quota of the team's budget. Integers end to end: a budget
 * never drifts by rounding, and the quota is exact on the Redis server clock.
 */
import { createRateLimiter, type RateLimiter } from 'redlimit';

/** Price per million tokens, in micro-dollars (1 USD = 1_000_000). */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
}

export const PRICES: Readonly<Record<string, ModelPrice>> = {
  'small-fast': { inputPerMTok: 150_000, outputPerMTok: 600_000 }, //   $0.15 / $0.60
  'mid-general': { inputPerMTok: 3_000_000, outputPerMTok: 15_000_000 }, // $3 / $15
  'large-reasoning': { inputPerMTok: 15_000_000, outputPerMTok: 75_000_000 }, // $15 / $75
};

/** Cost of a call in micro-dollars, rounded up: a million tokens at p costs p, one token never costs 0. */
export function costMicros(model: string, inputTokens: number, outputTokens: number): number {
  const p = PRICES[model];
  if (!p) throw new Error(`no price for model ${model}`);
  return Math.ceil((inputTokens * p.inputPerMTok + outputTokens * p.outputPerMTok) / 1_000_000);
}

export interface BudgetOptions {
  redis?: object;
  /** The team's budget per day, micro-dollars. */
  dailyBudgetMicros: number;
  /** The UTC offset of the team's day, ms (an IANA `timeZone` once the limit spec takes one). */
  utcOffsetMs?: number;
}

export class TeamBudget {
  private readonly limiter: RateLimiter;

  constructor(o: BudgetOptions) {
    this.limiter = createRateLimiter({
      redis: o.redis,
      prefix: 'llmbudget',
      limits: [{ name: 'spend', algo: 'quota', limit: o.dailyBudgetMicros, unit: 'day', utcOffsetMs: o.utcOffsetMs ?? 0 }],
    });
  }

  /** Charges the estimated cost before the call: allowed, or denied with what is left today. */
  async charge(team: string, model: string, inputTokens: number, maxOutputTokens: number) {
    const cost = costMicros(model, inputTokens, maxOutputTokens);
    const d = await this.limiter.limit(team, { cost });
    return { allowed: d.allowed, costMicros: cost, leftMicros: d.remaining, retryAfterMs: d.retryAfterMs };
  }

  /** Gives back what the estimate charged beyond the actual output. */
  async settle(team: string, model: string, inputTokens: number, maxOutputTokens: number, actualOutputTokens: number) {
    const over = costMicros(model, inputTokens, maxOutputTokens) - costMicros(model, inputTokens, actualOutputTokens);
    if (over > 0) await this.limiter.refund(team, { cost: over });
  }

  close() {
    return this.limiter.close();
  }
}
