import { createHash, randomBytes } from 'node:crypto';
import * as b from '../../generated/index.js';
import { InvalidArgumentError } from '../errors.js';
import { enumArg, intArg, sameSlot, type ScriptDef } from '../runtime/index.js';
import type { ArgValues } from '../twin/args.js';
import { ownKeys } from '../twin/tiers.js';
import type { LimitPlan } from './plan.js';

/**
 * Reservations on the client side (scripts-lua/reserve.lua, settle.lua): the handle a caller
 * keeps between reserve and commit / cancel, the calls both scripts are sent, and their replies.
 *
 * A handle is a string any process can settle: `rsv1.<rid>.<keys>.<check>` — rid is 128 random
 * bits (hex), keys the reservation's state keys (base64url of their JSON array, in the order they
 * were reserved), check the first 64 bits of SHA-256 over the rest (base64url). The check is not a
 * secret: it catches a handle cut short, mangled or edited by hand before any round trip, and the
 * script catches the rest (a record made for other keys is a mismatch; no record is unknown).
 * The record key is derived from the keys: `${prefix}:{${tag}}:!rsv:${rid}`, in their hash slot.
 */

const VERSION = 'rsv1';
const HANDLE = /^rsv1\.([0-9a-f]{32})\.([A-Za-z0-9_-]{2,65536})\.([A-Za-z0-9_-]{11})$/;
/** The longest a reservation may stay unsettled (reserve's ttl_ms range). */
export const MAX_RESERVATION_TTL_MS = b.reserveScript.args.find((a) => a.name === 'ttl_ms')!.max!;

export type SettleStatus = 'committed' | 'cancelled' | 'already-settled' | 'unknown' | 'mismatch';
/** settle's status codes, as its header states them. */
const STATUS: readonly SettleStatus[] = ['unknown', 'committed', 'cancelled', 'already-settled', 'mismatch'];

export interface Reservation {
  readonly rid: string;
  /** The state keys, in the order reserve took them (plan order, then the block key). */
  readonly keys: readonly string[];
  /** `${prefix}:{${tag}}:!rsv:${rid}`. */
  readonly recordKey: string;
}

/** A settle that found no reservation to settle: the caller's handle, never Redis' fault. */
export class ReservationError extends InvalidArgumentError {
  constructor(
    readonly status: 'unknown' | 'mismatch',
    readonly handle: string,
  ) {
    super(
      'settle',
      'handle',
      status === 'unknown'
        ? 'no live reservation for this handle: never made, expired (it counted at its estimate), or made on the other side of a failover'
        : 'this handle was not made for these keys (another subject, another limiter, or edited)',
    );
  }
}

function check(rest: string): string {
  return createHash('sha256').update(rest).digest().subarray(0, 8).toString('base64url');
}

function refuse(detail: string): never {
  throw new InvalidArgumentError('settle', 'handle', detail);
}

/** `${prefix}:{${tag}}` of a key the limiter built (every key of one subject shares it). */
function tagged(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open < 1 ? -1 : key.indexOf('}', open + 2);
  return close < 0 || key[open - 1] !== ':' ? undefined : key.slice(0, close + 1);
}

function reservation(rid: string, keys: readonly string[]): Reservation {
  const base = tagged(keys[0]!);
  if (base === undefined) refuse(`key ${JSON.stringify(keys[0]!.slice(0, 80))} has no {hash tag}`);
  for (const k of keys) if (tagged(k) !== base) refuse('the keys of a handle must share one prefix and {hash tag}');
  return { rid, keys, recordKey: `${base}:!rsv:${rid}` };
}

/** A new reservation on these state keys (all of one subject): a fresh random id. */
export function newReservation(keys: readonly string[]): Reservation {
  if (keys.length === 0) throw new InvalidArgumentError('reserve', 'keys', 'a reservation needs at least one key');
  return reservation(randomBytes(16).toString('hex'), keys);
}

export function encodeHandle(r: Reservation): string {
  const rest = `${VERSION}.${r.rid}.${Buffer.from(JSON.stringify(r.keys)).toString('base64url')}`;
  return `${rest}.${check(rest)}`;
}

/** The reservation a handle names; InvalidArgumentError for anything malformed or edited. */
export function parseHandle(handle: unknown): Reservation {
  if (typeof handle !== 'string') refuse(`a reservation handle is a string, got ${typeof handle}`);
  const m = HANDLE.exec(handle);
  if (!m) refuse(`not a reservation handle (${VERSION}.<rid>.<keys>.<check>): ${JSON.stringify(handle.slice(0, 40))}`);
  if (check(handle.slice(0, handle.lastIndexOf('.'))) !== m[3]) refuse('the handle was altered (its check does not match)');
  let keys: unknown;
  try {
    keys = JSON.parse(Buffer.from(m[2]!, 'base64url').toString('utf8'));
  } catch {
    return refuse('the handle does not hold its keys');
  }
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'string' && k.length > 0)) refuse('the handle does not hold its keys');
  return reservation(m[1]!, keys as string[]);
}

