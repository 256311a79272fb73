/**
 * An independent model of the continuous-refill bucket in BigInt rationals: content is
 * `n / periodMs` units. Deliberately written the obvious way (no shared code with the Lua or the
 * TS twin) so that agreement with it means something.
 */
export interface OracleParams {
  limit: number;
  periodMs: number;
  burst: number;
}

export class BucketOracle {
  private n: bigint;
  private lastMs: bigint | undefined;
  private readonly cap: bigint;
  private readonly limit: bigint;
  private readonly period: bigint;

  constructor(p: OracleParams) {
    this.limit = BigInt(p.limit);
    this.period = BigInt(p.periodMs);
    this.cap = BigInt(p.burst) * this.period;
    this.n = this.cap;
  }

  take(costNumber: number, nowMs: number): { allowed: boolean; remaining: number; resetAfterMs: number; retryAfterMs: number } {
    const now = BigInt(nowMs);
    if (this.lastMs !== undefined && now > this.lastMs) {
      const refilled = this.n + (now - this.lastMs) * this.limit;
      this.n = refilled > this.cap ? this.cap : refilled;
    }
    if (this.lastMs === undefined || now > this.lastMs) this.lastMs = now;
    const cost = BigInt(costNumber) * this.period;
    let allowed = false;
    let retry = 0n;
    if (cost > this.cap) retry = -1n;
    else if (this.n >= cost) {
      allowed = true;
      this.n -= cost;
    } else retry = ceil(cost - this.n, this.limit);
    return {
      allowed,
      remaining: Number(this.n / this.period),
      resetAfterMs: Number(ceil(this.cap - this.n, this.limit)),
      retryAfterMs: Number(retry),
    };
  }
}

function ceil(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}
