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
  if (scope === null) return s.tag === s.id ? idKey(prefix, s.id, name) : `${prefix}:{${s.tag}}:${name}:${s.id}`;
  const value = Object.hasOwn(s.scopes, scope) ? s.scopes[scope] : undefined;
  if (value === undefined) throw new InvalidArgumentError('limiter', 'scopes', `limit ${name} is scoped by ${scope}: pass scopes: { ${scope}: ... }`);
  return `${prefix}:{${s.tag}}:${name}:${value}`;
}

/** The common case of limitKey: a limit keyed by the id, tag = id (the id checked by the caller). */
function idKey(prefix: string, id: string, name: string): string {
  return `${prefix}:{${id}}:${name}`;
}

/**
 * The key of every limit of a subject (layout 'subject', the tiers scripts): the limit names
 * joined by '+' where one limit's name would be (`${prefix}:{${id}}:m+h+d`). A name has no '+',
 * so this is never one limit's key, and a different set of limits is a different key.
 */
export function subjectKey(prefix: string, s: Resolved, names: string): string {
  return s.tag === s.id ? `${prefix}:{${s.id}}:${names}` : `${prefix}:{${s.tag}}:${names}:${s.id}`;
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
 * Buckets of the once-seen filter (a power of two: 256 KiB, made after SEEN_FIRST_MISSES misses;
 * SEEN_BITS_FIRST before), and misses
 * per generation of it: a second sighting counts within 8k–16k misses, and a fresh id finds both
 * its buckets stamped in that window (a false positive) about 1 time in 100.
 */
const SEEN_BITS = 18;
/**
 * The filter a limiter starts with (4 KiB): one that has seen fewer than SEEN_GENERATION distinct
 * ids never needs more (an HTTP route's or a policy's limiter often); the full one is made after
 * SEEN_FIRST_MISSES misses. The small one's false positives only cache an id a call early.
 */
const SEEN_BITS_FIRST = 12;
/** Misses the first filter takes before the full one (at most ~22% of its buckets stamped: false positives ~5%). */
const SEEN_FIRST_MISSES = 512;
const SEEN_GENERATION = 1 << 13;
const HIT_BIAS_MAX = 64;
/** Buckets of the cached ids' table (64 KiB; at most 10 000 ids cached: 1 in 7 pinned at most). */
const PINNED_BUCKETS = 1 << 16;

/**
 * Subjects to keys (and the variant of limit values their scope values choose), for one
 * limiter. Plain ids repeat, so their targets are built once (a bounded cache of immutable
 * values); object subjects are resolved per call.
 *
 * An id enters the cache on its second sighting (within the last 8k–16k ids missed): a stream
 * of ids seen once each (one per client IP, say) would otherwise fill the cache with targets
 * that never come back, each kept long enough to survive into the old generation and cost the
 * garbage collector, and would clear it every 10 000 ids. The once-seen filter is a table of
 * generation stamps (1..255, cycling) per bucket, two buckets per id from a hash of it; a false
 * positive (other ids in both buckets, or stamps 255 generations old) only caches an id a call
 * early. What a
 * target is never depends on whether it was cached.
 */
export class Subjects {
  private readonly byId = new Map<string, Target>();
  /** Per hash bucket, the generation an id of it was last missed in (0: none). */
  private seen: Uint8Array | null = null;
  /** log2 of seen's length. */
  private seenBits = SEEN_BITS_FIRST;
  /** Per hash bucket (another table size), 1 if an id of it may be cached: 0 rules the cache out. */
  private pinned: Uint8Array | null = null;
  /** Recent plain ids found cached (+1) or not (−1), within ±HIT_BIAS_MAX: see plainTarget. */
  private hitBias = 0;
  private generation = 1;
  private missesLeft = SEEN_FIRST_MISSES;

  constructor(
    private readonly prefix: string,
    private readonly plans: readonly LimitPlan[],
    private readonly blocks: boolean,
    private readonly cluster: boolean,
    private readonly choose: (s: Resolved) => Variant,
    /** Layout 'subject' with several limits: the names joined, which key the subject's one key (null: a key per limit). */
    private readonly subjectNames: string | null = null,
  ) {}

  resolve(subject: Subject): Target {
    if (typeof subject !== 'string') return this.build(subject);
    const t = this.byId.get(subject);
    return t !== undefined ? t : this.miss(subject);
  }

  /** An id not in the cache: its target, cached if the id was missed recently (see the class). */
  private miss(id: string): Target {
    const t = this.build(id);
    const h = idHash(id);
    if (this.secondSighting(h)) this.keep(id, t, h);
    return t;
  }

  /**
   * The in-memory fast path's resolve of a plain id: its cached target; else, on its second
   * sighting (see the class), its target built and cached; else undefined (a first sighting: the
   * caller takes plainKey, and no target is built). While most ids are found in the cache
   * (`hitBias` > 0) the cache is asked first; while most are not, only when the id's bucket in
   * `pinned` says it may hold it, so an id seen once costs no lookup in it. Either order gives the
   * same answer.
   */
  plainTarget(id: string): Target | undefined {
    if (this.hitBias > 0) {
      const t = this.byId.get(id);
      if (t !== undefined) {
        if (this.hitBias < HIT_BIAS_MAX) this.hitBias++;
        return t;
      }
      this.hitBias--;
      return this.firstSeen(id, idHash(id));
    }
    const h = idHash(id);
    // Made here, not in keep: only this path reads it (ids cached before it was made are rebuilt once).
    const pinned = (this.pinned ??= new Uint8Array(PINNED_BUCKETS));
    if (pinned[h & (PINNED_BUCKETS - 1)] !== 0) {
      const t = this.byId.get(id);
      if (t !== undefined) {
        this.hitBias++;
        return t;
      }
    }
    if (this.hitBias > -HIT_BIAS_MAX) this.hitBias--;
    return this.firstSeen(id, h);
  }

  /** plainTarget of an id not cached (`h`: idHash(id)). */
  private firstSeen(id: string, h: number): Target | undefined {
    if (!this.secondSighting(h)) return undefined;
    const t = this.build(id);
    this.keep(id, t, h);
    return t;
  }

  /**
   * The one key of a plain id on a limiter whose one limit is keyed by the id (no scope, no
   * block key): build(id).keys[0], with the same checks, building nothing else.
   */
  plainKey(id: string): string {
    part(id, 'id');
    return idKey(this.prefix, id, this.plans[0]!.name);
  }

  /** Caches `id`'s target (`h`: idHash(id)), its bucket pinned. */
  private keep(id: string, t: Target, h: number): void {
    const pinned = this.pinned;
    if (this.byId.size >= 10_000) {
      this.byId.clear();
      pinned?.fill(0);
    }
    this.byId.set(id, t);
    if (pinned !== null) pinned[h & (PINNED_BUCKETS - 1)] = 1;
  }

  /** Was the id of hash `h` (not cached) missed recently? If not, it is now (its bucket stamped). */
  private secondSighting(h: number): boolean {
    const bits = this.seenBits;
    const seen = (this.seen ??= new Uint8Array(1 << bits));
    // Two buckets per id (from the low and the high bits of its hash): both must be stamped.
    const b1 = h & ((1 << bits) - 1);
    const b2 = Math.imul(h, 0x9e3779b1) >>> (32 - bits);
    const gen = this.generation;
    const prev = gen === 1 ? 255 : gen - 1;
    const l1 = seen[b1]!;
    const l2 = seen[b2]!;
    // This generation or the one before (generations cycle 1..255; 0 is never stamped).
    if ((l1 === gen || l1 === prev) && (l2 === gen || l2 === prev)) return true;
    seen[b1] = gen;
    seen[b2] = gen;
    if (--this.missesLeft === 0) {
      this.missesLeft = SEEN_GENERATION;
      this.generation = gen === 255 ? 1 : gen + 1;
      if (bits !== SEEN_BITS) {
        // Past the first filter's misses: the full filter (its stamps start over).
        this.seenBits = SEEN_BITS;
        this.seen = null;
      }
    }
    return false;
  }

  /** The penalty-box key of a resolved subject. */
  blockKey(t: Target): string {
    return blockKey(this.prefix, t.s);
  }

  private build(subject: Subject): Target {
    // A plain id's target is cached by the caller (byId): its resolved form needs no cache of its own.
    const s = typeof subject === 'string' ? plainSubject(subject) : resolveSubject(subject);
    const keys: string[] = [];
    if (this.subjectNames !== null) keys.push(subjectKey(this.prefix, s, this.subjectNames));
    else for (const p of this.plans) keys.push(limitKey(this.prefix, s, p.name, p.scope));
    if (this.blocks) keys.push(blockKey(this.prefix, s));
    const variant = this.choose(s);
    // The values are part of what local caches hold per identity (the scope choosing them need not be in the keys).
    const keysIdent = keys.length === 1 ? keys[0]! : JSON.stringify(keys);
    const ident = variant.id === '' ? keysIdent : JSON.stringify([...keys, variant.id]);
    return { s, keys, ident, keysIdent, slot: this.cluster ? slotOf(s) : -1, variant, twinHandle: undefined };
  }
}

/**
 * A 32-bit hash of an id (FNV-1a over its UTF-16 units; of a long id, its first and last 32
 * units and its length): only for the once-seen filter, where a collision costs nothing.
 */
function idHash(id: string): number {
  const n = id.length;
  let h = 0x811c9dc5 ^ n;
  if (n <= 64) {
    for (let i = 0; i < n; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  } else {
    for (let i = 0; i < 32; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
    for (let i = n - 32; i < n; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  }
  return (h ^ (h >>> 16)) >>> 0;
}
