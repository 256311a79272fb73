import { policySetScript } from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError } from '../errors.js';
import { RateLimiter } from '../client/limiter.js';
import type { LimitSpec } from '../client/config.js';

/** How a change treats the state of the limits it touches. */
export type CarryOver = 'as-is' | 'reset' | 'proportional';

/** A policy as you write it. */
export interface PolicyInput {
  /** Limits this layer sets (whole LimitSpecs: a limit of the same name in a less specific layer is replaced). */
  limits?: LimitSpec[];
  /** Limit names this layer takes away from what it inherits. */
  remove?: string[];
  /**
   * Multiplies the `limit` and the capacity (`burst`) of every limit resolved up to and including
   * this layer: value x scale, floored, at least 1. At most 4 decimals (0.8, 1.5, 0.3333), 0.0001..100.
   */
  scale?: number;
  /** A policy this one inherits from, resolved before it (a cycle is refused). */
  parent?: string;
  description?: string;
}

/** A policy as stored (the document body): scale in ten-thousandths. */
export interface PolicyBody {
  limits?: LimitSpec[];
  remove?: string[];
  scaleBp?: number;
  parent?: string;
  description?: string;
}

/** One version of a policy: what was stored, by whom, when and why. */
export interface PolicyVersion {
  name: string;
  version: number;
  timeMs: number;
  op: 'set' | 'remove' | 'rollback';
  author: string;
  reason: string;
  carryOver: CarryOver;
  /** Reset epoch per limit name: the version of the last `reset` or `proportional` change that set it. */
  resets: Record<string, number>;
  /** A proportional change: per limit it set, the epoch the policy had for it before (its state is carried from that key). */
  carry?: Record<string, number>;
  /** A proportional change: the version of the entry it replaced (0: none), whose limits the carried state was counted under. */
  prev?: number;
  /** Null for a removal. */
  policy: PolicyInput | null;
}

export const POLICY_NAME = /^[A-Za-z0-9_:.-]{1,200}$/;
export const LIMIT_NAME = /^[A-Za-z0-9_-]{1,50}$/;
const docArg = policySetScript.args.find((a) => a.name === 'policy')!;
/** The largest document policy_set takes (its header's maxlen). */
export const MAX_DOCUMENT_BYTES = docArg.maxLength!;

export function checkPolicyName(name: unknown, what = 'policy name'): string {
  if (typeof name !== 'string' || !POLICY_NAME.test(name)) {
    throw new InvalidArgumentError('policy_set', 'name', `a ${what} is 1 to 200 letters, digits, _ - : or . (no { or }), got ${JSON.stringify(typeof name === 'string' ? name.slice(0, 60) : name)}`);
  }
  return name;
}

/** Checks limits with the limiter's own rules: a RateLimiter without Redis is built and dropped. */
export function checkLimits(limits: readonly LimitSpec[], where: string): void {
  if (limits.length === 0) return;
  for (const l of limits) {
    if (l && typeof l === 'object' && typeof l.name === 'string' && !LIMIT_NAME.test(l.name)) {
      throw new InvalidConfigError(`${where}: limit name ${JSON.stringify(l.name)} must be 1 to 50 letters, digits, _ or -`);
    }
    if (l && typeof l === 'object' && (l as { byScope?: unknown }).byScope !== undefined) {
      // Adaptive steps, scale layers and carry-over act on a limit's own values; a policy gives
      // values per subject (and per scope, as a layer of the chain) already.
      throw new InvalidConfigError(`${where}: limit ${String(l.name)}: byScope is for limiter limits; in policies give the values per subject or scope as a layer of the chain`);
    }
  }
  try {
    void new RateLimiter({ limits: [...limits] }).close();
  } catch (err) {
    if (err instanceof InvalidConfigError || err instanceof InvalidArgumentError) throw new InvalidConfigError(`${where}: ${err.detail}`);
    throw err;
  }
}

/** ten-thousandths, exactly: 0.8 -> 8000. */
export function scaleToBp(scale: unknown): number {
  const bp = typeof scale === 'number' ? Math.round(scale * 10_000) : NaN;
  if (!Number.isFinite(bp) || Math.abs((scale as number) * 10_000 - bp) > 1e-6 || bp < 1 || bp > 1_000_000) {
    throw new InvalidConfigError(`scale must be a number from 0.0001 to 100 with at most 4 decimals, got ${JSON.stringify(scale)}`);
  }
  return bp;
}

