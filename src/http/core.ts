import { algorithms } from '../../generated/index.js';
import type { BlockList } from 'node:net';
import { InvalidConfigError } from '../errors.js';
import type { AnyLimitSpec, LimitSpec, RateLimiterOptions } from '../client/config.js';
import type { Decision } from '../client/decision.js';
import { createRateLimiter, type Cost, type Held, type RateLimiter } from '../client/limiter.js';
import type { Subject } from '../client/keys.js';
import { createPolicyLimiter, type PolicyLimiter } from '../policy/limiter.js';
import { verifyBypass, type BypassOptions } from './bypass.js';
import { addressKey, addressList, clientIp, inList, type TrustProxy } from './client-ip.js';
import { headerStyles, rateLimitHeaders, retryMs, windowSeconds, type HeaderStyle } from './headers.js';
import { ANY_ROUTER, PathPattern, pathForms, type PathForms, type PathMatching } from './paths.js';
import { checkHttpOptions } from './validate.js';

/** What the core needs of a request; every adapter builds one. */
export interface HttpRequestInfo {
  method: string;
  /** The path as sent, without the query string (absolute-form targets reduced to their path). */
  path: string;
  /**
   * How the framework in front routes paths (see PathMatching); adapters set it. Omitted: every
   * normalisation any supported router applies (ANY_ROUTER).
   */
  pathMatching?: PathMatching;
  header(name: string): string | undefined;
  /** The socket's peer address. */
  remoteAddress: string | undefined;
  /** The framework's own request (Express req, Fastify request, fetch Request, Koa ctx...). */
  raw: unknown;
}

/** Who a request counts against. */
export type KeyOption = 'ip' | { header: string } | ((req: HttpRequestInfo) => string | undefined | Promise<string | undefined>);

/** A client class, as `classify` answers (built in: internal, api-key, authenticated, anonymous). */
export type ClientClass = string;

export interface RateLimitRule {
  /** Name in metrics, Redis keys and the operations endpoint. Default `rule<index>`. */
  name?: string;
  /**
   * A path, or a RegExp. Omitted: every path. Matched as the framework routes (see PathPattern):
   * a string matches every spelling the router sends to the same route (`/login` also matches
   * `/LOGIN` and `/login/` on Express, `/l%6Fgin` on Fastify and Hono); a RegExp is tested against
   * the path as sent and as normalised, case-insensitively where the router is.
   */
  path?: string | RegExp;
  /** One method or several. GET also matches HEAD (every framework answers HEAD with the GET handler). Omitted: every method. */
  method?: string | readonly string[];
  /** Client class(es) the rule is for. Omitted: every class. */
  clientClass?: ClientClass | readonly ClientClass[];
  /**
   * The limits a matching request is decided against, atomically. An empty list: no limit. A
   * concurrency limit (`{ name, algo: 'concurrency', limit, ttlMs? }`) caps the client's requests
   * in flight: an admitted request holds a slot until its response is done (see HttpRateLimiter).
   */
  limits?: AnyLimitSpec | AnyLimitSpec[];
  /** Or a limiter you built yourself (its own limits, prefix and options; `scale` does not apply). */
  limiter?: RateLimiter;
  /** Or limits from the policy store, resolved per request through a chain of policies (see PolicyRule). */
  policy?: PolicyRule;
  /** Decide and report, never deny (roll a new limit out). */
  shadow?: boolean;
  /** Overrides the key for this rule. */
  key?: KeyOption;
  /**
   * Or the whole subject for this rule's limiter (`{ id, hashTag, scopes }` for user / team / org
   * limits); its id is the key for allow / deny lists. Undefined or empty: a missing key.
   */
  subject?: (req: HttpRequestInfo) => Subject | undefined | Promise<Subject | undefined>;
  /** The request's cost (e.g. per limit name). Default 1. */
  cost?: (req: HttpRequestInfo) => Cost;
}