/** A script call: what the limiter sends through its one Redis path. */
export interface ScriptCall {
  def: ScriptDef;
  keys: string[];
  argv: string[];
}

/** Limits a reservation can settle: every algorithm that can give units back. */
const RESERVABLE = new Set(b.reserveScript.each!.args.find((a) => a.name === 'algo')!.values!.filter((v) => v !== 'block'));

/** Refuses, once at construction, a limiter whose limits cannot be reserved. */
export function checkReservable(plans: readonly LimitPlan[]): void {
  for (const p of plans) {
    if (!RESERVABLE.has(p.algo)) {
      throw new InvalidArgumentError('reserve', 'limits', `limit ${p.name} uses ${p.algo}, which cannot give units back: reserve works with ${[...RESERVABLE].join(', ')}`);
    }
  }
}

/**
 * The priority class of a reservation, per limit in plan order as share_ppm strings ('' keeps
 * nothing back: the script's default), checked against reserve's share_ppm range.
 */
function checkShares(plans: readonly LimitPlan[], shares: readonly string[] | undefined): readonly string[] | undefined {
  if (shares === undefined) return undefined;
  if (shares.length !== plans.length) throw new InvalidArgumentError('reserve', 'priority', `one share per limit (${plans.length}), got ${shares.length}`);
  const spec = b.reserveScript.each!.args.find((a) => a.name === 'share_ppm')!;
  return shares.map((s, i) => (s === '' ? '' : intArg('reserve', spec, Number(s), `priority.${plans[i]!.name}`)));
}

/**
 * reserve v3's tz_rules: one entry per group (plan order, then the block key), a quota limit's
 * current rules (LimitPlan.zone) or '' — and '' in all when no limit has a zone (nothing to split).
 */
export function reserveTzRules(plans: readonly LimitPlan[], blocks: boolean): string {
  if (!plans.some((p) => p.zone !== null)) return '';
  const entries = plans.map((p) => p.zone?.rules() ?? '');
  if (blocks) entries.push('');
  return entries.join('|');
}

/** now_ms as the limiter sends it: its clock's reading with `sendClock` (the plans share one), else '' (Redis TIME). */
export function reserveNowMs(plans: readonly LimitPlan[]): string {
  const now = plans[0]?.consume.clock.now;
  return now ? String(Math.floor(now())) : '';
}

/**
 * reserve on Redis for one subject: `stateKeys` in plan order then the block key (`blocks`),
 * `costs` the estimate per limit (in plan order), `shares` the call's priority class (share_ppm
 * per limit in plan order, '' for the whole capacity; undefined: no class). The handle is known
 * before the call, so a retry of the same call (same handle) is the same reservation.
 */
export function reserveCall(
  plans: readonly LimitPlan[],
  blocks: boolean,
  stateKeys: readonly string[],
  costs: readonly number[],
  ttlMs: number,
  shares?: readonly string[],
  r: Reservation = newReservation(stateKeys),
  tiers: { readonly specs: string; readonly adopt: string } | null = null,
): ScriptCall & { handle: string; reservation: Reservation } {
  checkReservable(plans);
  if (tiers !== null) return tiersReserveCall(plans, stateKeys, costs, ttlMs, shares, r, tiers.specs, tiers.adopt);
  const def = b.reserveScript;
  const group = def.each!.args;
  const costSpec = group.find((a) => a.name === 'cost')!;
  if (costs.length !== plans.length) throw new InvalidArgumentError('reserve', 'cost', `one estimate per limit (${plans.length}), got ${costs.length}`);
  const share = checkShares(plans, shares);
  // ttl_ms, now_ms, tz_rules (v3), then the groups.
  const argv = [intArg(def.name, def.args[0]!, ttlMs, 'ttlMs'), reserveNowMs(plans), reserveTzRules(plans, blocks)];
  plans.forEach((p, i) => {
    const it = p.item;
    argv.push(it.algo!, it.limit!, it.period_ms!, intArg(def.name, costSpec, costs[i]!, `cost.${p.name}`), it.burst!, it.offset_ms!, it.unit!, share?.[i] ?? '');
  });
  if (blocks) argv.push('block', '', '', '', '', '', '', '');
  const keys = [r.recordKey, ...stateKeys];
  sameSlot(def.name, keys);
  return { def, keys, argv, handle: encodeHandle(r), reservation: r };
}

