/**
 * The state each algorithm's Lua keeps in Redis, decoded from what GET, HGETALL or ZRANGE ...
 * WITHSCORES return for its key: one pure decoder per algorithm, typed, with every form some
 * released or current script version writes (scripts-lua/lib/algo_*.lua, lib/counter.lua):
 *
 *   gcra            v3 "<ms><num in six digits>" (an integer: ms >= 1, value <= 2^63 - 1) or
 *                   "ms:num" (v3 when num >= 1e6 or ms out of the integer's range; all of v2)
 *   token_bucket    v3 "-<ts_ms * 1000 + tokens>" (a negative integer, no fraction, at most 16
 *                   digits), v4 on the server clock "-<wd><fd><tokens><frac><ts_ms mod 10^e>"
 *                   (a negative integer of 19 digits, e = 17 - wd - fd: read at a time `nowMs`),
 *                   or "tokens,frac,ts_ms"; v2 a hash { tokens, frac, ts_ms }
 *   fixed_window    v3 count * 2^22 + window_start mod 2^22 (server clock) or "start:count" (v2)
 *   quota           "start:count" only
 *   sliding_window  v3 (cur * 2^16 + prev) * 2^21 + window_start mod 2^21 (server clock) or
 *                   "start:cur:prev" (v2)
 *   sliding_log     a sorted set: member "<cumulative, 16 digits>:<cost>", score the ms admitted
 *   concurrency     a sorted set: member the holder id, score the ms its lease ends
 *   block           "<until_ms>"
 *
 * Decoders are stricter than the Lua's reads: a spelling no version writes is refused with a
 * StateDecodeError (a TwinStateError: the twin's WRONGSTATE), even where Lua's tonumber would take
 * it (" 12", "1e3", "0x10", a leading zero, gcra digits of six or fewer). An absent key (GET's
 * null, HGETALL's {}, ZRANGE's []) decodes to undefined: no state, the subject is at full.
 *
 * An integer does not say which algorithm wrote it (gcra's, the windows' and block's are all
 * non-negative decimal integers; only token_bucket's is negative): decode a key with the
 * algorithm its limit names. The windows' packed forms keep the window start modulo a power of
 * two only (the tag); fixedWindowCount and slidingWindowCounts read them as the Lua does for a
 * given window, and toTwinValue turns any decoded state into the value the twin's store holds.
 */
import { ALGO_KIND, KIND_REDIS_TYPE, TwinStateError, type TwinValue } from './store.js';
import { TOKEN_BUCKET_CLOCK_SLACK_MS, TOKEN_BUCKET_MAX_PACKED_MS, TOKEN_BUCKET_RADIX } from './token-bucket.js';

export { TOKEN_BUCKET_CLOCK_SLACK_MS, TOKEN_BUCKET_MAX_PACKED_MS, TOKEN_BUCKET_RADIX };

/** A string value as GET returns it (a number from a client that parses integer replies); null: absent. */
export type RawValue = string | number | null | undefined;
/** A hash's fields as HGETALL returns them ({} for an absent key). */
export type RawHash = Record<string, string>;
/**
 * A sorted set as ZRANGE key 0 -1 WITHSCORES returns it: [member, score, member, score, ...]
 * (ioredis, RESP2), or [member, score] pairs (RESP3 clients).
 */
export type RawZset = readonly (string | number)[] | readonly (readonly [string, string | number])[];

export type AlgoName = 'gcra' | 'token_bucket' | 'fixed_window' | 'quota' | 'sliding_window' | 'sliding_log' | 'concurrency' | 'block';

/** A stored value that no version of the algorithm writes. */
export class StateDecodeError extends TwinStateError {
  constructor(
    readonly algo: AlgoName,
    readonly raw: unknown,
    reason: string,
  ) {
    super(`redlimit ${algo}: ${show(raw)} is not ${algo} state (${reason})`);
    this.name = 'StateDecodeError';
  }
}

