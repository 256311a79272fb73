import { algoNames, algorithms, concurrencyAcquireScript, multiBatchScript, type AlgoName, type AlgorithmParams } from '../../generated/index.js';
import { InvalidConfigError } from '../errors.js';
import { TIERS_ALGOS } from '../runtime/checks.js';
import type { BreakerOptions, CircuitBreaker } from './breaker.js';
import type { MetricsHook } from './metrics.js';

/**
 * One rate limit of a limiter. `name` keys it in costs, results and Redis keys; the other fields
 * are its algorithm's parameters as its script's header declares them (generated:
 * AlgorithmParams), e.g. `{ algo: 'gcra', limit, periodMs, burst? }` or `{ algo: 'quota', limit,
 * unit, utcOffsetMs? }`. A quota may instead name an IANA time zone (`timeZone: 'Europe/Berlin'`):
 * its days, weeks and months then start at local midnight, daylight saving time included.
 */
export type LimitSpec = {
  [A in AlgoName]: { name: string; algo: A; scope?: string; priorities?: Priorities; byScope?: ByScope<Partial<AlgorithmParams[A]>> } & AlgorithmParams[A] & (A extends 'quota' ? QuotaZone : unknown);
}[AlgoName];

/**
 * Values chosen per scope value: `{ model: { 'gpt-large': { limit: 30_000 } } }` — one scope name
 * (here `model`, from each call's `scopes`), and per value of it other values for the limit's
 * algorithm parameters. A parameter an entry does not give keeps the limit's own; a value not
 * listed (or a call without that scope) uses the limit's own values throughout. The scope that
 * chooses the values may be the one that keys the limit (`scope: 'model'`: one key per model) or
 * another (`scope: 'route'` keyed per (agent, provider, model), values by `model`). Each entry is
 * checked by its script's ranges at construction, as the limit itself is.
 */
export type ByScope<P> = Readonly<Record<string, Readonly<Record<string, P>>>>;

/** A quota's zone: a fixed `utcOffsetMs` (its parameter), or an IANA `timeZone` (not both). */
export interface QuotaZone {
  /** IANA time zone name, e.g. 'America/New_York' (the runtime's tz database, through Intl). */
  timeZone?: string;
}

/**
 * A concurrency limit: at most `limit` calls of a subject in flight at once. An admitted call
 * holds a slot (for a holder id) until it is released, or until `ttlMs` has passed since it was
 * taken (a holder that crashed). Decided in the same atomic call as the rate limits: the slot is
 * taken only if every rate limit admits, and the rate units only if a slot is free.
 */
export interface ConcurrencyLimitSpec {
  name: string;
  algo: 'concurrency';
  /** Holders at once. */
  limit: number;
  /** How long a holder keeps its slot if it never releases it, ms. Default 60 000. */
  ttlMs?: number;
  scope?: string;
  priorities?: Priorities;
  /** Holders at once (and ttl) per value of a scope, e.g. `{ model: { 'gpt-large': { limit: 4 } } }`; see ByScope. */
  byScope?: ByScope<{ limit?: number; ttlMs?: number }>;
}

/** Any limit a limiter takes: a rate limit or a concurrency limit. */
export type AnyLimitSpec = LimitSpec | ConcurrencyLimitSpec;

/** A held slot's lifetime when a concurrency limit names none, ms. */
export const DEFAULT_CONCURRENCY_TTL_MS = 60_000;

/**
 * Priority classes: class name → the share (0 < share ≤ 1) of a limit's capacity a call of that
 * class may use. A call of share s is admitted only if, after it, at least capacity − ⌊capacity ×
 * s⌋ units would still be left (e.g. `{ critical: 1, interactive: 0.8, batch: 0.5 }`: batch
 * only while half the limit is left). Shares travel as parts per million (s rounded to 1e-6).
 */
export type Priorities = Record<string, number>;

export type OnRedisFailure = 'fallback' | 'open' | 'closed';

