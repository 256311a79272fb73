import { randomUUID } from 'node:crypto';
import * as b from '../../generated/index.js';
import { InvalidArgumentError, RedisUnavailableError } from '../errors.js';
import { stringArg } from '../runtime/index.js';
import type { Decision } from './decision.js';
import type { Fallback } from './fallback.js';
import type { Target } from './keys.js';
import type { CallClock, LimitPlan } from './plan.js';
import { isCallerError } from './policy.js';
import type { RedisPath } from './redis-path.js';

/**
 * An admitted decision's concurrency slot, to give back when the work is done: `release()` (or
 * `await using`, which releases when the block ends however it ends). A decision that holds no
 * slot (denied, or a limiter without a concurrency limit) releases nothing.
 */
export interface Held extends Decision {
  /**
   * Frees the slot. Resolves true if this call freed a live slot; false if there was none to free
   * (released before — by this object, `limiter.release` or a reset — expired after its ttlMs, or
   * never held). Rejects with RedisUnavailableError if Redis holds the slot and cannot be reached
   * (the slot then frees itself ttlMs after it was taken).
   */
  release(): Promise<boolean>;
  /** release(), for `await using`: Redis trouble is not thrown (the slot expires by itself). */
  [Symbol.asyncDispose](): Promise<void>;
}

const LEASE_ID = b.concurrencyReleaseScript.args.find((a) => a.name === 'lease_id')!;
const RELEASE_NOW = b.concurrencyReleaseScript.args.findIndex((a) => a.name === 'now_ms');

/**
 * Concurrency slots of one limiter: holder ids, which decisions hold a slot, and releasing it —
 * on Redis (concurrency_release on each concurrency limit's key) and on the fallback twin, which
 * holds the slots it admitted during an outage. Release frees only the slot: the rate units the
 * call took stay taken (refund() gives units back).
 */
export class Holding {
  /** Plan indexes of the concurrency limits. */
  private readonly slots: number[];

  constructor(
    plans: readonly LimitPlan[],
    private readonly path: RedisPath | null,
    private readonly fallback: Fallback,
    private readonly clock: CallClock,
  ) {
    this.slots = plans.flatMap((p, i) => (p.concurrency ? [i] : []));
  }

  /** Whether the limiter has a concurrency limit. */
  get active(): boolean {
    return this.slots.length > 0;
  }

  /** The holder a decision takes its slot for: the caller's (checked) or a fresh random id; none without a concurrency limit. */
  holderFor(given: unknown): string | undefined {
    if (given === undefined) return this.active ? randomUUID() : undefined;
    if (!this.active) throw new InvalidArgumentError('limiter', 'holder', 'holder is for a limiter with a concurrency limit');
    return checkHolder(given);
  }

  /** The decision with the holder of the slot it took (admitted, with a concurrency cost of 1, by Redis or the fallback). */
  mark(d: Decision, holder: string | undefined, costs: readonly number[]): Decision {
    if (holder === undefined || !d.allowed || (d.source !== 'redis' && d.source !== 'fallback')) return d;
    if (!this.slots.some((i) => costs[i] === 1)) return d;
    return { ...d, holder };
  }

  /**
   * Whether a denial may be answered locally until its retry time (the deny cache): not when a
   * concurrency limit denied it — a slot frees the moment anyone releases one, and nothing
   * announces a release.
   */
  cacheable(d: Decision): boolean {
    return !this.slots.some((i) => d.limits[i] !== undefined && !d.limits[i]!.allowed);
  }

  /** Frees `holder`'s slot on every concurrency limit of the subject: true if one was live. */
  async release(t: Target, holder: string): Promise<boolean> {
    const keys = this.slots.map((i) => t.keys[i]!);
    // The twin holds the slots it admitted during an outage; releasing an id it never saw is a no-op.
    let released = false;
    for (const key of keys) if (this.fallback.twin.runParsed(b.concurrencyReleaseScript, [key], { lease_id: holder })[0] === 1) released = true;
    if (!this.path) return released;
    const argv = [holder];
    if (this.clock.now !== null) argv[RELEASE_NOW] = String(Math.floor(this.clock.now()));
    const path = this.path;
    try {
      const replies = await Promise.all(keys.map((key) => path.run(b.concurrencyReleaseScript, [key], argv.slice(), t.slot)));
      return released || replies.some((r) => (r as number[])[0] === 1);
    } catch (err) {
      if (isCallerError(err)) throw err;
      if (released) return true; // it was the fallback's
      throw new RedisUnavailableError(`redlimit: release did not reach Redis (the slot frees itself ttlMs after it was taken): ${(err as Error).message}`, { cause: err });
    }
  }

  /** The decision as a Held: release() frees its slot once (a second call resolves false). */
  held(t: Target, d: Decision): Held {
    let state: 'held' | 'releasing' | 'released' = d.holder === undefined ? 'released' : 'held';
    const release = async (): Promise<boolean> => {
      if (state !== 'held') return false;
      state = 'releasing';
      try {
        const freed = await this.release(t, d.holder!);
        state = 'released';
        return freed;
      } catch (err) {
        state = 'held';
        throw err;
      }
    };
    return {
      ...d,
      release,
      [Symbol.asyncDispose]: () => release().then(quiet, swallowUnavailable),
    };
  }
}

const quiet = (): void => {};

function swallowUnavailable(err: unknown): void {
  if (!(err instanceof RedisUnavailableError)) throw err;
}

/** A holder id as the scripts take it: a non-empty, well-formed string of at most 128 bytes (concurrency_release's lease_id). */
export function checkHolder(holder: unknown): string {
  return stringArg('limiter', LEASE_ID, holder as string, 'holder');
}

/** limit, run, always release: rejects with RateLimitedError (from `denied`) when not admitted. */
export async function runHeld<T>(h: Held, fn: (d: Decision) => T | Promise<T>, denied: (d: Decision) => Error): Promise<T> {
  if (!h.allowed) throw denied(h);
  try {
    return await fn(h);
  } finally {
    await h[Symbol.asyncDispose]();
  }
}
