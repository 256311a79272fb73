import { InvalidArgumentError } from '../errors.js';
import type { LimitSpec } from './config.js';

/**
 * Who a call is for. A string is an id. An object can also name the hash tag (all keys of one
 * call share it, so they live in one Redis Cluster slot: pick the tenant or org) and scopes
 * (values other limits are keyed by, e.g. { team: 'core', org: 'acme' } for limits with
 * `scope: 'team'` / `scope: 'org'`).
 */
export type Subject = string | { id: string; hashTag?: string; scopes?: Record<string, string> };

interface Resolved {
  id: string;
  tag: string;
  scopes: Record<string, string>;
}

function part(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 512 || value.includes('{') || value.includes('}')) {
    throw new InvalidArgumentError('limiter', what, `${what} must be a non-empty string of at most 512 characters without { or }, got ${JSON.stringify(value)}`);
  }
  return value;
}

const NO_SCOPES: Record<string, string> = Object.freeze({}) as Record<string, string>;

const resolvedIds = new Map<string, Resolved>();

export function resolveSubject(subject: Subject): Resolved {
  if (typeof subject === 'string') {
    // Plain ids repeat: keep their resolved form (a small, bounded cache of immutable values).
    let r = resolvedIds.get(subject);
    if (!r) {
      r = Object.freeze({ id: part(subject, 'id'), tag: subject, scopes: NO_SCOPES });
      if (resolvedIds.size >= 10_000) resolvedIds.clear();
      resolvedIds.set(subject, r);
    }
    return r;
  }
  if (!subject || typeof subject !== 'object') throw new InvalidArgumentError('limiter', 'id', 'the subject must be an id string or { id, hashTag?, scopes? }');
  const id = part(subject.id, 'id');
  const tag = subject.hashTag === undefined ? id : part(subject.hashTag, 'hashTag');
  const scopes: Record<string, string> = {};
  for (const [k, v] of Object.entries(subject.scopes ?? {})) scopes[k] = part(v, `scopes.${k}`);
  return { id, tag, scopes };
}

/** The one place that knows the key layout: `${prefix}:{${tag}}:${limit}:${scopeValue}`. */
export function limitKey(prefix: string, s: Resolved, limit: LimitSpec): string {
  const scope = limit.scope ?? 'id';
  const value = scope === 'id' ? s.id : s.scopes[scope];
  if (value === undefined) throw new InvalidArgumentError('limiter', 'scopes', `limit ${limit.name} is scoped by ${scope}: pass scopes: { ${scope}: ... }`);
  return `${prefix}:{${s.tag}}:${limit.name}:${value}`;
}

export function blockKey(prefix: string, s: Resolved): string {
  return `${prefix}:{${s.tag}}:block:${s.id}`;
}

/** Identity of a subject for local caches. */
export function subjectId(s: Resolved): string {
  if (s.scopes === NO_SCOPES && s.tag === s.id) return s.id; // the common case, kept cheap
  return `${s.tag}\u0000${s.id}\u0000${Object.entries(s.scopes).sort().join('\u0000')}`;
}
