import { InvalidConfigError } from '../errors.js';

/** Edit distance (insertions, deletions, substitutions) between two option names. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** The known name closest to a misspelt one (same letters in another case, or at most 2 edits away). */
export function nearest(name: string, known: readonly string[]): string | undefined {
  return known.find((n) => n.toLowerCase() === name.toLowerCase()) ?? known.find((n) => editDistance(n, name) <= 2);
}

/** A misspelt option must not pass silently (a rule without `path` matches every path). */
export function refuseUnknownKeys(obj: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (known.includes(k)) continue;
    const near = nearest(k, known);
    throw new InvalidConfigError(`${where}: unknown option ${JSON.stringify(k)}${near ? ` (did you mean ${near}?)` : ''}; known: ${known.join(', ')}`);
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof RegExp);
}

/** Throws unless `v` is undefined or passes `ok`. */
export function check(v: unknown, ok: (v: unknown) => boolean, what: string, expected: string): void {
  if (v !== undefined && !ok(v)) throw new InvalidConfigError(`${what} must be ${expected}, got ${describe(v)}`);
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.slice(0, 60));
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (v instanceof RegExp) return String(v);
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

export const isFunction = (v: unknown) => typeof v === 'function';
export const isString = (v: unknown) => typeof v === 'string';
export const isNonEmptyString = (v: unknown) => typeof v === 'string' && v.length > 0;
export const isBoolean = (v: unknown) => typeof v === 'boolean';
export const isStringList = (v: unknown) => Array.isArray(v) && v.every(isNonEmptyString);
export const isOneOrMoreStrings = (v: unknown) => isNonEmptyString(v) || (isStringList(v) && (v as unknown[]).length > 0);

const OPTIONS = ['redis', 'prefix', 'limits', 'rules', 'key', 'trustProxy', 'ipv6Subnet', 'onMissingKey', 'missingKeyStatus', 'allowList', 'denyList', 'skip', 'classify', 'bypass', 'scale', 'headers', 'onDenied', 'unavailableStatus', 'onDecision', 'onRelease', 'limiter'] as const;
const RULE = ['name', 'path', 'method', 'clientClass', 'limits', 'limiter', 'policy', 'shadow', 'key', 'subject', 'cost'] as const;
const POLICY_RULE = ['chain', 'limiter', 'environment', 'defaults', 'onNoLimits', 'pollMs'] as const;
const BYPASS = ['secret', 'header', 'maxAgeMs'] as const;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function checkKey(key: unknown, what: string): void {
  if (key === undefined || key === 'ip' || typeof key === 'function') return;
  if (isPlainObject(key)) {
    refuseUnknownKeys(key, ['header'], what);
    check(key.header, isNonEmptyString, `${what}.header`, 'a header name');
    if (key.header === undefined) throw new InvalidConfigError(`${what}: give { header: 'x-api-key' }`);
    return;
  }
  throw new InvalidConfigError(`${what} must be 'ip', { header } or a function, got ${describe(key)}`);
}

/** A rule's shape: known keys only, a path that can match, methods that are HTTP tokens. */
export function checkRule(r: unknown, where: string): void {
  if (!isPlainObject(r)) throw new InvalidConfigError(`${where} must be an object, got ${describe(r)}`);
  refuseUnknownKeys(r, RULE, where);
  check(r.name, isString, `${where}.name`, 'a string');
  const path = r.path;
  if (path !== undefined && !(path instanceof RegExp)) {
    if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidConfigError(`${where}.path must be a path starting with / or a RegExp, got ${describe(path)}`);
    if (/[*]|\/:[A-Za-z_]/.test(path)) throw new InvalidConfigError(`${where}.path ${JSON.stringify(path)}: a string path is matched as it is (no wildcards or :params); use a RegExp such as /^\\/users\\/[^/]+$/`);
  }
  check(r.method, (m) => (typeof m === 'string' && METHOD.test(m)) || (Array.isArray(m) && m.length > 0 && m.every((x) => typeof x === 'string' && METHOD.test(x))), `${where}.method`, 'an HTTP method or a non-empty list of them');
  check(r.clientClass, isOneOrMoreStrings, `${where}.clientClass`, 'a client class or a non-empty list of them');
  check(r.shadow, isBoolean, `${where}.shadow`, 'a boolean');
  check(r.subject, isFunction, `${where}.subject`, 'a function');
  check(r.cost, isFunction, `${where}.cost`, 'a function');
  check(r.limiter, (l) => isPlainObject(l) && typeof (l as { limit?: unknown }).limit === 'function', `${where}.limiter`, 'a RateLimiter (createRateLimiter)');
  if (r.key !== undefined && r.subject !== undefined) throw new InvalidConfigError(`${where}: give key or subject, not both`);
  checkKey(r.key, `${where}.key`);
  if (r.policy !== undefined) checkPolicyRule(r.policy, `${where}.policy`);
}

