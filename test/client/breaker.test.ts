import { describe, expect, it } from 'vitest';
import { CircuitBreaker, breakerFor } from '../../src/client/breaker.js';

function clocked(options: ConstructorParameters<typeof CircuitBreaker>[0] = {}) {
  let now = 1_000_000;
  const b = new CircuitBreaker({ now: () => now, random: () => 0.5, ...options });
  const states: string[] = [];
  b.on('state', ({ to }) => states.push(to));
  return { b, states, advance: (ms: number) => (now += ms), now: () => now };
}

describe('circuit breaker', () => {
  it('opens after N consecutive failures, refuses while open, and reports it', () => {
    const { b, states } = clocked({ consecutiveFailures: 3 });
    for (let i = 0; i < 2; i++) {
      expect(b.tryAcquire()).toBe(true);
      b.failure(new Error('boom'));
    }
    b.success(); // a success resets the run
    for (let i = 0; i < 3; i++) b.failure(new Error('boom'));
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBe(false);
    expect(b.stats()).toMatchObject({ state: 'open', opens: 1, totalFailures: 5, totalRejected: 1, lastError: 'boom' });
    expect(states).toEqual(['open']);
  });

  it('opens on a failure ratio over the rolling window once the minimum volume is reached', () => {
    const { b, advance } = clocked({ consecutiveFailures: 100, failureRatio: 0.5, minimumCalls: 10, windowMs: 1000 });
    for (let i = 0; i < 4; i++) {
      b.success();
      b.failure();
    }
    expect(b.state).toBe('closed'); // 8 calls: below the minimum volume
    b.success();
    b.failure();
    expect(b.state).toBe('open'); // 10 calls, half failed
    const fresh = clocked({ consecutiveFailures: 100, failureRatio: 0.5, minimumCalls: 10, windowMs: 1000 });
    for (let i = 0; i < 6; i++) fresh.b.failure();
    fresh.advance(1500); // those failures left the window
    for (let i = 0; i < 4; i++) fresh.b.success();
    fresh.b.failure();
    expect(fresh.b.state).toBe('closed');
    void advance;
  });

  it('half-opens after the reset timeout (with jitter), lets limited probes through, closes after M successes', () => {
    const { b, states, advance } = clocked({ consecutiveFailures: 1, resetTimeoutMs: 1000, jitter: 0.2, halfOpenProbes: 1, successesToClose: 2 });
    b.failure();
    expect(b.stats().nextAttemptAt).toBe(1_000_000 + 1100); // 1000 ms + 0.5 * 20% jitter
    advance(1099);
    expect(b.tryAcquire()).toBe(false);
    advance(1);
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false); // one probe at a time
    b.success();
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBe(true);
    b.success();
    expect(b.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('backs off exponentially while probes keep failing, up to the ceiling, and resets the backoff on close', () => {
    const { b, advance, now } = clocked({ consecutiveFailures: 1, resetTimeoutMs: 100, maxResetTimeoutMs: 400, jitter: 0, successesToClose: 1 });
    b.failure();
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      const wait = b.stats().nextAttemptAt! - now();
      waits.push(wait);
      advance(wait);
      expect(b.tryAcquire()).toBe(true);
      b.failure();
    }
    expect(waits).toEqual([100, 200, 400, 400]);
    advance(400);
    expect(b.tryAcquire()).toBe(true);
    b.success();
    b.failure();
    expect(b.stats().nextAttemptAt! - now()).toBe(100);
  });
});

describe('breakerFor', () => {
  it('shares one breaker per connection and says when later options differ', () => {
    const connection = {};
    const first = breakerFor(connection, { consecutiveFailures: 2 });
    expect(breakerFor(connection).breaker).toBe(first.breaker);
    expect(breakerFor(connection, { consecutiveFailures: 2 }).conflict).toBe(false);
    expect(breakerFor(connection, { consecutiveFailures: 9 })).toMatchObject({ breaker: first.breaker, conflict: true });
    expect(breakerFor({}).breaker).not.toBe(first.breaker);
  });
});