/**
 * A rule whose limits live in Redis as policies (see createPolicyLimiter): each request's limits
 * are resolved through its chain, e.g. `['default', `plan:${plan}`, `key:${apiKey}`]`, the most
 * specific value winning per limit name. A change made anywhere (policies.set, the CLI, the
 * operations endpoint) applies to the next request of every process: at once in the process
 * that made it, within one round trip of its announcement elsewhere, and within `pollMs`
 * (default 500 ms) plus one round trip when an announcement is missed. During a Redis outage the
 * last known policies stay, and the limiter's onRedisFailure decides with them. `scale` does not
 * apply (use an `env:` layer: `environment`). Headers report the limits as resolved.
 */
export interface PolicyRule {
  /**
   * The policies for this request, least specific first; `key` is who the request counts against
   * (its subject's id). Policy names are letters, digits, _ - : . (no braces): map anything else
   * (hash an API key). Omitted with `limiter`: that limiter's own `chain(subject)`.
   */
  chain?: (req: HttpRequestInfo, key: string) => readonly string[] | Promise<readonly string[]>;
  /**
   * A policy limiter you built (its store, prefix and options: share it with the operations
   * endpoint's `policies` and other rules). Omitted: one is built on these options' `redis` and
   * `limiter` options, its keys and its policies under `${prefix}:${rule}` (policies at
   * `${prefix}:${rule}:{policies}`: the CLI's `--prefix`).
   */
  limiter?: PolicyLimiter;
  /** Without `limiter`: appends the layer `env:<environment>` (e.g. its scale 0.8) as the most specific. */
  environment?: string;
  /** Without `limiter`: limits in code, under every policy (also what decides when Redis is down before any policy was read). */
  defaults?: LimitSpec[];
  /** Without `limiter`: a chain that resolves to no limit: `deny` (default: 403) or `allow`. */
  onNoLimits?: 'deny' | 'allow';
  /** Without `limiter`: how often the global policy version is polled (the backstop for a missed announcement). Default 500 ms. */
  pollMs?: number;
}

