import { EventEmitter } from 'node:events';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Open after this many failures in a row. Default 5. */
  consecutiveFailures?: number;
  /** Also open when the failure ratio over the rolling window reaches this (0..1). Default 0.5. */
  failureRatio?: number;
  /** Rolling window for the ratio, ms. Default 10000. */
  windowMs?: number;
  /** Calls the window must hold before the ratio may open the breaker. Default 20. */
  minimumCalls?: number;
  /** First wait before half-open, ms; doubles on each failed probe round up to maxResetTimeoutMs. Default 1000. */
  resetTimeoutMs?: number;
  /** Ceiling of that backoff. Default 30000. */
  maxResetTimeoutMs?: number;
  /** Random share added to each wait so a fleet does not probe in lockstep (0..1). Default 0.2. */
  jitter?: number;
  /** Probe calls let through while half-open. Default 1. */
  halfOpenProbes?: number;
  /** Successful probes that close the breaker. Default 2. */
  successesToClose?: number;
  /** Clock (ms) and randomness, for tests. */
  now?: () => number;
  random?: () => number;
}

export interface BreakerStats {
  state: BreakerState;
  consecutiveFailures: number;
  windowCalls: number;
  windowFailures: number;
  totalSuccesses: number;
  totalFailures: number;
  /** Calls refused because the breaker was open (or half-open with probes busy). */
  totalRejected: number;
  opens: number;
  /** When an open breaker will let a probe through (ms), or null. */
  nextAttemptAt: number | null;
  lastError: string | null;
}

export interface BreakerEvents {
  open: [{ error: string | null; reopenAt: number }];
  'half-open': [];
  close: [];
  state: [{ from: BreakerState; to: BreakerState }];
}

const BUCKETS = 10;

/**
 * A circuit breaker in the opossum / cockatiel vocabulary: closed → open on N consecutive
 * failures or a failure ratio over a rolling window (with a minimum volume); open → half-open
 * after a reset timeout with exponential backoff and jitter; half-open admits a limited number of
 * probes and closes after M successes (any failed probe re-opens it, with a longer wait).
 * Callers ask `tryAcquire()` before a call and report `success()` / `failure()` after it.
 */
export class CircuitBreaker extends EventEmitter<BreakerEvents> {
  private state_: BreakerState = 'closed';
  private consecutive = 0;
  private readonly buckets = Array.from({ length: BUCKETS }, () => ({ start: 0, calls: 0, failures: 0 }));
  private totals = { successes: 0, failures: 0, rejected: 0, opens: 0 };
  private reopenAt = 0;
  private backoffMs: number;
  private probesInFlight = 0;
  private probeSuccesses = 0;
  private lastError: string | null = null;
  private readonly o: Required<BreakerOptions>;

  constructor(options: BreakerOptions = {}) {
    super();
    this.o = {
      consecutiveFailures: 5,
      failureRatio: 0.5,
      windowMs: 10_000,
      minimumCalls: 20,
      resetTimeoutMs: 1_000,
      maxResetTimeoutMs: 30_000,
      jitter: 0.2,
      halfOpenProbes: 1,
      successesToClose: 2,
      now: Date.now,
      random: Math.random,
      ...options,
    };
    this.backoffMs = this.o.resetTimeoutMs;
  }

  get state(): BreakerState {
    if (this.state_ === 'open' && this.o.now() >= this.reopenAt) this.transition('half-open');
    return this.state_;
  }

  /** May a call go to Redis now? Counts a refusal when not. */
  /**
   * How long a caller refused now should wait before Redis may be tried again: until the next
   * probe while open, else one reset timeout (a failure just happened; the breaker may open).
   */
  retryAfterMs(): number {
    if (this.state_ === 'open') return Math.max(1, this.reopenAt - this.o.now());
    return this.o.resetTimeoutMs;
  }