export interface RateLimiterOptions {
  /** ioredis 5 or 6 Redis/Cluster, or node-redis 5 or 6 client/cluster. Omit to run on the in-memory twin only. */
  redis?: object;
  /** Key prefix. Default "rl". Keys are `${prefix}:{hashTag}:${limit.name}:${scopeValue}`. */
  prefix?: string;
  /** Name for metrics. Default: the prefix. */
  name?: string;
  /** One limit or several (checked atomically together by the `multi` script); rate limits and concurrency limits mix. */
  limits: AnyLimitSpec | AnyLimitSpec[];
  /** Priority classes for every limit (a limit's own `priorities` override these); a call names its class. */
  priorities?: Priorities;
  /** What to answer when Redis cannot: the in-memory twin (default), allow, or deny. */
  onRedisFailure?: OnRedisFailure;
  /** With `fallback`: each instance enforces limit / fallbackShare (expected number of instances). Default 1. */
  fallbackShare?: number;
  /** With `closed`: throw RedisUnavailableError instead of answering denied. Default false. */
  throwWhenFailedClosed?: boolean;
  /** A breaker (shared as you like) or its options; default one breaker per Redis connection. */
  breaker?: CircuitBreaker | BreakerOptions;
  /** Deadline of one Redis round trip, ms. Default 100. */
  timeoutMs?: number;
  /**
   * Answer ids that Redis denied locally until their exact retry time. Default true. A change made
   * anywhere through the scripts (reset, refund, block) ends a local denial at once; one nothing
   * announces (a DEL by hand, without keyspace events) after at most `maxHoldMs` (default 100 ms,
   * unlimited when the server sends keyspace events for deletions: notify-keyspace-events Eg).
   */
  denyCache?: boolean | { maxEntries?: number; maxHoldMs?: number };
  /** Take units from Redis in batches and spend them locally (opt-in). */
  lease?: { size: number; ttlMs?: number };
  metrics?: MetricsHook;
  /** Clock for local bookkeeping (deny cache, leases, fallback, time zone rules). Default Date.now. */
  clock?: () => number;
  /**
   * Send `clock`'s reading to Redis as each call's time (now_ms) instead of the server's TIME:
   * decisions, peeks, refunds, releases and blocks (not acquire). For tests
   * and simulations that move time; never in production, where the one server clock is what
   * keeps a fleet with skewed clocks in agreement. Default false.
   */
  sendClock?: boolean;
  /**
   * Decisions of the same event-loop turn go to Redis as one `batch` script call (one limit, no
   * blocks). Default true; exactness is the same either way.
   */
  coalesce?: boolean;
  /**
   * Enables block(): every decision then checks the subject's penalty box atomically with its
   * limits (through the multi script, so it costs more per decision). Default false.
   */
  blocks?: boolean;
  /**
   * Run scripts through FCALL when the server can hold this release's Functions library (loaded
   * automatically, never replacing another one); EVALSHA otherwise. Default true.
   */
  functions?: boolean;
  /**
   * Where a subject's state lives in Redis. `subject`: one key per subject holding every limit
   * (`prefix:{id}:name1+name2+...`, the `tiers` scripts): one read and one write per decision
   * whatever the number of limits, and one key's memory. For limiters of two or more limits of
   * algo gcra, token_bucket, fixed_window, sliding_window or quota, keyed by the id (no scope),
   * without blocks. `per-limit`: one key per limit (`prefix:{id}:name`), for every limiter.
   * `auto` (default): `subject` where it applies (a Redis Cluster too: a primary's decisions of
   * many hash slots go as one tiers_node_batch call), else `per-limit`. Every call answers the
   * same in both layouts.
   *
   * Upgrading to `subject` (a limiter that kept a key per limit): a subject's key that holds
   * nothing takes over its limits' own keys' states (and deletes those keys), so counts carry
   * over; resets delete both. While processes of both layouts run at once (a rolling deploy from a
   * release before `auto`), each layout counts on its own keys: pin `layout: 'per-limit'` through
   * such a deploy if a subject must not get up to both layouts' budgets meanwhile, then drop it.
   * Code that calls a limit's own script on its own key (`limitKey`, Python's `limit_key`)
   * shares it only with a key per limit: beside a limiter of one key per subject it counts apart
   * (and is taken over whenever the subject's key holds nothing); pin `per-limit` for that.
   * Changing the set of limits (adding, removing, renaming or reordering one) starts the counts
   * afresh under a new key; changing a limit's values keeps them. With one limit both layouts are
   * the same key.
   */
  layout?: 'per-limit' | 'subject' | 'auto';
}