export interface HttpRateLimitOptions {
  /** ioredis / node-redis client shared by every rule's limiter; omitted: in-memory only. */
  redis?: object;
  /** Key prefix; each rule's keys live under `${prefix}:${rule}`. Default `rl:http`. */
  prefix?: string;
  /** Limits for a request no rule matches (same as a last rule without conditions). */
  limits?: AnyLimitSpec | AnyLimitSpec[];
  /** Ordered rules: the first whose path, method and client class match decides. Unknown rule keys are refused. */
  rules?: readonly RateLimitRule[];
  /** Who a request counts against. Default `ip`. */
  key?: KeyOption;
  /** Which proxies may name the client in X-Forwarded-For (see TrustProxy). Default false. */
  trustProxy?: TrustProxy;
  /** IPv6 clients are keyed by this prefix. Default 56; false: the whole address. */
  ipv6Subnet?: number | false;
  /** When a request has no key: `skip` (no limit), `reject` (missingKeyStatus) or a shared key. Default `reject`. */
  onMissingKey?: 'skip' | 'reject' | { key: string };
  /** Status for a request without a key. Default 400 (use 401 when the key is a credential). */
  missingKeyStatus?: 400 | 401;
  /**
   * Keys or IP addresses / CIDRs (IPv4 and IPv6) that are never limited. Addresses are checked
   * against the client's own address (after trustProxy), not against its /56 key.
   */
  allowList?: readonly string[];
  /** Keys or IP addresses / CIDRs that are refused with 403 (checked as allowList is). */
  denyList?: readonly string[];
  /** Requests this says yes to are not limited (health checks, static files). */
  skip?: (req: HttpRequestInfo) => boolean | Promise<boolean>;
  /** The client's class for rules. Default: internal (valid bypass), api-key, authenticated (Authorization), anonymous. */
  classify?: (req: HttpRequestInfo) => ClientClass | Promise<ClientClass>;
  /** Internal-service bypass by signed header (see signBypass). */
  bypass?: BypassOptions;
  /** Multiplies every limit (and burst), e.g. 0.8 in staging. Default 1. */
  scale?: number;
  /** Header style(s). Default `ietf`. A list writes each style's headers; `ietf` with `draft-6` is refused (both write RateLimit-Policy). */
  headers?: HeaderStyle | readonly HeaderStyle[];
  /** The 429 response. Default: `application/problem+json`. */
  onDenied?: (req: HttpRequestInfo, d: Decision) => HttpResponse;
  /** When the limiter could not reach Redis and fails closed: 503 (default) or 429. */
  unavailableStatus?: 503 | 429;
  /** Every decision, for logs and metrics (shadow denials included). */
  onDecision?: (e: { rule: string; key: string; decision: Decision; shadow: boolean; req: HttpRequestInfo }) => void;
  /**
   * A concurrency slot was given back (the request's response done, or its client gone):
   * `released` false when the slot was no longer held (expired after ttlMs, or reset); `error`
   * when Redis could not be reached (the slot then frees itself ttlMs after it was taken).
   */
  onRelease?: (e: { rule: string; key: string; holder: string; released: boolean; error?: unknown }) => void;
  /** Options passed to every rule's limiter (onRedisFailure, breaker, timeoutMs, metrics...). */
  limiter?: Omit<RateLimiterOptions, 'redis' | 'limits' | 'prefix'>;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * What to do with a request: let it through with these headers, or answer it now. A request let
 * through that holds a concurrency slot has `release`: call it once the response is done or the
 * client is gone (the adapters do). It is idempotent and never rejects.
 */
export type Outcome = { pass: true; headers: Record<string, string>; decision: Decision | null; release?: () => Promise<void> } | ({ pass: false; decision: Decision | null } & HttpResponse);

interface CompiledRule {
  name: string;
  path?: PathPattern;
  methods: Set<string> | null;
  classes: Set<string> | null;
  /** Every limit the rule reports in headers: its rate limits, then its concurrency limits. */
  limits: AnyLimitSpec[];
  limiter: RateLimiter | null;
  /** The limiter has a concurrency limit: an admitted request holds a slot until it is done. */
  holds: boolean;
  /** A policy rule: its limiter (built here when `own`) and the chain per request. */
  policy: { limiter: PolicyLimiter; chain?: PolicyRule['chain']; own: boolean } | null;
  shadow: boolean;
  key?: KeyOption;
  subject?: RateLimitRule['subject'];
  cost?: (req: HttpRequestInfo) => Cost;
}

/** Counters since start, for the operations endpoint. */
export interface HttpCounters {
  since: number;
  byRule: Record<string, { allowed: number; denied: number; shadowDenied: number; bySource: Record<string, number> }>;
  skipped: number;
  bypassed: number;
  forbidden: number;
  missingKey: number;
}

/**
 * The framework-neutral core every adapter shares: who the request is, which rule applies, the
 * limiter's decision, and the response — headers true for every decision source, 429 with
 * Retry-After, 403 for the deny list, 503 (or 429) when Redis is down and the limiter fails
 * closed. Adapters only translate requests and responses.
 *
 * Concurrency limits: a rule whose limiter (or whose own `limits`) has a concurrency limit takes
 * a slot for each admitted request with `hold()`, atomically with its rate limits, and the
 * adapter gives it back exactly once when the request is done (the response sent, the client
 * gone, the handler failed: see each adapter). A shadow rule holds slots as an enforcing one
 * does, so its reported denials are true ones; a request it lets through past a denial holds
 * none. Skipped, allow-listed, bypassed and unmatched requests take no slot. A denial by a
 * concurrency limit is a 429 whose Retry-After is the wait until a held slot would expire
 * (ttlMs after it was taken): an upper bound, since any release frees a slot at once. The rate
 * units an admitted request took stay taken when its slot is given back. Policy rules hold none
 * (policies have no concurrency limits).
 */
export class HttpRateLimiter {
  readonly rules: readonly CompiledRule[];
  readonly counters: HttpCounters;
  private readonly styles: HeaderStyle[];
  private readonly trusted: BlockList | null;
  private readonly allowIps: BlockList;
  private readonly denyIps: BlockList;
  private readonly allowKeys: Set<string>;
  private readonly denyKeys: Set<string>;