function show(raw: unknown): string {
  const text = typeof raw === 'string' ? JSON.stringify(raw.length > 60 ? `${raw.slice(0, 60)}...` : raw) : JSON.stringify(raw);
  return text === undefined ? String(raw) : text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

// --- the bounds the Lua writes within ----------------------------------------------------------

/** gcra packs when 1 <= ms <= this: ms * 1e6 + 999999 <= 2^63 - 1 (RL_GCRA_MAX_PACKED_MS). */
export const GCRA_MAX_PACKED_MS = 9_223_372_036_853;
/** num < limit <= 1e9. */
const GCRA_MAX_NUM = 999_999_999;
/** fixed_window's packed form: count * 2^22 + start mod 2^22, 1 <= count < 2^31. */
export const FIXED_WINDOW_TAGS = 4_194_304;
const FIXED_WINDOW_MAX_COUNT = 2_147_483_647;
/** sliding_window's packed form: (cur * 2^16 + prev) * 2^21 + start mod 2^21, cur and prev < 2^16. */
export const SLIDING_WINDOW_TAGS = 2_097_152;
export const SLIDING_WINDOW_COUNTS = 65_536;

/** A decimal integer as Lua's %d writes it: no sign unless negative, no leading zero, never "-0". */
const UINT = '(?:0|[1-9]\\d*)';
const INT = `(?:0|-?[1-9]\\d*)`;
const UINT_RE = new RegExp(`^${UINT}$`);
const INT_RE = new RegExp(`^${INT}$`);

/** The value as text: a number must be an exact integer (a client may parse integer replies). */
function text(algo: AlgoName, raw: string | number): string {
  if (typeof raw === 'number') {
    if (!Number.isSafeInteger(raw)) throw new StateDecodeError(algo, raw, 'a number that is not an exact integer: pass the string GET returns');
    return String(raw);
  }
  if (typeof raw !== 'string') throw new StateDecodeError(algo, raw, `a ${raw === null ? 'null' : typeof raw}, not a string value`);
  return raw;
}

/** An exact integer (a decimal safe integer), or the error. */
function int(algo: AlgoName, raw: unknown, digits: string, what: string): number {
  const n = Number(digits);
  if (!Number.isSafeInteger(n)) throw new StateDecodeError(algo, raw, `${what} ${digits} is past 2^53`);
  return n;
}

function isAbsent(raw: unknown): raw is null | undefined {
  return raw === null || raw === undefined;
}

// --- gcra ---------------------------------------------------------------------------------------

/** gcra: the theoretical arrival time, tatMs + tatNum / limit ms (0 <= tatNum < limit). */
export interface GcraState {
  algo: 'gcra';
  /** packed: v3's integer, ms followed by num in six digits; text: "ms:num" (v2, and v3 past the integer's range). */
  form: 'packed' | 'text';
  tatMs: number;
  tatNum: number;
}

const GCRA_PACKED = /^[1-9]\d{6,18}$/;
const GCRA_TEXT = new RegExp(`^(${UINT}):(${UINT})$`);

export function decodeGcra(raw: string | number): GcraState;
export function decodeGcra(raw: RawValue): GcraState | undefined;
export function decodeGcra(raw: RawValue): GcraState | undefined {
  if (isAbsent(raw)) return undefined;
  const s = text('gcra', raw);
  if (GCRA_PACKED.test(s)) {
    // Sliced as a string: up to 19 digits, past a double's exact range.
    const tatMs = Number(s.slice(0, -6));
    if (tatMs > GCRA_MAX_PACKED_MS) throw new StateDecodeError('gcra', raw, `the integer form holds ms up to ${GCRA_MAX_PACKED_MS}, got ${s.slice(0, -6)}`);
    return { algo: 'gcra', form: 'packed', tatMs, tatNum: Number(s.slice(-6)) };
  }
  const m = GCRA_TEXT.exec(s);
  if (m) {
    const tatNum = int('gcra', raw, m[2]!, 'num');
    if (tatNum > GCRA_MAX_NUM) throw new StateDecodeError('gcra', raw, `num is below the limit (at most 1e9), got ${m[2]}`);
    return { algo: 'gcra', form: 'text', tatMs: int('gcra', raw, m[1]!, 'ms'), tatNum };
  }
  if (UINT_RE.test(s)) throw new StateDecodeError('gcra', raw, 'the integer form is ms (>= 1) followed by six digits of num: at least 7 digits, at most 2^63 - 1');
  throw new StateDecodeError('gcra', raw, 'expected ms followed by six digits of num, or "ms:num"');
}

// --- token_bucket -------------------------------------------------------------------------------

/** token_bucket: tokens + frac / periodMs units, as counted at tsMs (tokens < 0: debt). */
export interface TokenBucketState {
  algo: 'token_bucket';
  /**
   * packed: v3's negative integer (frac 0); compact: v4's 19-digit negative integer (server clock);
   * text: "tokens,frac,ts_ms"; hash: v2's { tokens, frac, ts_ms } (read until the next write replaces it).
   */
  form: 'packed' | 'compact' | 'text' | 'hash';
  tokens: number;
  frac: number;
  /** compact: the time with the stored remainder that the Lua finds when it reads the key at nowMs. */
  tsMs: number;
  /** compact only: ts_ms mod 10^tsDigits, as stored. */
  tsMod?: number;
  tsDigits?: number;
}

const TB_PACKED = /^-[1-9]\d*$/;
/** "-", wd (1..8), fd (1..9), then 17 digits: tokens (wd), frac (fd), ts_ms mod 10^e (e = 17 - wd - fd). */
const TB_COMPACT = /^-([1-8])([1-9])(\d{17})$/;
/** A compact state is written only when 10^e > reset + 2 * slack, reset >= 1: e >= 6. */
const TB_COMPACT_MIN_TS_DIGITS = 6;
const TB_TEXT = new RegExp(`^(${INT}),(${UINT}),(${UINT})$`);
const TB_HASH_FIELDS = ['tokens', 'frac', 'ts_ms'] as const;

/**
 * A token bucket from GET's string (v3, v4) or HGETALL's fields (v2's hash). The compact form
 * keeps ts_ms mod 10^e only: it is read at `nowMs` (the server's time, as the Lua reads it; this
 * machine's clock when not given), which finds the exact ts_ms while nowMs - ts_ms is within
 * [-TOKEN_BUCKET_CLOCK_SLACK_MS, 10^e - TOKEN_BUCKET_CLOCK_SLACK_MS), as it is while the key lives.
 */
export function decodeTokenBucket(raw: string | number | RawHash, nowMs?: number): TokenBucketState;
export function decodeTokenBucket(raw: RawValue | RawHash, nowMs?: number): TokenBucketState | undefined;
export function decodeTokenBucket(raw: RawValue | RawHash, nowMs?: number): TokenBucketState | undefined {
  if (isAbsent(raw)) return undefined;
  if (typeof raw === 'object') return decodeTokenBucketHash(raw);
  // A 19-digit integer must come as its string: as a number it has lost digits (text() refuses it).
  const s = text('token_bucket', raw);
  if (s.length === 20 && TB_PACKED.test(s)) return decodeTokenBucketCompact(raw, s, nowMs ?? Date.now());
  if (TB_PACKED.test(s)) {
    const n = int('token_bucket', raw, s.slice(1), 'the integer');
    const tokens = n % TOKEN_BUCKET_RADIX;
    const tsMs = (n - tokens) / TOKEN_BUCKET_RADIX;
    if (tsMs > TOKEN_BUCKET_MAX_PACKED_MS) throw new StateDecodeError('token_bucket', raw, `the integer form holds ts_ms up to ${TOKEN_BUCKET_MAX_PACKED_MS}`);
    return { algo: 'token_bucket', form: 'packed', tokens, frac: 0, tsMs };
  }
  const m = TB_TEXT.exec(s);
  if (m) {
    return {
      algo: 'token_bucket',
      form: 'text',
      tokens: int('token_bucket', raw, m[1]!, 'tokens'),
      frac: int('token_bucket', raw, m[2]!, 'frac'),
      tsMs: int('token_bucket', raw, m[3]!, 'ts_ms'),
    };
  }
  if (UINT_RE.test(s)) throw new StateDecodeError('token_bucket', raw, "a non-negative integer is another algorithm's state (gcra, a window, a block): a token bucket's integer is negative");
  throw new StateDecodeError('token_bucket', raw, 'expected -(ts_ms * 1000 + tokens), the 19-digit compact form, or "tokens,frac,ts_ms"');
}

/** v4's compact form read at nowMs (see decodeTokenBucket). */
function decodeTokenBucketCompact(raw: string | number, s: string, nowMs: number): TokenBucketState {
  const m = TB_COMPACT.exec(s);
  if (!m) throw new StateDecodeError('token_bucket', raw, 'a 19-digit negative integer is the compact form: "-", the digit counts of tokens (1..8) and frac (1..9), then 17 digits');
  const wd = Number(m[1]);
  const fd = Number(m[2]);
  const e = 17 - wd - fd;
  if (e < TB_COMPACT_MIN_TS_DIGITS) throw new StateDecodeError('token_bucket', raw, `the compact form keeps at least ${TB_COMPACT_MIN_TS_DIGITS} digits of ts_ms, got ${e}`);
  const digits = m[3]!;
  const tokens = digits.slice(0, wd);
  const frac = digits.slice(wd, wd + fd);
  if (!UINT_RE.test(tokens) || !UINT_RE.test(frac)) throw new StateDecodeError('token_bucket', raw, 'tokens and frac are written without leading zeros');
  if (!Number.isSafeInteger(nowMs)) throw new TypeError(`nowMs must be an integer ms, got ${nowMs}`);
  const tsMod = Number(digits.slice(wd + fd));
  // As rl_token_bucket_unpack: the age nowMs - ts_ms taken in [-slack, 10^e - slack).
  const age = mod(nowMs - tsMod + TOKEN_BUCKET_CLOCK_SLACK_MS, Number(`1e${e}`)) - TOKEN_BUCKET_CLOCK_SLACK_MS;
  return { algo: 'token_bucket', form: 'compact', tokens: Number(tokens), frac: Number(frac), tsMs: nowMs - age, tsMod, tsDigits: e };
}

/** v2's hash { tokens, frac, ts_ms } (HGETALL's fields; {} is an absent key). */
export function decodeTokenBucketHash(fields: RawHash): TokenBucketState | undefined {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw new StateDecodeError('token_bucket', fields, 'a hash is a field -> value object, as HGETALL returns it');
  const names = Object.keys(fields);
  if (names.length === 0) return undefined;
  const extra = names.filter((n) => !(TB_HASH_FIELDS as readonly string[]).includes(n));
  if (extra.length > 0) throw new StateDecodeError('token_bucket', fields, `v2's hash has the fields tokens, frac and ts_ms only, got ${extra.join(', ')}`);
  const field = (name: (typeof TB_HASH_FIELDS)[number], re: RegExp): number => {
    const v = fields[name];
    if (v === undefined) throw new StateDecodeError('token_bucket', fields, `v2's hash has a ${name} field`);
    if (typeof v !== 'string' || !re.test(v)) throw new StateDecodeError('token_bucket', fields, `${name} must be a decimal integer, got ${show(v)}`);
    return int('token_bucket', fields, v, name);
  };
  return { algo: 'token_bucket', form: 'hash', tokens: field('tokens', INT_RE), frac: field('frac', UINT_RE), tsMs: field('ts_ms', UINT_RE) };
}

// --- counters: fixed_window and quota -----------------------------------------------------------

/**
 * A count for the window starting at `start` ("start:count": quota, v2, a caller's clock). The
 * start may be negative: a window or calendar period that began before the epoch (a caller's
 * clock below offset_ms, or near 0 in a zone east of UTC) is written so, and read back by
 * lib/counter.lua and the twin alike.
 */
export interface CounterText<A extends 'fixed_window' | 'quota'> {
  algo: A;
  form: 'text';
  start: number;
  count: number;
}
/** fixed_window v3 on the server clock: the count and the window's start mod 2^22 (its tag). */
export interface FixedWindowPacked {
  algo: 'fixed_window';
  form: 'packed';
  count: number;
  startTag: number;
}
export type FixedWindowState = FixedWindowPacked | CounterText<'fixed_window'>;
export type QuotaState = CounterText<'quota'>;

const COUNTER_TEXT = new RegExp(`^(${INT}):(${UINT})$`);

function counterText<A extends 'fixed_window' | 'quota'>(algo: A, raw: string | number, s: string): CounterText<A> | undefined {
  const m = COUNTER_TEXT.exec(s);
  if (!m) return undefined;
  const count = int(algo, raw, m[2]!, 'count');
  if (count === 0) throw new StateDecodeError(algo, raw, 'a count of 0 is never stored (the key is deleted)');
  return { algo, form: 'text', start: int(algo, raw, m[1]!, 'start'), count };
}

export function decodeFixedWindow(raw: string | number): FixedWindowState;
export function decodeFixedWindow(raw: RawValue): FixedWindowState | undefined;
export function decodeFixedWindow(raw: RawValue): FixedWindowState | undefined {
  if (isAbsent(raw)) return undefined;
  const s = text('fixed_window', raw);
  if (UINT_RE.test(s)) {
    const n = int('fixed_window', raw, s, 'the integer');
    const startTag = n % FIXED_WINDOW_TAGS;
    const count = (n - startTag) / FIXED_WINDOW_TAGS;
    if (count === 0) throw new StateDecodeError('fixed_window', raw, 'the integer form holds a count of at least 1 (count * 2^22 + tag)');
    if (count > FIXED_WINDOW_MAX_COUNT) throw new StateDecodeError('fixed_window', raw, 'the integer form holds a count below 2^31');
    return { algo: 'fixed_window', form: 'packed', count, startTag };
  }
  const t = counterText('fixed_window', raw, s);
  if (t) return t;
  throw new StateDecodeError('fixed_window', raw, 'expected count * 2^22 + window start mod 2^22, or "start:count"');
}

export function decodeQuota(raw: string | number): QuotaState;
export function decodeQuota(raw: RawValue): QuotaState | undefined;
export function decodeQuota(raw: RawValue): QuotaState | undefined {
  if (isAbsent(raw)) return undefined;
  const s = text('quota', raw);
  const t = counterText('quota', raw, s);
  if (t) return t;
  if (UINT_RE.test(s)) throw new StateDecodeError('quota', raw, 'a quota is never stored as an integer (that is a fixed window, gcra or a block)');
  throw new StateDecodeError('quota', raw, 'expected "period_start:count"');
}

/** The count rl_counter_read reads for the window starting at `start`: 0 for another window's state or none. */
export function fixedWindowCount(state: FixedWindowState | undefined, start: number): number {
  if (!state) return 0;
  if (state.form === 'packed') return state.startTag === mod(start, FIXED_WINDOW_TAGS) ? state.count : 0;
  return state.start === start ? state.count : 0;
}

/** The count a quota reads for the calendar period starting at `start`. */
export function quotaCount(state: QuotaState | undefined, start: number): number {
  return state && state.start === start ? state.count : 0;
}

// --- sliding_window -----------------------------------------------------------------------------

/** sliding_window v3 on the server clock: the counts and the window's start mod 2^21 (its tag). */
export interface SlidingWindowPacked {
  algo: 'sliding_window';
  form: 'packed';
  cur: number;
  prev: number;
  startTag: number;
}
/** "start:cur:prev" (v2, larger counts, a caller's clock). */
export interface SlidingWindowText {
  algo: 'sliding_window';
  form: 'text';
  start: number;
  cur: number;
  prev: number;
}
export type SlidingWindowState = SlidingWindowPacked | SlidingWindowText;

const SW_TEXT = new RegExp(`^(${UINT}):(${UINT}):(${UINT})$`);

export function decodeSlidingWindow(raw: string | number): SlidingWindowState;
export function decodeSlidingWindow(raw: RawValue): SlidingWindowState | undefined;
export function decodeSlidingWindow(raw: RawValue): SlidingWindowState | undefined {
  if (isAbsent(raw)) return undefined;
  const s = text('sliding_window', raw);
  if (UINT_RE.test(s)) {
    const n = int('sliding_window', raw, s, 'the integer');
    const startTag = n % SLIDING_WINDOW_TAGS;
    const pair = (n - startTag) / SLIDING_WINDOW_TAGS;
    const prev = pair % SLIDING_WINDOW_COUNTS;
    const cur = (pair - prev) / SLIDING_WINDOW_COUNTS;
    if (pair === 0) throw new StateDecodeError('sliding_window', raw, 'counts of 0 and 0 are never stored (the key is deleted)');
    if (cur >= SLIDING_WINDOW_COUNTS) throw new StateDecodeError('sliding_window', raw, 'the integer form holds counts below 2^16');
    return { algo: 'sliding_window', form: 'packed', cur, prev, startTag };
  }
  const m = SW_TEXT.exec(s);
  if (m) {
    const cur = int('sliding_window', raw, m[2]!, 'cur');
    const prev = int('sliding_window', raw, m[3]!, 'prev');
    if (cur === 0 && prev === 0) throw new StateDecodeError('sliding_window', raw, 'counts of 0 and 0 are never stored (the key is deleted)');
    return { algo: 'sliding_window', form: 'text', start: int('sliding_window', raw, m[1]!, 'start'), cur, prev };
  }
  throw new StateDecodeError('sliding_window', raw, 'expected (cur * 2^16 + prev) * 2^21 + window start mod 2^21, or "start:cur:prev"');
}

/** (cur, prev) as rl_sliding_window_read reads them for the window starting at `start`. */
export function slidingWindowCounts(state: SlidingWindowState | undefined, start: number, periodMs: number): [cur: number, prev: number] {
  if (!state) return [0, 0];
  if (state.form === 'packed') {
    if (state.startTag === mod(start, SLIDING_WINDOW_TAGS)) return [state.cur, state.prev];
    if (state.startTag === mod(start - periodMs, SLIDING_WINDOW_TAGS)) return [0, state.cur];
    return [0, 0];
  }
  if (state.start === start) return [state.cur, state.prev];
  if (state.start === start - periodMs) return [0, state.cur];
  return [0, 0];
}

// --- sorted sets: sliding_log and concurrency ---------------------------------------------------

/** [member, score] pairs from either reply shape of ZRANGE ... WITHSCORES. */
function zsetPairs(algo: AlgoName, raw: RawZset): [string, string][] {
  if (!Array.isArray(raw)) throw new StateDecodeError(algo, raw, 'a sorted set is ZRANGE ... WITHSCORES: [member, score, ...] or [member, score] pairs');
  const pairs: [string, string][] = [];
  if (raw.length > 0 && Array.isArray(raw[0])) {
    for (const p of raw as readonly (readonly [string, string | number])[]) {
      if (!Array.isArray(p) || p.length !== 2) throw new StateDecodeError(algo, raw, 'every entry must be a [member, score] pair');
      pairs.push([String(p[0]), String(p[1])]);
    }
    return pairs;
  }
  if (raw.length % 2 !== 0) throw new StateDecodeError(algo, raw, 'a flat WITHSCORES reply alternates member and score (an even length)');
  for (let i = 0; i < raw.length; i += 2) {
    const member = raw[i];
    const score = raw[i + 1];
    if (Array.isArray(member) || Array.isArray(score)) throw new StateDecodeError(algo, raw, 'mixed flat and paired entries');
    pairs.push([String(member), String(score)]);
  }
  return pairs;
}

/** A score the scripts write: an integer ms (ZADD's '%d'). */
function score(algo: AlgoName, raw: unknown, s: string): number {
  if (!INT_RE.test(s)) throw new StateDecodeError(algo, raw, `scores are integer ms, got ${show(s)}`);
  return int(algo, raw, s, 'a score');
}

/** sliding_log: one entry per admitted call, oldest first (the twin's `sliding_log` entries). */
export interface SlidingLogState {
  algo: 'sliding_log';
  form: 'zset';
  /** ts: when it was admitted (its score); cum: units admitted so far, this one's included; cost: its units. */
  entries: { ts: number; cum: number; cost: number }[];
}

const LOG_MEMBER = /^(\d{16,}):([1-9]\d*)$/;

export function decodeSlidingLog(raw: RawZset): SlidingLogState | undefined {
  const pairs = zsetPairs('sliding_log', raw);
  if (pairs.length === 0) return undefined;
  const entries = pairs.map(([member, sc]) => {
    const m = LOG_MEMBER.exec(member);
    if (!m) throw new StateDecodeError('sliding_log', raw, `members are "<cumulative units, 16 digits>:<cost>", got ${show(member)}`);
    if (m[1]!.length > 16 && m[1]![0] === '0') throw new StateDecodeError('sliding_log', raw, `a cumulative count past 16 digits has no leading zero, got ${show(member)}`);
    const cum = int('sliding_log', raw, m[1]!, 'the cumulative count');
    const cost = int('sliding_log', raw, m[2]!, 'the cost');
    if (cost > cum) throw new StateDecodeError('sliding_log', raw, `an entry's cost is part of its cumulative count, got ${show(member)}`);
    return { ts: score('sliding_log', raw, sc), cum, cost };
  });
  // ZRANGE's order: by score, then by member (the cumulative count, zero-padded).
  return { algo: 'sliding_log', form: 'zset', entries };
}

/** concurrency: each holder's lease and the ms it ends at (live while it is after now). */
export interface ConcurrencyState {
  algo: 'concurrency';
  form: 'zset';
  leases: Map<string, number>;
}

export function decodeConcurrency(raw: RawZset): ConcurrencyState | undefined {
  const pairs = zsetPairs('concurrency', raw);
  if (pairs.length === 0) return undefined;
  const leases = new Map<string, number>();
  for (const [holder, sc] of pairs) {
    if (holder === '') throw new StateDecodeError('concurrency', raw, 'a holder id is never empty');
    leases.set(holder, score('concurrency', raw, sc));
  }
  return { algo: 'concurrency', form: 'zset', leases };
}

// --- block --------------------------------------------------------------------------------------

/** block: the subject is denied until untilMs. */
export interface BlockState {
  algo: 'block';
  form: 'text';
  untilMs: number;
}

export function decodeBlock(raw: string | number): BlockState;
export function decodeBlock(raw: RawValue): BlockState | undefined;
export function decodeBlock(raw: RawValue): BlockState | undefined {
  if (isAbsent(raw)) return undefined;
  const s = text('block', raw);
  if (!UINT_RE.test(s) || s === '0') throw new StateDecodeError('block', raw, 'expected the ms the block ends at, a positive integer');
  return { algo: 'block', form: 'text', untilMs: int('block', raw, s, 'until_ms') };
}

// --- every algorithm ----------------------------------------------------------------------------

export type DecodedState = GcraState | TokenBucketState | FixedWindowState | QuotaState | SlidingWindowState | SlidingLogState | ConcurrencyState | BlockState;

/** Which Redis type each algorithm's state is (a token bucket's v2 hash aside). */
/** The Redis type each algorithm's state is stored as (the twin's own table). */
export const STATE_REDIS_TYPE = Object.fromEntries(Object.entries(ALGO_KIND).map(([algo, kind]) => [algo, KIND_REDIS_TYPE[kind]])) as Record<AlgoName, 'string' | 'zset'>;

export const ALGO_NAMES = Object.keys(STATE_REDIS_TYPE) as AlgoName[];

/**
 * `raw` decoded as `algo`'s state: a string value (GET), a hash (HGETALL: a token bucket's v2
 * state) or a sorted set (ZRANGE ... WITHSCORES). undefined: an absent key. `nowMs`: when it is
 * read (a token bucket's compact form; see decodeTokenBucket).
 */
export function decodeState(algo: AlgoName, raw: RawValue | RawHash | RawZset, nowMs?: number): DecodedState | undefined {
  const want = STATE_REDIS_TYPE[algo];
  if (want === undefined) throw new StateDecodeError(algo, raw, `unknown algorithm ${show(algo)}`);
  if (want === 'zset') {
    if (isAbsent(raw)) return undefined;
    if (!Array.isArray(raw)) throw new StateDecodeError(algo, raw, `${algo} state is a sorted set`);
    return algo === 'sliding_log' ? decodeSlidingLog(raw as RawZset) : decodeConcurrency(raw as RawZset);
  }
  if (Array.isArray(raw)) throw new StateDecodeError(algo, raw, `${algo} state is a string, not a sorted set`);
  if (typeof raw === 'object' && raw !== null) {
    if (algo !== 'token_bucket') throw new StateDecodeError(algo, raw, `${algo} state is a string, not a hash`);
    return decodeTokenBucketHash(raw as RawHash);
  }
  const value = raw as RawValue;
  switch (algo) {
    case 'gcra':
      return decodeGcra(value);
    case 'token_bucket':
      return decodeTokenBucket(value, nowMs);
    case 'fixed_window':
      return decodeFixedWindow(value);
    case 'quota':
      return decodeQuota(value);
    case 'sliding_window':
      return decodeSlidingWindow(value);
    default:
      return decodeBlock(value);
  }
}

/**
 * The value the twin's store holds for a decoded state. A window's packed form keeps only its
 * start's tag: `window` (the start of the window a call at that time is in, and the period)
 * names the window it is read in, and the result is what the Lua reads there (undefined when it
 * reads nothing: another window's state). Forms that carry their start need no window.
 */
export function toTwinValue(state: DecodedState, window?: { start: number; periodMs: number }): TwinValue | undefined {
  switch (state.algo) {
    case 'gcra':
      return { kind: 'gcra', tatMs: state.tatMs, tatNum: state.tatNum };
    case 'token_bucket':
      return { kind: 'token_bucket', tokens: state.tokens, frac: state.frac, tsMs: state.tsMs };
    case 'quota':
      return { kind: 'counter', start: state.start, count: state.count };
    case 'fixed_window': {
      if (state.form === 'text') return { kind: 'counter', start: state.start, count: state.count };
      if (!window) throw new TypeError('a packed fixed_window state needs the window it is read in');
      const count = fixedWindowCount(state, window.start);
      return count > 0 ? { kind: 'counter', start: window.start, count } : undefined;
    }
    case 'sliding_window': {
      if (state.form === 'text') return { kind: 'sliding_window', start: state.start, cur: state.cur, prev: state.prev };
      if (!window) throw new TypeError('a packed sliding_window state needs the window it is read in');
      if (state.startTag === mod(window.start, SLIDING_WINDOW_TAGS)) return { kind: 'sliding_window', start: window.start, cur: state.cur, prev: state.prev };
      if (state.startTag === mod(window.start - window.periodMs, SLIDING_WINDOW_TAGS)) return { kind: 'sliding_window', start: window.start - window.periodMs, cur: state.cur, prev: state.prev };
      return undefined;
    }
    case 'sliding_log':
      return { kind: 'sliding_log', entries: state.entries.map((e) => ({ ...e })) };
    case 'concurrency':
      return { kind: 'leases', leases: new Map(state.leases) };
    case 'block':
      return { kind: 'block', untilMs: state.untilMs };
  }
}

/** n mod m in [0, m) (Lua's %, for a start before the epoch). */
function mod(n: number, m: number): number {
  return ((n % m) + m) % m;
}