/** Validates a policy as written and returns the document body to store (JSON text). */
export function encodePolicy(name: string, input: PolicyInput): string {
  checkPolicyName(name);
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw new InvalidConfigError(`policy ${name}: must be an object`);
  for (const k of Object.keys(input)) {
    if (!['limits', 'remove', 'scale', 'parent', 'description'].includes(k)) throw new InvalidConfigError(`policy ${name}: unknown field ${JSON.stringify(k)}`);
  }
  const body: PolicyBody = {};
  if (input.limits !== undefined) {
    if (!Array.isArray(input.limits)) throw new InvalidConfigError(`policy ${name}: limits must be an array of LimitSpec`);
    checkLimits(input.limits, `policy ${name}`);
    body.limits = input.limits.map((l) => ({ ...l }));
  }
  if (input.remove !== undefined) {
    if (!Array.isArray(input.remove) || input.remove.some((r) => typeof r !== 'string' || !LIMIT_NAME.test(r))) {
      throw new InvalidConfigError(`policy ${name}: remove must be an array of limit names`);
    }
    const both = input.remove.find((r) => input.limits?.some((l) => l.name === r));
    if (both) throw new InvalidConfigError(`policy ${name}: limit ${both} is both set and removed`);
    body.remove = [...input.remove];
  }
  if (input.scale !== undefined) body.scaleBp = scaleToBp(input.scale);
  if (input.parent !== undefined) {
    checkPolicyName(input.parent, 'parent name');
    if (input.parent === name) throw new InvalidConfigError(`policy ${name}: a policy cannot inherit from itself (cycle)`);
    body.parent = input.parent;
  }
  if (input.description !== undefined) {
    if (typeof input.description !== 'string') throw new InvalidConfigError(`policy ${name}: description must be a string`);
    body.description = input.description;
  }
  const text = JSON.stringify(body);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_DOCUMENT_BYTES) throw new InvalidConfigError(`policy ${name}: the document is ${bytes} bytes, more than ${MAX_DOCUMENT_BYTES}`);
  return text;
}

/** The stored body as the API shows it (scale as a factor). */
export function toInput(body: PolicyBody | null): PolicyInput | null {
  if (body === null) return null;
  const out: PolicyInput = {};
  if (body.limits && body.limits.length > 0) out.limits = body.limits;
  if (body.remove && body.remove.length > 0) out.remove = body.remove;
  if (body.scaleBp !== undefined) out.scale = body.scaleBp / 10_000;
  if (body.parent !== undefined) out.parent = body.parent;
  if (body.description !== undefined) out.description = body.description;
  return out;
}

/** The carry metadata of a proportional entry (ignored when malformed: the change then carries nothing). */
function carryOf(e: Record<string, unknown>): { carry?: Record<string, number>; prev?: number } {
  if (e.carryOver !== 'proportional' || !e.carry || typeof e.carry !== 'object' || typeof e.prev !== 'number') return {};
  const carry: Record<string, number> = {};
  for (const [k, v] of Object.entries(e.carry as Record<string, unknown>)) if (typeof v === 'number' && Number.isInteger(v) && v >= 0) carry[k] = v;
  return { carry, prev: e.prev };
}

/** cjson encodes an empty array as {}: read either as empty. */
const list = <T>(v: unknown): T[] | undefined => (Array.isArray(v) ? (v as T[]) : v && typeof v === 'object' && Object.keys(v).length === 0 ? [] : undefined);

/**
 * Parses a stored entry and checks its policy with the same rules as a write: a document written
 * by hand that does not pass throws (the caller keeps the last good one).
 */
export function parseEntry(name: string, raw: string): PolicyVersion & { body: PolicyBody | null } {
  const e = JSON.parse(raw) as Record<string, unknown>;
  if (!e || typeof e !== 'object' || typeof e.version !== 'number') throw new Error('not a policy entry');
  const op = e.op as PolicyVersion['op'];
  if (!['set', 'remove', 'rollback'].includes(op)) throw new Error(`unknown op ${String(op)}`);
  let body: PolicyBody | null = null;
  if (op !== 'remove') {
    const p = e.policy as Record<string, unknown> | null;
    if (!p || typeof p !== 'object' || Array.isArray(p)) throw new Error('the policy is not an object');
    body = {};
    const limits = list<LimitSpec>(p.limits);
    if (p.limits !== undefined && limits === undefined) throw new Error('limits is not an array');
    if (limits && limits.length > 0) {
      checkLimits(limits, `policy ${name}`);
      body.limits = limits;
    }
    const remove = list<string>(p.remove);
    if (remove && remove.length > 0) {
      if (remove.some((r) => typeof r !== 'string' || !LIMIT_NAME.test(r))) throw new Error('remove holds a bad limit name');
      body.remove = remove;
    }
    if (p.scaleBp !== undefined) {
      if (typeof p.scaleBp !== 'number' || !Number.isInteger(p.scaleBp) || p.scaleBp < 1 || p.scaleBp > 1_000_000) throw new Error('bad scaleBp');
      body.scaleBp = p.scaleBp;
    }
    if (p.parent !== undefined) body.parent = checkPolicyName(p.parent, 'parent name');
    if (typeof p.description === 'string') body.description = p.description;
  }
  const resets: Record<string, number> = {};
  if (e.resets && typeof e.resets === 'object') {
    for (const [k, v] of Object.entries(e.resets as Record<string, unknown>)) if (typeof v === 'number' && Number.isInteger(v)) resets[k] = v;
  }
  return {
    name,
    version: e.version,
    timeMs: Number(e.timeMs) || 0,
    op,
    author: String(e.author ?? ''),
    reason: String(e.reason ?? ''),
    carryOver: e.carryOver === 'reset' ? 'reset' : e.carryOver === 'proportional' ? 'proportional' : 'as-is',
    resets,
    ...carryOf(e),
    policy: toInput(body),
    body,
  };
}