/**
 * Layout 'subject': tiers_reserve on the subject's one key (ttl_ms, count, specs, now_ms,
 * tz_rules, adopt, then cost and share_ppm per limit); the record and handle as reserve's.
 */
function tiersReserveCall(plans: readonly LimitPlan[], stateKeys: readonly string[], costs: readonly number[], ttlMs: number, shares: readonly string[] | undefined, r: Reservation, specs: string, adopt: string): ScriptCall & { handle: string; reservation: Reservation } {
  const def = b.tiersReserveScript;
  const costSpec = def.each!.args.find((a) => a.name === 'cost')!;
  if (costs.length !== plans.length) throw new InvalidArgumentError('reserve', 'cost', `one estimate per limit (${plans.length}), got ${costs.length}`);
  const share = checkShares(plans, shares);
  const argv = [intArg(def.name, def.args[0]!, ttlMs, 'ttlMs'), String(plans.length), specs, reserveNowMs(plans), reserveTzRules(plans, false), adopt];
  plans.forEach((p, i) => argv.push(intArg(def.name, costSpec, costs[i]!, `cost.${p.name}`), share?.[i] ?? ''));
  const keys = [r.recordKey, ...stateKeys];
  sameSlot(def.name, keys);
  return { def, keys, argv, handle: encodeHandle(r), reservation: r };
}

/** The same reserve on the twin (the fallback's sizes), as TwinClient.runParsed takes it; `tiers`: layout 'subject' (tiers_reserve's arguments). */
export function reserveOnTwin(plans: readonly LimitPlan[], blocks: boolean, costs: readonly number[], ttlMs: number, shares?: readonly string[], tiers: { readonly fallbackSpecs: string } | null = null): { args: ArgValues; items: ArgValues[] } {
  checkReservable(plans);
  intArg('reserve', b.reserveScript.args[0]!, ttlMs, 'ttlMs');
  const share = checkShares(plans, shares);
  if (tiers !== null) {
    const tz = reserveTzRules(plans, false);
    const groups: ArgValues[] = plans.map((_, i) => (share?.[i] ? { cost: costs[i]!, share_ppm: Number(share[i]) } : { cost: costs[i]! }));
    const args: ArgValues = { ttl_ms: ttlMs, count: plans.length, specs: tiers.fallbackSpecs };
    if (tz !== '') args.tz_rules = tz;
    return { args, items: groups };
  }
  // '' is the script's default (the whole capacity): no share_ppm at all, as the prologue leaves it.
  const items: ArgValues[] = plans.map((p, i) => (share?.[i] ? { ...p.fallbackItem, cost: costs[i]!, share_ppm: Number(share[i]) } : { ...p.fallbackItem, cost: costs[i]! }));
  if (blocks) items.push({ algo: 'block', limit: 1, cost: 1, offset_ms: 0 });
  const tz = reserveTzRules(plans, blocks);
  return { args: tz === '' ? { ttl_ms: ttlMs } : { ttl_ms: ttlMs, tz_rules: tz }, items };
}

export interface SettleOptions {
  /** An actual above its estimate: 'debt' (default) charges it, below empty if need be; 'cap' charges at most what is left. */
  overage?: 'debt' | 'cap';
  /** The keys the caller expects (the subject's, resolved by the limiter): a handle for other keys is refused before any round trip. */
  expectKeys?: readonly string[];
  /** now_ms to send ('' or undefined: Redis TIME); the limiter's clock with `sendClock`. */
  nowMs?: string;
  /** Layout 'subject': the limiter's number of limits, all in the handle's one key (tiers_settle). */
  tiersCount?: number;
  /** Layout 'subject': tiers_settle's adopt (the limit names as the key names them); a handle of the limits' own keys is settled on the subject's key by it. */
  tiersAdopt?: string;
}

/**
 * settle on Redis: `actuals` one per limit in plan order (a block key, if the handle has one,
 * gets 0); null for cancel. Everything is checked before the round trip.
 */