  constructor(private readonly o: HttpRateLimitOptions) {
    checkHttpOptions(o);
    const scale = o.scale ?? 1;
    if (!(scale > 0) || !Number.isFinite(scale)) throw new InvalidConfigError('scale must be a positive number');
    const prefix = o.prefix ?? 'rl:http';
    const rules = [...(o.rules ?? [])];
    if (o.limits !== undefined) rules.push({ name: 'default', limits: o.limits });
    if (rules.length === 0) throw new InvalidConfigError('give limits, rules, or both');
    const names = new Set<string>();
    this.rules = rules.map((r, i) => {
      const name = r.name ?? `rule${i}`;
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new InvalidConfigError(`rule name ${JSON.stringify(name)}: letters, digits, _ and - only`);
      if (names.has(name)) throw new InvalidConfigError(`rule name ${name} is used twice`);
      names.add(name);
      if ([r.limits, r.limiter, r.policy].filter((x) => x !== undefined).length !== 1) throw new InvalidConfigError(`rule ${name}: give limits, a limiter or a policy (one of them)`);
      const methods = r.method === undefined ? null : new Set((typeof r.method === 'string' ? [r.method] : r.method).map((m) => m.toUpperCase()));
      if (methods?.has('GET')) methods.add('HEAD');
      const classes = r.clientClass === undefined ? null : new Set(typeof r.clientClass === 'string' ? [r.clientClass] : r.clientClass);
      const common = { name, path: r.path === undefined ? undefined : new PathPattern(r.path), methods, classes, shadow: r.shadow ?? false, key: r.key, subject: r.subject, cost: r.cost };
      if (r.policy) return { ...common, limits: [], limiter: null, holds: false, policy: this.policyFor(r.policy, name, prefix) };
      const given = r.limiter ? [] : (Array.isArray(r.limits) ? r.limits : [r.limits!]).map((l) => scaled(l, scale));
      const limiter = r.limiter ?? (given.length === 0 ? null : createRateLimiter({ ...o.limiter, redis: o.redis, limits: given, prefix: `${prefix}:${name}`, name }));
      const limits = limiter ? [...limiter.limits, ...limiter.concurrencyLimits] : [];
      return { ...common, limits, limiter, holds: (limiter?.concurrencyLimits.length ?? 0) > 0, policy: null };
    });
    this.styles = headerStyles(o.headers);
    this.trusted = Array.isArray(o.trustProxy) ? addressList(o.trustProxy, 'trustProxy') : null;
    const split = (entries: readonly string[] | undefined, what: string) => {
      for (const e of entries ?? []) if (typeof e !== 'string' || e === '') throw new InvalidConfigError(`${what}: entries must be non-empty strings (keys, IP addresses or CIDRs)`);
      const ips = (entries ?? []).filter((e) => /^[0-9a-fA-F:.]+(\/\d+)?$/.test(e) && (e.includes('.') || e.includes(':')));
      return { ips: addressList(ips, what), keys: new Set((entries ?? []).filter((e) => !ips.includes(e))) };
    };
    const allow = split(o.allowList, 'allowList');
    const deny = split(o.denyList, 'denyList');
    this.allowIps = allow.ips;
    this.allowKeys = allow.keys;
    this.denyIps = deny.ips;
    this.denyKeys = deny.keys;
    this.counters = { since: Date.now(), byRule: {}, skipped: 0, bypassed: 0, forbidden: 0, missingKey: 0 };
  }

  /** A policy rule's limiter: the one given, or one built on these options' Redis under the rule's prefix. */
  private policyFor(p: PolicyRule, name: string, prefix: string): CompiledRule['policy'] {
    if (p.limiter) {
      if (!p.chain && !p.limiter.hasChain) throw new InvalidConfigError(`rule ${name}: the policy limiter given has no chain(subject): give policy.chain: (req, key) => policy names`);
      return { limiter: p.limiter, ...(p.chain ? { chain: p.chain } : {}), own: false };
    }
    if (!this.o.redis) throw new InvalidConfigError(`rule ${name}: a policy rule without its own limiter needs redis (the policies live there)`);
    const { lease: _lease, ...limiterOptions } = (this.o.limiter ?? {}) as RateLimiterOptions;
    const limiter = createPolicyLimiter({
      ...limiterOptions,
      redis: this.o.redis,
      prefix: `${prefix}:${name}`,
      name,
      ...(p.environment !== undefined ? { environment: p.environment } : {}),
      ...(p.defaults !== undefined ? { defaults: p.defaults } : {}),
      ...(p.onNoLimits !== undefined ? { onNoLimits: p.onNoLimits } : {}),
      ...(p.pollMs !== undefined ? { pollMs: p.pollMs } : {}),
    });
    return { limiter, chain: p.chain!, own: true };
  }

