import { InvalidArgumentError } from '../errors.js';
import { hashSlot } from '../runtime/index.js';
import type { LimitPlan } from './plan.js';
import type { Variant } from './variants.js';

/**
 * Who a call is for. A string is an id. An object can also name the hash tag (all keys of one
 * call share it, so they live in one Redis Cluster slot: pick the tenant or org) and scopes
 * (values other limits are keyed by, e.g. { team: 'core', org: 'acme' } for limits with
 * `scope: 'team'` / `scope: 'org'`).
 */
export type Subject = string | { id: string; hashTag?: string; scopes?: Record<string, string> };

export interface Resolved {
  readonly id: string;
  readonly tag: string;
  /** Own properties only (a null-prototype object): `constructor` is a scope like any other. */
  readonly scopes: Readonly<Record<string, string>>;
  /** Redis Cluster slot of every key of this subject (they share the hash tag); computed once. */
  slot: number;
}

/**
 * One part of a key. Refused: empty, over 512 characters, braces (they would change the hash
 * tag), and lone UTF-16 surrogates — Redis clients encode those as U+FFFD, so 'a\uD800' and
 * 'a\uDBFF' would land on one key.
 */
function part(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 512 || value.includes('{') || value.includes('}') || !(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw new InvalidArgumentError(
      'limiter',
      what,
      `${what} must be a non-empty, well-formed string of at most 512 characters without { or }, got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value}`,
    );
  }
  return value;
}

const NO_SCOPES: Readonly<Record<string, string>> = Object.freeze(Object.create(null) as Record<string, string>);

const resolvedIds = new Map<string, Resolved>();

/** A plain id string, resolved (its checks made). */
function plainSubject(id: string): Resolved {
  return { id: part(id, 'id'), tag: id, scopes: NO_SCOPES, slot: -1 };
}

export function resolveSubject(subject: Subject): Resolved {
  if (typeof subject === 'string') {
    // Plain ids repeat: keep their resolved form (a small, bounded cache).
    let r = resolvedIds.get(subject);
    if (!r) {
      r = plainSubject(subject);
      if (resolvedIds.size >= 10_000) resolvedIds.clear();
      resolvedIds.set(subject, r);
    }
    return r;
  }
  if (!subject || typeof subject !== 'object') throw new InvalidArgumentError('limiter', 'id', 'the subject must be an id string or { id, hashTag?, scopes? }');
  const id = part(subject.id, 'id');
  const tag = subject.hashTag === undefined ? id : part(subject.hashTag, 'hashTag');
  let scopes = NO_SCOPES;
  if (subject.scopes !== undefined) {
    if (!subject.scopes || typeof subject.scopes !== 'object') throw new InvalidArgumentError('limiter', 'scopes', 'scopes must be an object of strings');
    const own = Object.create(null) as Record<string, string>;
    for (const k of Object.keys(subject.scopes)) own[k] = part(subject.scopes[k], `scopes.${k}`);
    scopes = own;
  }
  return { id, tag, scopes, slot: -1 };
}

export function slotOf(s: Resolved): number {
  if (s.slot < 0) s.slot = hashSlot(`{${s.tag}}`);
  return s.slot;
}

/**
 * The one place that knows the key layout:
 * - a limit keyed by the id, tag = id (the common case): `${prefix}:{${id}}:${limit}` — the id
 *   is not repeated (memory per limited id);
 * - keyed by the id under another tag: `${prefix}:{${tag}}:${limit}:${id}`;
 * - keyed by a scope: `${prefix}:{${tag}}:${limit}:${scopeValue}`;
 * - the penalty box: `${prefix}:{${tag}}:!block:${id}`.
 * Limit names are letters, digits, `_` and `-` (no `:`, no `!`) and the tag has no braces, so a
 * key names exactly one (tag, limit, value) and no limit can share the block key.
 */
export function limitKey(prefix: string, s: Resolved, name: string, scope: string | null): string {
  if (scope === null) return s.tag === s.id ? `${prefix}:{${s.id}}:${name}` : `${prefix}:{${s.tag}}:${name}:${s.id}`;
  const value = Object.hasOwn(s.scopes, scope) ? s.scopes[scope] : undefined;
  if (value === undefined) throw new InvalidArgumentError('limiter', 'scopes', `limit ${name} is scoped by ${scope}: pass scopes: { ${scope}: ... }`);
  return `${prefix}:{${s.tag}}:${name}:${value}`;
}

export function blockKey(prefix: string, s: Resolved): string {
  return `${prefix}:{${s.tag}}:!block:${s.id}`;
}

/** A call's subject, resolved, with its keys (in plan order, then the block key), local identity and variant of limit values. */
export interface Target {
  s: Resolved;
  keys: string[];
  /** Identity for local caches: two subjects share it exactly when they share every Redis key and their limit values. */
  ident: string;
  /** The keys alone, whatever the values (what the fallback learned of them is shared by every variant). */
  keysIdent: string;
  /** Cluster hash slot of every key of the call; -1 on a standalone client. */
  slot: number;
  /** The limit values this subject's calls use (byScope: chosen by its scope values; else the limits' own). */
  variant: Variant;
  /** The fallback's hint: where the in-memory twin last found this target's key (checked on use; the one mutable field). */
  twinHandle: object | undefined;
}

/**
 * Subjects to keys (and the variant of limit values their scope values choose), for one
 * limiter. Plain ids repeat, so their targets are built once (a bounded
 * cache of immutable values); object subjects are resolved per call.
 */
export class Subjects {
  private readonly byId = new Map<string, Target>();

  constructor(
    private readonly prefix: string,
    private readonly plans: readonly LimitPlan[],
    private readonly blocks: boolean,
    private readonly cluster: boolean,
    private readonly choose: (s: Resolved) => Variant,
  ) {}

  resolve(subject: Subject): Target {
    if (typeof subject !== 'string') return this.build(subject);
    let t = this.byId.get(subject);
    if (!t) {
      t = this.build(subject);
      if (this.byId.size >= 10_000) this.byId.clear();
      this.byId.set(subject, t);
    }
    return t;
  }

  /** The penalty-box key of a resolved subject. */
  blockKey(t: Target): string {
    return blockKey(this.prefix, t.s);
  }

  private build(subject: Subject): Target {
    // A plain id's target is cached by the caller (byId): its resolved form needs no cache of its own.
    const s = typeof subject === 'string' ? plainSubject(subject) : resolveSubject(subject);
    const keys: string[] = [];
    for (const p of this.plans) keys.push(limitKey(this.prefix, s, p.name, p.scope));
    if (this.blocks) keys.push(blockKey(this.prefix, s));
    const variant = this.choose(s);
    // The values are part of what local caches hold per identity (the scope choosing them need not be in the keys).
    const keysIdent = keys.length === 1 ? keys[0]! : JSON.stringify(keys);
    const ident = variant.id === '' ? keysIdent : JSON.stringify([...keys, variant.id]);
    return { s, keys, ident, keysIdent, slot: this.cluster ? slotOf(s) : -1, variant, twinHandle: undefined };
  }
}