/** A policy rule: a chain per request and/or a policy limiter; the build options only without one. */
function checkPolicyRule(p: unknown, where: string): void {
  if (!isPlainObject(p)) throw new InvalidConfigError(`${where} must be { chain, limiter?, environment?, defaults?, onNoLimits?, pollMs? }, got ${describe(p)}`);
  refuseUnknownKeys(p, POLICY_RULE, where);
  check(p.chain, isFunction, `${where}.chain`, 'a function (req, key) => policy names');
  check(p.limiter, (l) => typeof l === 'object' && l !== null && typeof (l as { limit?: unknown }).limit === 'function' && typeof (l as { resolved?: unknown }).resolved === 'function', `${where}.limiter`, 'a PolicyLimiter (createPolicyLimiter)');
  if (p.limiter !== undefined) {
    const set = (['environment', 'defaults', 'onNoLimits', 'pollMs'] as const).filter((k) => p[k] !== undefined);
    if (set.length > 0) throw new InvalidConfigError(`${where}: ${set.join(', ')} belong to the policy limiter given (set them in createPolicyLimiter)`);
    return;
  }
  if (p.chain === undefined) throw new InvalidConfigError(`${where}: give chain: (req, key) => policy names (or a limiter with its own chain)`);
  check(p.environment, isNonEmptyString, `${where}.environment`, 'a non-empty string');
  check(p.defaults, Array.isArray, `${where}.defaults`, 'an array of limits');
  check(p.onNoLimits, (v) => v === 'deny' || v === 'allow', `${where}.onNoLimits`, "'deny' or 'allow'");
  check(p.pollMs, (n) => typeof n === 'number' && Number.isInteger(n) && n >= 10 && n <= 3_600_000, `${where}.pollMs`, 'an integer number of ms from 10 to 3600000');
}

/** The HTTP options' shape, before anything is built (the limiter options are checked by createRateLimiter). */
export function checkHttpOptions(o: unknown): void {
  if (!isPlainObject(o)) throw new InvalidConfigError(`HTTP rate limit options must be an object, got ${describe(o)}`);
  refuseUnknownKeys(o, OPTIONS, 'HTTP rate limit options');
  check(o.prefix, isNonEmptyString, 'prefix', 'a non-empty string');
  check(o.rules, Array.isArray, 'rules', 'an array of rules');
  ((o.rules as unknown[] | undefined) ?? []).forEach((r, i) => checkRule(r, `rules[${i}]${isPlainObject(r) && typeof r.name === 'string' ? ` (${r.name})` : ''}`));
  checkKey(o.key, 'key');
  check(o.trustProxy, (t) => typeof t === 'boolean' || (typeof t === 'number' && Number.isInteger(t) && t >= 0) || Array.isArray(t), 'trustProxy', 'a boolean, a number of proxies or a list of addresses / CIDRs');
  check(o.ipv6Subnet, (b) => b === false || (typeof b === 'number' && Number.isInteger(b) && b >= 1 && b <= 128), 'ipv6Subnet', 'a prefix length from 1 to 128, or false');
  check(o.onMissingKey, (m) => m === 'skip' || m === 'reject' || (isPlainObject(m) && Object.keys(m).length === 1 && isNonEmptyString(m.key)), 'onMissingKey', "'skip', 'reject' or { key: string }");
  check(o.missingKeyStatus, (s) => s === 400 || s === 401, 'missingKeyStatus', '400 or 401');
  check(o.unavailableStatus, (s) => s === 503 || s === 429, 'unavailableStatus', '503 or 429');
  check(o.allowList, Array.isArray, 'allowList', 'a list of keys and IP addresses / CIDRs');
  check(o.denyList, Array.isArray, 'denyList', 'a list of keys and IP addresses / CIDRs');
  for (const f of ['skip', 'classify', 'onDenied', 'onDecision', 'onRelease'] as const) check(o[f], isFunction, f, 'a function');
  check(o.limiter, isPlainObject, 'limiter', 'an object of limiter options');
  if (o.bypass !== undefined) {
    const b = o.bypass;
    if (!isPlainObject(b)) throw new InvalidConfigError(`bypass must be { secret, header?, maxAgeMs? }, got ${describe(b)}`);
    refuseUnknownKeys(b, BYPASS, 'bypass');
    if (!isOneOrMoreStrings(b.secret)) throw new InvalidConfigError('bypass.secret must be a non-empty string or a non-empty list of them');
    check(b.header, isNonEmptyString, 'bypass.header', 'a header name');
    check(b.maxAgeMs, (n) => typeof n === 'number' && Number.isFinite(n) && n > 0, 'bypass.maxAgeMs', 'a positive number of ms');
  }
}