  /** The client's address (trusted proxies applied): what allow and deny lists are checked against. */
  clientIp(req: HttpRequestInfo): string | undefined {
    return clientIp(req.remoteAddress, req.header('x-forwarded-for'), this.o, this.trusted);
  }

  /** The client's address as keyed (trusted proxies applied, IPv6 cut to its subnet). */
  address(req: HttpRequestInfo): string | undefined {
    const ip = this.clientIp(req);
    return ip === undefined ? undefined : addressKey(ip, this.o);
  }

  /** Is this request signed by an internal service (see signBypass)? */
  isInternal(req: HttpRequestInfo): boolean {
    return this.o.bypass !== undefined && verifyBypass(this.o.bypass, req.method, req.path, req.header(this.o.bypass.header ?? 'x-ratelimit-bypass'));
  }

  async classify(req: HttpRequestInfo): Promise<ClientClass> {
    if (this.isInternal(req)) return 'internal';
    if (this.o.classify) return this.o.classify(req);
    if (req.header('x-api-key')) return 'api-key';
    if (req.header('authorization')) return 'authenticated';
    return 'anonymous';
  }

  /** Decides one request. Never throws for Redis trouble; a bug in a user callback is thrown. */
  async handle(req: HttpRequestInfo): Promise<Outcome> {
    if (this.o.skip && (await this.o.skip(req))) {
      this.counters.skipped++;
      return { pass: true, headers: {}, decision: null };
    }
    const clientClass = await this.classify(req);
    if (clientClass === 'internal') {
      this.counters.bypassed++;
      return { pass: true, headers: {}, decision: null };
    }
    const ip = this.clientIp(req);
    if (ip && inList(this.denyIps, ip)) return this.forbidden();
    if (ip && inList(this.allowIps, ip)) {
      this.counters.skipped++;
      return { pass: true, headers: {}, decision: null };
    }
    const address = ip === undefined ? undefined : addressKey(ip, this.o);
    const forms = pathForms(req.path, req.pathMatching ?? ANY_ROUTER);
    const rule = this.rules.find((r) => matches(r, req, forms, clientClass));
    if (!rule || (!rule.limiter && !rule.policy)) return { pass: true, headers: {}, decision: null };

    let subject: Subject | undefined;
    let key: string | undefined;
    if (rule.subject) {
      subject = await rule.subject(req);
      key = typeof subject === 'string' ? subject || undefined : subject?.id || undefined;
      if (key === undefined) subject = undefined;
    } else key = await this.keyOf(rule.key ?? this.o.key ?? 'ip', req, address);
    if (key !== undefined && this.denyKeys.has(key)) return this.forbidden();
    if (key !== undefined && this.allowKeys.has(key)) {
      this.counters.skipped++;
      return { pass: true, headers: {}, decision: null };
    }
    if (key === undefined) {
      this.counters.missingKey++;
      const missing = this.o.onMissingKey ?? 'reject';
      if (missing === 'skip') return { pass: true, headers: {}, decision: null };
      if (missing === 'reject') {
        const status = this.o.missingKeyStatus ?? 400;
        return { pass: false, decision: null, ...problem(status, status === 401 ? 'Unauthorized' : 'Bad Request', 'This endpoint is rate limited per client and the request does not say who the client is.', {}) };
      }
      key = missing.key;
    }
    subject ??= key;

    let decision: Decision;
    let limits: readonly AnyLimitSpec[] = rule.limits;
    let release: (() => Promise<void>) | undefined;
    if (rule.policy) {
      const chain = rule.policy.chain ? await rule.policy.chain(req, key) : undefined;
      const d = await rule.policy.limiter.limit(subject, { ...(rule.cost ? { cost: rule.cost(req) } : {}), ...(chain !== undefined ? { chain } : {}) });
      decision = d;
      limits = d.policyLimits;
    } else if (rule.holds) {
      // A concurrency limit: the admitted request holds a slot (one multi call with the rate
      // limits) that the adapter gives back once, when the response is done or the client gone.
      const held = await rule.limiter!.hold(subject, rule.cost ? { cost: rule.cost(req) } : undefined);
      decision = held;
      if (held.holder !== undefined) release = this.releaser(rule.name, key, held);
    } else decision = await rule.limiter!.limit(subject, rule.cost ? { cost: rule.cost(req) } : undefined);
    // byScope: the headers describe the values this subject's scopes chose (the rule's own order).
    if (!rule.policy && limits.some(hasByScope)) {
      const chosen = rule.limiter!.limitsFor(subject);
      limits = limits.map((l) => chosen.find((c) => c.name === l.name) ?? l);
    }
    let headers: Record<string, string>;
    try {
      this.count(rule.name, decision, rule.shadow);
      this.o.onDecision?.({ rule: rule.name, key, decision, shadow: rule.shadow, req });
      headers = this.headersFor(decision, limits);
    } catch (err) {
      void release?.(); // a throwing onDecision must not keep the slot
      throw err;
    }
    if (decision.allowed || rule.shadow) return { pass: true, headers, decision, ...(release ? { release } : {}) };
    if (decision.source === 'fail-closed') {
      const status = this.o.unavailableStatus ?? 503;
      const retry = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
      return { pass: false, decision, ...problem(status, status === 503 ? 'Service Unavailable' : 'Too Many Requests', 'The rate limiter cannot reach its store and fails closed.', { ...headers, 'Retry-After': retry }) };
    }
    if (decision.deniedBy === 'no-limits') {
      // A policy rule whose chain resolves to no limit (an unknown plan), with onNoLimits deny.
      return { pass: false, decision, ...problem(403, 'Forbidden', 'No rate-limit policy applies to this client.', headers) };
    }
    const spec = limits.find((l) => l.name === decision.limitName) ?? limits[0];
    const windowSecs = spec ? windowSeconds(spec) : 1;
    headers['Retry-After'] = String(Math.max(1, Math.ceil(retryMs(decision, windowSecs) / 1000)));
    if (this.o.onDenied) {
      const custom = this.o.onDenied(req, decision);
      return { pass: false, decision, ...custom, headers: { ...headers, ...custom.headers } };
    }
    const slots = rule.limiter?.concurrencyLimits.some((l) => l.name === decision.deniedBy) ?? false;
    const detail =
      slots
        ? `Too many requests of this client are in flight (limit ${decision.deniedBy}); retry when one is done, at the latest in ${headers['Retry-After']} s.`
        : decision.deniedBy === 'paused'
        ? `The upstream asked for a pause; retry in ${headers['Retry-After']} s.`
        : decision.retryAfterMs < 0
          ? `This request costs more than limit ${decision.deniedBy} can ever admit.`
          : `Limit ${decision.deniedBy} is exhausted; retry in ${headers['Retry-After']} s.`;
    return { pass: false, decision, ...problem(429, 'Too Many Requests', detail, headers, { limit: decision.deniedBy, retryAfterMs: decision.retryAfterMs }) };
  }