const OPTIONS = new Set([
  'redis', 'prefix', 'name', 'limits', 'onRedisFailure', 'fallbackShare', 'throwWhenFailedClosed', 'breaker', 'timeoutMs',
  'denyCache', 'lease', 'metrics', 'clock', 'coalesce', 'blocks', 'functions', 'priorities', 'sendClock', 'layout',
]);
const CONCURRENCY_LIMIT = concurrencyAcquireScript.args.find((a) => a.name === 'limit')!;
const CONCURRENCY_TTL = concurrencyAcquireScript.args.find((a) => a.name === 'period_ms')!;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function intBetween(value: unknown, what: string, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidConfigError(`${what} must be an integer between ${min} and ${max}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  }
}

function positiveInt(value: unknown, what: string, max: number): void {
  intBetween(value, what, 1, max);
}

/** "a, b or c" */
const oneOf = (values: readonly string[]) => (values.length < 2 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`);

/** A misspelt option must not pass silently: name the closest known one. */
function unknownKeys(obj: object, known: Iterable<string>, where: string): void {
  const names = [...known];
  for (const k of Object.keys(obj)) {
    if (names.includes(k)) continue;
    const near = names.find((n) => n.toLowerCase() === k.toLowerCase()) ?? names.find((n) => distance(n, k) <= 2);
    throw new InvalidConfigError(`${where}: unknown option ${JSON.stringify(k)}${near ? ` (did you mean ${near}?)` : ''}`);
  }
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length]![b.length]!;
}

/**
 * Checks a configuration's shape up front, with messages that say what to change. The numeric
 * ranges of a limit come from its script's header: the plan (src/client/plan.ts) checks them
 * when it compiles the limit.
 */