export function settleCall(handle: string, mode: 'commit' | 'cancel', actuals: readonly (number | undefined)[] | null, options: SettleOptions = {}): ScriptCall & { reservation: Reservation } {
  const r = parseHandle(handle);
  const tiers = options.tiersCount !== undefined;
  const def = tiers ? b.tiersSettleScript : b.settleScript;
  // Actuals per limit: one per key of the handle, or (tiers_settle) per limit of its one key.
  const n = tiers ? options.tiersCount! : r.keys.length;
  const keys = tiers ? [tiersSettleKey(r, handle, options)] : r.keys;
  if (!tiers && options.expectKeys && !sameKeys(options.expectKeys, r.keys)) throw new ReservationError('mismatch', handle);
  const argv = [enumArg(def.name, def.args[0]!, mode, 'mode'), enumArg(def.name, def.args[1]!, options.overage ?? 'debt', 'overage'), options.nowMs ?? ''];
  if (tiers) argv.push(options.tiersAdopt ?? '');
  const spec = def.each!.args[0]!;
  if (mode === 'commit') {
    if (!actuals) throw new InvalidArgumentError('settle', 'actual', 'commit needs the actual use of each limit');
    if (actuals.length > n) throw new InvalidArgumentError('settle', 'actual', `the handle has ${n} ${tiers ? 'limit' : 'key'}(s), got ${actuals.length} actuals`);
    // A limit with no actual keeps its estimate ('' : nothing to settle on it, e.g. RPM beside TPM).
    for (let i = 0; i < n; i++) argv.push(i < actuals.length && actuals[i] !== undefined ? intArg(def.name, spec, actuals[i]!, `actual[${i}]`) : '');
  } else for (let i = 0; i < n; i++) argv.push('0');
  return { def, keys: [r.recordKey, ...keys], argv, reservation: r };
}

const sameKeys = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((k, i) => k === b[i]);

/**
 * Layout 'subject': the subject's key tiers_settle settles a handle on. A handle of that layout
 * names it; a handle of a key per limit (reserve's, made before the upgrade) is settled there
 * when its keys are exactly that key's limits' own keys, in order (tiers_settle's adopt rule,
 * twin/tiers.ts ownKeys): the key is the first one's with its limit's name, right after the hash
 * tag's "}:", replaced by adopt. Any other handle (another subject, other limits, a block key) is
 * a mismatch, before any round trip.
 */
function tiersSettleKey(r: Reservation, handle: string, options: SettleOptions): string {
  const expected = options.expectKeys;
  if (expected && expected.length !== 1) throw new ReservationError('mismatch', handle);
  if (r.keys.length === 1) {
    if (expected && expected[0] !== r.keys[0]) throw new ReservationError('mismatch', handle);
    return r.keys[0]!;
  }
  const adopt = options.tiersAdopt;
  if (!adopt || r.keys.length !== options.tiersCount) throw new ReservationError('mismatch', handle);
  const names = adopt.split('+');
  const key = expected?.[0] ?? subjectOfOwnKey(r.keys[0]!, names[0]!, adopt);
  const own = key === undefined ? undefined : ownKeys(key, { seg: `}:${adopt}`, names });
  if (!own || !sameKeys(own, r.keys)) throw new ReservationError('mismatch', handle);
  return key!;
}

/** The subject's key whose first limit's own key is `key` (its `}:<name>` segment, ending at ':' or the key's end, replaced by adopt). */
function subjectOfOwnKey(key: string, name: string, adopt: string): string | undefined {
  const seg = `}:${name}`;
  for (let i = key.indexOf(seg); i >= 0; i = key.indexOf(seg, i + 1)) {
    const e = i + seg.length;
    if (e === key.length || key[e] === ':') return `${key.slice(0, i + 2)}${adopt}${key.slice(e)}`;
  }
  return undefined;
}

export interface SettleOutcome {
  status: SettleStatus;
  /** Per key of the handle, in order (names from the limiter's plans, 'block' past them): what is left after settling; -1 when nothing was settled. */
  limits: { name: string; remaining: number; resetAfterMs: number }[];
}

/** settle's reply. `names`: the limiter's limit names in plan order. */
export function decodeSettle(reply: readonly number[], names: readonly string[]): SettleOutcome {
  const status = STATUS[reply[0]!];
  if (status === undefined) throw new InvalidArgumentError('settle', 'reply', `unknown settle status ${reply[0]}`);
  const limits: SettleOutcome['limits'] = [];
  for (let i = 1; i + 1 < reply.length; i += 2) {
    limits.push({ name: names[(i - 1) / 2] ?? 'block', remaining: reply[i]!, resetAfterMs: reply[i + 1]! });
  }
  return { status, limits };
}

/** commit / cancel as the limiter answers them: unknown and mismatch are the caller's handle (ReservationError); already-settled is an answer. */
export function settledOrThrow(outcome: SettleOutcome, handle: string): SettleOutcome {
  if (outcome.status === 'unknown' || outcome.status === 'mismatch') throw new ReservationError(outcome.status, handle);
  return outcome;
}

/** The same settle on the twin, as TwinClient.runParsed takes it. */
export function settleOnTwin(call: ScriptCall): { args: ArgValues; items: ArgValues[] } {
  // tiers_settle's adopt (argv[3]) is not sent to the twin: its keys were never a key per limit.
  const fixed = call.def === b.tiersSettleScript ? 4 : 3;
  return { args: { mode: call.argv[0], overage: call.argv[1] }, items: call.argv.slice(fixed).map((a) => ({ actual: a === '' ? undefined : Number(a) })) };
}