  /** Gives a held slot back once; never rejects (onRelease hears how it went). */
  private releaser(rule: string, key: string, held: Held): () => Promise<void> {
    let done: Promise<void> | null = null;
    const holder = held.holder!;
    return () =>
      (done ??= held.release().then(
        (released) => this.o.onRelease?.({ rule, key, holder, released }),
        (error: unknown) => this.o.onRelease?.({ rule, key, holder, released: false, error }),
      ).catch(() => {})); // a throwing onRelease is not the request's business
  }

  private headersFor(d: Decision, limits: readonly AnyLimitSpec[]): Record<string, string> {
    const out: Record<string, string> = {};
    if (limits.length === 0) return out; // a policy rule with no limit (no-limits, a pause before any): nothing to report
    for (const style of this.styles) Object.assign(out, rateLimitHeaders(style, d, limits));
    return out;
  }

  private async keyOf(option: KeyOption, req: HttpRequestInfo, address: string | undefined): Promise<string | undefined> {
    let key: string | undefined;
    if (option === 'ip') key = address;
    else if (typeof option === 'function') key = await option(req);
    else key = req.header(option.header);
    if (key === undefined || key === '') return undefined;
    // Braces would move the Redis hash tag; keep any key usable as an id.
    return key.replace(/[{}]/g, '_').slice(0, 512);
  }