export function validateConfig(o: RateLimiterOptions): AnyLimitSpec[] {
  if (!o || typeof o !== 'object') throw new InvalidConfigError('options must be an object');
  unknownKeys(o, OPTIONS, 'createRateLimiter');
  if (o.redis !== undefined && (o.redis === null || typeof o.redis !== 'object')) {
    throw new InvalidConfigError(`redis must be an ioredis or node-redis client (got ${typeof o.redis === 'string' ? 'a string: create the client yourself, e.g. new Redis(url), or use fromEnv()' : typeof o.redis})`);
  }
  const limits = Array.isArray(o.limits) ? o.limits : o.limits ? [o.limits] : [];
  if (limits.length === 0) throw new InvalidConfigError('limits must name at least one limit');
  // Every decision must fit the script that coalesces it (multi_batch): its header bounds it.
  const most = multiBatchScript.args.find((a) => a.name === 'count')!.max!;
  const items = limits.length + (o.blocks === true ? 1 : 0);
  if (items > most) throw new InvalidConfigError(`a limiter holds at most ${most} limits (counting the block check of blocks: true), got ${items}`);
  const names = new Set<string>();
  for (const l of limits) {
    if (!l || typeof l !== 'object' || typeof l.name !== 'string' || !NAME.test(l.name)) {
      throw new InvalidConfigError(`every limit needs a name of 1 to 64 letters, digits, _ or - (got ${JSON.stringify((l as { name?: unknown } | undefined)?.name)})`);
    }
    if (names.has(l.name)) throw new InvalidConfigError(`limit name ${l.name} is used twice`);
    names.add(l.name);
    if (l.algo === 'concurrency') {
      checkConcurrency(l);
      continue;
    }
    if (!(algoNames as readonly string[]).includes(l.algo)) throw new InvalidConfigError(`limit ${l.name}: algo must be one of ${[...algoNames, 'concurrency'].join(', ')}, got ${JSON.stringify(l.algo)}`);
    const params = algorithms[l.algo].params;
    unknownKeys(l, ['name', 'algo', 'scope', 'priorities', 'byScope', ...params.map((p) => p.prop), ...(l.algo === 'quota' ? ['timeZone'] : [])], `limit ${l.name}`);
    if (l.priorities !== undefined) checkPriorities(l.priorities, `limit ${l.name}: priorities`);
    if (l.algo === 'quota' && l.timeZone !== undefined) {
      if (typeof l.timeZone !== 'string' || l.timeZone.length === 0) throw new InvalidConfigError(`limit ${l.name}: timeZone must be an IANA time zone name, e.g. "Europe/Berlin"`);
      if (l.utcOffsetMs !== undefined) throw new InvalidConfigError(`limit ${l.name}: give timeZone or utcOffsetMs, not both (a time zone has its own offsets)`);
    }
    // The required parameters here, by their script's ranges; the optional ones when the plan
    // compiles the limit against the same header.
    for (const p of params) {
      if (!p.required) continue;
      const value = (l as unknown as Record<string, unknown>)[p.prop];
      if (p.type === 'int') intBetween(value, `limit ${l.name}: ${p.prop}`, p.min!, p.max!);
      else if (p.type === 'enum' && !p.values!.includes(value as string)) throw new InvalidConfigError(`limit ${l.name}: ${p.prop} must be ${oneOf(p.values!)}`);
    }
    checkScope(l);
    if (l.byScope !== undefined) {
      checkByScope(l, params.map((p) => p.prop), (where, o) => {
        for (const p of params) {
          const value = (o as Record<string, unknown>)[p.prop];
          if (value === undefined) continue; // kept from the limit
          if (p.type === 'int') intBetween(value, `${where}: ${p.prop}`, p.min!, p.max!);
          else if (p.type === 'enum' && !p.values!.includes(value as string)) throw new InvalidConfigError(`${where}: ${p.prop} must be ${oneOf(p.values!)}`);
        }
        if (l.algo === 'quota' && l.timeZone !== undefined && (o as { utcOffsetMs?: unknown }).utcOffsetMs !== undefined) {
          throw new InvalidConfigError(`${where}: utcOffsetMs cannot be given for a quota in time zone ${l.timeZone} (a time zone has its own offsets)`);
        }
      });
    }
  }
  if (o.priorities !== undefined) checkPriorities(o.priorities, 'priorities');
  checkLayout(o, limits);
  if (o.prefix !== undefined && (typeof o.prefix !== 'string' || o.prefix.length === 0 || /[{}]/.test(o.prefix))) {
    throw new InvalidConfigError('prefix must be a non-empty string without { or }');
  }
  if (o.onRedisFailure !== undefined && !['fallback', 'open', 'closed'].includes(o.onRedisFailure)) {
    throw new InvalidConfigError(`onRedisFailure must be fallback, open or closed, got ${JSON.stringify(o.onRedisFailure)}`);
  }
  if (o.fallbackShare !== undefined) positiveInt(o.fallbackShare, 'fallbackShare', 10_000);
  if (o.timeoutMs !== undefined) positiveInt(o.timeoutMs, 'timeoutMs', 60_000);
  for (const flag of ['coalesce', 'blocks', 'throwWhenFailedClosed', 'functions', 'sendClock'] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') throw new InvalidConfigError(`${flag} must be true or false`);
  }
  if (o.denyCache !== undefined && typeof o.denyCache !== 'boolean') {
    if (o.denyCache === null || typeof o.denyCache !== 'object') throw new InvalidConfigError('denyCache must be true, false or { maxEntries?, maxHoldMs? }');
    unknownKeys(o.denyCache, ['maxEntries', 'maxHoldMs'], 'denyCache');
    if (o.denyCache.maxEntries !== undefined) positiveInt(o.denyCache.maxEntries, 'denyCache.maxEntries', 10_000_000);
    if (o.denyCache.maxHoldMs !== undefined) positiveInt(o.denyCache.maxHoldMs, 'denyCache.maxHoldMs', 86_400_000);
  }
  if (o.lease) {
    unknownKeys(o.lease, ['size', 'ttlMs'], 'lease');
    positiveInt(o.lease.size, 'lease.size', 1_000_000);
    if (o.lease.ttlMs !== undefined) positiveInt(o.lease.ttlMs, 'lease.ttlMs', 3_600_000);
    const slots = limits.find((l) => l.algo === 'concurrency');
    if (slots) throw new InvalidConfigError(`lease cannot be used with concurrency limit ${slots.name}: each call holds a slot of its own, which no lease can hand out`);
    const kept = limits.find((l) => l.algo !== 'concurrency' && !algorithms[l.algo].refundable);
    if (kept) throw new InvalidConfigError(`lease cannot be used with ${kept.algo} limit ${kept.name}: its units cannot be given back`);
  }
  return limits;
}

