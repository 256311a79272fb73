/**
 * Adaptive limits (AIMD) from upstream answers: which target an answer moves, when a success is
 * worth a round trip, and the adaptive_feedback script that moves the learned value fleet-wide.
 */
import { adaptiveFeedbackScript } from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError } from '../errors.js';
import type { Subject } from '../client/keys.js';
import { runScript, type RedisClientLike } from '../runtime/index.js';
import { checkPolicyName } from './document.js';
import type { PolicyKeys } from './keys.js';
import type { Resolution } from './resolve.js';

export interface AdaptiveOptions {
  /** Which target a subject's feedback moves. Default: the subject's id. The learned value applies to every subject whose chain holds the target. */
  target?: (subject: Subject) => string;
  /** The limits the learned value caps. Default: every limit. */
  limits?: string[];
  /** Multiplier on an overload (429, 503). Default 0.5. */
  decrease?: number;
  /** Units a success period adds back. Default: a tenth of the ceiling (at least 1). */
  increase?: number;
  /** A success adds `increase` at most once per this long. Default 1000 ms. */
  successPeriodMs?: number;
  /** Overloads within this long of the last decrease count as the same event. Default 1000 ms. */
  cooldownMs?: number;
  /** Never below this. Default 1. */
  floor?: number;
  /** Never above this. Default: the limit the policies give the subject. */
  ceiling?: number;
}

export interface FeedbackResult {
  target: string;
  learned: number;
  pausedUntilMs: number;
  changed: boolean;
}

/** What feedback needs from its policy limiter: where the policies live and how a subject resolves. */
export interface FeedbackContext {
  redis: RedisClientLike;
  keys: PolicyKeys;
  resolve: (subject: Subject) => Promise<{ res: Resolution }>;
  /** Tells the limiter's snapshot what the script changed (`<version> adaptive:<target>`). */
  announced: (message: string) => void;
}

const SUBJECT_ID = (s: Subject) => (typeof s === 'string' ? s : s.id);

/** One policy limiter's adaptive settings (checked once) and the successes it already sent. */
export class AdaptiveFeedback {
  private readonly settings: Required<Omit<AdaptiveOptions, 'target' | 'limits' | 'ceiling' | 'increase'>> & AdaptiveOptions;
  private readonly lastSuccessSent = new Map<string, number>();

  constructor(
    adaptive: AdaptiveOptions | undefined,
    private readonly clock: () => number,
  ) {
    if (adaptive?.decrease !== undefined && !(adaptive.decrease > 0 && adaptive.decrease < 1)) throw new InvalidConfigError('adaptive.decrease must be between 0 and 1 (exclusive)');
    this.settings = { decrease: 0.5, successPeriodMs: 1000, cooldownMs: 1000, floor: 1, ...adaptive };
  }

  /**
   * An upstream's answer for `subject` (AIMD): 429 or 503 multiplies the learned limit down
   * (once per cooldown), a success period adds a step back up to the ceiling, `retryAfterMs`
   * pauses the target fleet-wide. Successes (any other status below 500) reach Redis at most
   * once per success period per process, and only while the learned limit is below its ceiling;
   * other 5xx answers change nothing.
   */
  async feedback(subject: Subject, answer: { status: number; retryAfterMs?: number }, ctx: FeedbackContext): Promise<FeedbackResult> {
    const adaptive = this.settings;
    const target = (adaptive.target ?? SUBJECT_ID)(subject);
    checkPolicyName(target, 'adaptive target');
    const status = answer?.status;
    if (!Number.isInteger(status) || status < 100 || status > 599) throw new InvalidArgumentError('adaptive_feedback', 'status', `status must be an HTTP status, got ${JSON.stringify(status)}`);
    const overload = status === 429 || status === 503;
    const { res } = await ctx.resolve(subject);
    const adaptiveLimits = adaptive.limits ?? [...res.uncapped.keys()];
    const ceilingFromPolicy = Math.max(0, ...adaptiveLimits.map((n) => res.uncapped.get(n) ?? 0));
    const ceiling = adaptive.ceiling ?? ceilingFromPolicy;
    if (!(ceiling >= 1)) throw new InvalidConfigError(`adaptive: no ceiling for ${target} (give adaptive.ceiling, or a policy limit)`);
    const now = this.clock();
    const known = res.learned[target];
    if (!overload) {
      if (status >= 500) return { target, learned: known ?? ceiling, pausedUntilMs: 0, changed: false };
      const last = this.lastSuccessSent.get(target) ?? -Infinity;
      if (known === undefined || known >= ceiling || now - last < adaptive.successPeriodMs) return { target, learned: known ?? ceiling, pausedUntilMs: 0, changed: false };
      this.lastSuccessSent.set(target, now);
    }
    const retry = Math.max(0, Math.min(86_400_000, Math.ceil(answer.retryAfterMs ?? 0)));
    const argv = [
      overload ? 'overload' : 'success', target, String(Math.min(ceiling, 1e9)), String(Math.min(adaptive.floor, ceiling)),
      String(Math.round(adaptive.decrease * 1e6)), String(adaptive.increase ?? Math.max(1, Math.floor(ceiling / 10))),
      String(adaptive.successPeriodMs), String(adaptive.cooldownMs), String(retry), '',
    ];
    const r = (await runScript(ctx.redis, adaptiveFeedbackScript, [ctx.keys.version, ctx.keys.adaptive(target)], argv)) as number[];
    ctx.announced(`${r[2]} adaptive:${target}`);
    return { target, learned: Number(r[0]), pausedUntilMs: Number(r[1]), changed: Number(r[3]) === 1 };
  }
}