  private forbidden(): Outcome {
    this.counters.forbidden++;
    return { pass: false, decision: null, ...problem(403, 'Forbidden', 'This client is not allowed.', {}) };
  }

  private count(rule: string, d: Decision, shadow: boolean): void {
    const c = (this.counters.byRule[rule] ??= { allowed: 0, denied: 0, shadowDenied: 0, bySource: {} });
    if (d.allowed) c.allowed++;
    else if (shadow) c.shadowDenied++;
    else c.denied++;
    c.bySource[d.source] = (c.bySource[d.source] ?? 0) + 1;
  }

  /** The rule's limiter by name, for the operations endpoint. */
  limiter(rule: string): RateLimiter | null {
    return this.rules.find((r) => r.name === rule)?.limiter ?? null;
  }

  /** A policy rule's limiter by name (its `policies` is the store to manage). */
  policyLimiter(rule: string): PolicyLimiter | null {
    return this.rules.find((r) => r.name === rule)?.policy?.limiter ?? null;
  }

  /** Closes the limiters this core built (not the ones given in rules, nor the Redis client). */
  async close(): Promise<void> {
    await Promise.all(this.rules.filter((_, i) => !this.o.rules?.[i]?.limiter).map((r) => r.limiter?.close()));
    await Promise.all(this.rules.filter((r) => r.policy?.own).map((r) => r.policy!.limiter.close()));
  }
}

function matches(r: CompiledRule, req: HttpRequestInfo, path: PathForms, clientClass: string): boolean {
  if (r.methods && !r.methods.has(req.method.toUpperCase())) return false;
  if (r.classes && !r.classes.has(clientClass)) return false;
  return r.path === undefined || r.path.matches(path);
}

const hasByScope = (l: AnyLimitSpec): boolean => (l as { byScope?: unknown }).byScope !== undefined;

function scaled(l: AnyLimitSpec, scale: number): AnyLimitSpec {
  if (scale === 1) return l;
  const s = (n: number) => Math.max(1, Math.floor(n * scale));
  // The capacity parameter scales with the limit where it is one of its own (burst); slots scale
  // like any limit. A byScope entry's values scale the same way.
  const capacity = l.algo === 'concurrency' ? 'limit' : algorithms[l.algo].params.find((p) => p.name === algorithms[l.algo].capacity)!.prop;
  const values = (v: Record<string, unknown>): Record<string, unknown> => {
    const out = { ...v };
    for (const prop of new Set(['limit', capacity])) if (typeof v[prop] === 'number') out[prop] = s(v[prop] as number);
    return out;
  };
  const out = values(l as unknown as Record<string, unknown>);
  const byScope = (l as { byScope?: Record<string, Record<string, Record<string, unknown>>> }).byScope;
  if (byScope) out.byScope = Object.fromEntries(Object.entries(byScope).map(([scope, byValue]) => [scope, Object.fromEntries(Object.entries(byValue).map(([v, e]) => [v, values(e)]))]));
  return out as unknown as AnyLimitSpec;
}

/** An RFC 9457 problem details response. */
function problem(status: number, title: string, detail: string, headers: Record<string, string>, extra: Record<string, unknown> = {}): HttpResponse {
  return {
    status,
    headers: { ...headers, 'Content-Type': 'application/problem+json' },
    body: JSON.stringify({ type: 'about:blank', title, status, detail, ...extra }),
  };
}

export function createHttpRateLimiter(options: HttpRateLimitOptions): HttpRateLimiter {
  return new HttpRateLimiter(options);
}