/** Nominal length of each calendar unit a limit may be stated over, ms (a month counted as 30 days). */
const UNIT_MS: Readonly<Record<string, number>> = { day: 86_400_000, week: 604_800_000, month: 2_592_000_000 };

/** The window a limit is stated over, ms: its period, or its calendar unit's nominal length (a concurrency limit: its ttl). */
export function windowMs(l: AnyLimitSpec): number {
  if (l.algo === 'concurrency') return l.ttlMs ?? DEFAULT_CONCURRENCY_TTL_MS;
  return 'periodMs' in l ? l.periodMs : UNIT_MS[l.unit]!;
}

/** Units a fresh key of this limit holds: its algorithm's capacity parameter (burst, when it has one), else its limit (a concurrency limit: its slots). */
export function capacity(l: AnyLimitSpec): number {
  if (l.algo === 'concurrency') return l.limit;
  const prop = algorithms[l.algo].params.find((p) => p.name === algorithms[l.algo].capacity)!.prop;
  return ((l as unknown as Record<string, number | undefined>)[prop] ?? l.limit);
}

/**
 * Whether a subject's limits share one key: layout 'subject', or 'auto' where it applies (two or
 * more limits a subject's key holds, keyed by the id, no blocks), on a standalone server and a
 * Cluster alike (there a primary's decisions of many slots go as one tiers_node_batch call, as a
 * key per limit goes as node_batch).
 */
export function usesSubjectLayout(o: RateLimiterOptions, limits: readonly AnyLimitSpec[]): boolean {
  if (limits.length < 2 || o.layout === 'per-limit') return false;
  if (o.layout === 'subject') return true;
  return o.blocks !== true && limits.every((l) => TIERS_ALGOS.has(l.algo) && (l.scope === undefined || l.scope === 'id'));
}

/** `layout: 'subject'`: what one subject's key can hold (lib/tiers), said before any key is made. */
function checkLayout(o: RateLimiterOptions, limits: readonly AnyLimitSpec[]): void {
  if (o.layout === undefined || o.layout === 'per-limit' || o.layout === 'auto') return;
  if (o.layout !== 'subject') throw new InvalidConfigError(`layout must be auto, per-limit or subject, got ${JSON.stringify(o.layout)}`);
  if (limits.length < 2) return; // one limit: its key is the subject's key
  if (o.blocks === true) throw new InvalidConfigError("layout: 'subject' does not take blocks: true (the penalty box has a key of its own); use layout: 'per-limit'");
  for (const l of limits) {
    if (!TIERS_ALGOS.has(l.algo)) throw new InvalidConfigError(`layout: 'subject' holds limits of algo ${[...TIERS_ALGOS].join(', ')}; limit ${l.name} is ${l.algo}: use layout: 'per-limit'`);
    if (l.scope !== undefined && l.scope !== 'id') throw new InvalidConfigError(`layout: 'subject' holds limits keyed by the id; limit ${l.name} is keyed by scope ${l.scope}: use layout: 'per-limit'`);
  }
}

function checkScope(l: AnyLimitSpec): void {
  if (l.scope !== undefined && (typeof l.scope !== 'string' || !NAME.test(l.scope))) {
    throw new InvalidConfigError(`limit ${l.name}: scope must be a name of letters, digits, _ or -`);
  }
}