  tryAcquire(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'half-open' && this.probesInFlight < this.o.halfOpenProbes) {
      this.probesInFlight++;
      return true;
    }
    this.totals.rejected++;
    return false;
  }

  /**
   * A call that ended with no verdict on Redis (the caller's own error) gives its half-open probe
   * slot back without counting as a success or a failure.
   */
  release(): void {
    if (this.state === 'half-open') this.probesInFlight = Math.max(0, this.probesInFlight - 1);
  }

  success(): void {
    this.totals.successes++;
    this.record(false);
    this.consecutive = 0;
    if (this.state_ === 'half-open') {
      this.probesInFlight = Math.max(0, this.probesInFlight - 1);
      if (++this.probeSuccesses >= this.o.successesToClose) {
        this.backoffMs = this.o.resetTimeoutMs;
        this.transition('closed');
      }
    }
  }

  failure(error?: unknown): void {
    this.totals.failures++;
    this.lastError = error instanceof Error ? error.message : error === undefined ? null : String(error);
    this.record(true);
    this.consecutive++;
    if (this.state_ === 'half-open') {
      this.probesInFlight = Math.max(0, this.probesInFlight - 1);
      this.backoffMs = Math.min(this.backoffMs * 2, this.o.maxResetTimeoutMs);
      this.open();
      return;
    }
    if (this.state_ !== 'closed') return;
    const { calls, failures } = this.window();
    if (this.consecutive >= this.o.consecutiveFailures || (calls >= this.o.minimumCalls && failures / calls >= this.o.failureRatio)) this.open();
  }

  stats(): BreakerStats {
    const { calls, failures } = this.window();
    const state = this.state;
    return {
      state,
      consecutiveFailures: this.consecutive,
      windowCalls: calls,
      windowFailures: failures,
      totalSuccesses: this.totals.successes,
      totalFailures: this.totals.failures,
      totalRejected: this.totals.rejected,
      opens: this.totals.opens,
      nextAttemptAt: state === 'open' ? this.reopenAt : null,
      lastError: this.lastError,
    };
  }

  /** Back to closed now, backoff forgotten (an operator's reset; see the operations endpoint). */
  reset(): void {
    this.backoffMs = this.o.resetTimeoutMs;
    this.transition('closed');
  }

  private open(): void {
    this.totals.opens++;
    const wait = this.backoffMs * (1 + this.o.jitter * this.o.random());
    this.reopenAt = Math.round(this.o.now() + wait);
    this.transition('open');
    this.emit('open', { error: this.lastError, reopenAt: this.reopenAt });
  }

  private transition(to: BreakerState): void {
    const from = this.state_;
    if (from === to) return;
    this.state_ = to;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
    if (to === 'closed') {
      this.consecutive = 0;
      for (const b of this.buckets) b.calls = b.failures = 0;
      this.emit('close');
    }
    if (to === 'half-open') this.emit('half-open');
    this.emit('state', { from, to });
  }

  private record(failed: boolean): void {
    const now = this.o.now();
    const width = this.o.windowMs / BUCKETS;
    const start = Math.floor(now / width) * width;
    const b = this.buckets[Math.floor(now / width) % BUCKETS]!;
    if (b.start !== start) {
      b.start = start;
      b.calls = b.failures = 0;
    }
    b.calls++;
    if (failed) b.failures++;
  }

  private window(): { calls: number; failures: number } {
    const now = this.o.now();
    let calls = 0;
    let failures = 0;
    for (const b of this.buckets) {
      if (now - b.start < this.o.windowMs) {
        calls += b.calls;
        failures += b.failures;
      }
    }
    return { calls, failures };
  }
}

const shared = new WeakMap<object, { breaker: CircuitBreaker; options: string }>();

/**
 * One breaker per Redis connection, shared by every limiter that uses it: the connection is
 * healthy or not for all of them. The first limiter's options make it; `conflict` is set when a
 * later limiter asked for different ones (they are not applied).
 */
export function breakerFor(connection: object, options?: BreakerOptions): { breaker: CircuitBreaker; conflict: boolean } {
  const key = JSON.stringify(options ?? {});
  const found = shared.get(connection);
  if (found) return { breaker: found.breaker, conflict: options !== undefined && found.options !== key };
  const breaker = new CircuitBreaker(options);
  // Every limiter on the connection listens to it (and stops on close): many is not a leak.
  breaker.setMaxListeners(0);
  shared.set(connection, { breaker, options: key });
  return { breaker, conflict: false };
}