/** A concurrency limit: its slots and ttl by concurrency_acquire's own ranges. */
function checkConcurrency(l: ConcurrencyLimitSpec): void {
  unknownKeys(l, ['name', 'algo', 'limit', 'ttlMs', 'scope', 'priorities', 'byScope'], `limit ${l.name}`);
  intBetween(l.limit, `limit ${l.name}: limit (holders at once)`, CONCURRENCY_LIMIT.min!, CONCURRENCY_LIMIT.max!);
  if (l.ttlMs !== undefined) intBetween(l.ttlMs, `limit ${l.name}: ttlMs`, CONCURRENCY_TTL.min!, CONCURRENCY_TTL.max!);
  if (l.priorities !== undefined) checkPriorities(l.priorities, `limit ${l.name}: priorities`);
  checkScope(l);
  if (l.byScope !== undefined) {
    checkByScope(l, ['limit', 'ttlMs'], (where, o) => {
      const { limit, ttlMs } = o as { limit?: unknown; ttlMs?: unknown };
      if (limit !== undefined) intBetween(limit, `${where}: limit (holders at once)`, CONCURRENCY_LIMIT.min!, CONCURRENCY_LIMIT.max!);
      if (ttlMs !== undefined) intBetween(ttlMs, `${where}: ttlMs`, CONCURRENCY_TTL.min!, CONCURRENCY_TTL.max!);
    });
  }
}

/** The longest scope value a key takes (keys.ts part()). */
const MAX_SCOPE_VALUE = 512;

/**
 * A limit's `byScope`: one scope name (not `id`: values per id are what policies are for), and
 * per value of it (as keys take values: non-empty, at most 512 characters, no braces,
 * well-formed) only parameters of the limit's algorithm (`props`), each then checked by `check`
 * against its script's ranges.
 */
function checkByScope(l: AnyLimitSpec, props: readonly string[], check: (where: string, o: object) => void): void {
  const where = `limit ${l.name}: byScope`;
  const by: unknown = l.byScope;
  const shape = `${where} must be { scopeName: { scopeValue: { parameter: value } } }, e.g. { model: { 'gpt-large': { limit: 30000 } } }`;
  if (by === null || typeof by !== 'object' || Array.isArray(by)) throw new InvalidConfigError(shape);
  const scopes = Object.keys(by);
  if (scopes.length !== 1) throw new InvalidConfigError(`${shape}: one scope name${scopes.length > 1 ? `, got ${scopes.join(', ')}` : ''}`);
  const scope = scopes[0]!;
  if (scope === 'id') throw new InvalidConfigError(`${where}: values are chosen by a scope's value, not by id (values per id are what policies are for)`);
  if (!NAME.test(scope)) throw new InvalidConfigError(`${where}: scope ${JSON.stringify(scope.slice(0, 40))} must be a name of letters, digits, _ or -`);
  const values: unknown = (by as Record<string, unknown>)[scope];
  if (values === null || typeof values !== 'object' || Array.isArray(values)) throw new InvalidConfigError(shape);
  for (const [value, o] of Object.entries(values)) {
    const at = `${where}.${scope}[${JSON.stringify(value.slice(0, 40))}]`;
    if (value.length === 0 || value.length > MAX_SCOPE_VALUE || value.includes('{') || value.includes('}') || !(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw new InvalidConfigError(`${at}: a ${scope} value must be a non-empty, well-formed string of at most ${MAX_SCOPE_VALUE} characters without { or } (as keys take it)`);
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new InvalidConfigError(`${at} must be an object of ${oneOf(props)} (byScope is { scopeName: { scopeValue: { parameter: value } } })`);
    unknownKeys(o, props, at);
    check(at, o);
  }
}

function checkPriorities(p: unknown, where: string): void {
  if (p === null || typeof p !== 'object' || Array.isArray(p) || Object.keys(p).length === 0) throw new InvalidConfigError(`${where} must be { className: share }, e.g. { critical: 1, batch: 0.5 }`);
  for (const [k, v] of Object.entries(p)) {
    if (!NAME.test(k)) throw new InvalidConfigError(`${where}: class ${JSON.stringify(k)} must be a name of letters, digits, _ or -`);
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw new InvalidConfigError(`${where}.${k} must be a share of the capacity, 0 < share <= 1, got ${String(v)}`);
  }
}
