import { callerError } from '../client/failure.js';
import { policyHistoryScript, policyReadScript, policySetScript } from '../../generated/index.js';
import { InvalidArgumentError, InvalidConfigError, ScriptError } from '../errors.js';
import { runScript, type RedisClientLike } from '../runtime/index.js';
import { checkPolicyName, encodePolicy, parseEntry, type CarryOver, type PolicyBody, type PolicyInput, type PolicyVersion } from './document.js';
import { PolicyKeys } from './keys.js';

export interface ChangeOptions {
  /** Who makes the change (recorded). Required. */
  author: string;
  /** Why (recorded). */
  reason?: string;
  /**
   * What the state of the limits this change sets does: `as-is` (default: the same keys, read
   * under the new values) or `reset` (those limits start fresh). `proportional` is refused.
   */
  carryOver?: CarryOver;
  /** Apply only if the global policy version is still this one (optimistic concurrency). */
  ifVersion?: number;
}

/** One limit's change between two versions. */
export interface LimitChange {
  name: string;
  change: 'added' | 'removed' | 'changed';
  from?: unknown;
  to?: unknown;
}

export interface PolicyDiff {
  name: string;
  from: number;
  to: number;
  limits: LimitChange[];
  /** Other fields that differ (scale, parent, remove, description). */
  fields: Array<{ field: string; from: unknown; to: unknown }>;
}

const HISTORY_MAX = 100;
const CONFLICT_RETRIES = 5;

function carryOverArg(c: CarryOver | undefined): 'as_is' | 'reset' | 'proportional' {
  if (c === undefined || c === 'as-is') return 'as_is';
  if (c === 'reset' || c === 'proportional') return c;
  throw new InvalidConfigError(`carryOver must be as-is, reset or proportional, got ${JSON.stringify(c)}`);
}

function author(o: ChangeOptions | undefined): string {
  if (!o || typeof o.author !== 'string' || o.author.length === 0 || Buffer.byteLength(o.author) > 200) {
    throw new InvalidConfigError('a policy change needs { author } (1 to 200 bytes), and may give a reason');
  }
  if (o.reason !== undefined && (typeof o.reason !== 'string' || Buffer.byteLength(o.reason) > 2000)) throw new InvalidConfigError('reason must be a string of at most 2000 bytes');
  return o.author;
}

/** A policy_set refusal as a typed error: BADARG is the caller's, CONFLICT means read again. */
function refused(err: unknown): never {
  const typed = err instanceof ScriptError && err.redisCode === 'BADARG' ? callerError(err, []) : err;
  if (typed instanceof InvalidArgumentError) throw new InvalidConfigError(typed.detail);
  throw err;
}

const isConflict = (err: unknown) => err instanceof ScriptError && err.redisCode === 'CONFLICT';

/**
 * The policy store: named policies in Redis under one hash tag, each change versioned (global
 * version, author, reason, time), a bounded history per policy, rollback as a new version.
 */
export class PolicyStore {
  readonly keys: PolicyKeys;
  /** Called with "<version> <name>" after each change this store made (its own cache need not wait for the announcement). */
  onChange: ((announcement: string) => void) | null = null;

  constructor(
    private readonly redis: RedisClientLike,
    prefix: string,
    private readonly historyMax = HISTORY_MAX,
  ) {
    this.keys = new PolicyKeys(prefix);
  }

  /** One consistent read: the global version, the server time and each key's value (null when absent). */
  async read(keys: readonly string[]): Promise<{ version: number; nowMs: number; values: Array<string | null> }> {
    // entries+ needs one key at least: a version-only read names the version again.
    const reply = (await runScript(this.redis, policyReadScript, [this.keys.version, ...(keys.length > 0 ? keys : [this.keys.version])], [])) as unknown[];
    const values = reply.slice(2, 2 + keys.length).map((v) => (v === '' || v === null || v === undefined ? null : String(v)));
    return { version: Number(reply[0]), nowMs: Number(reply[1]), values };
  }

  /** The current version of a policy, or null. */
  async get(name: string): Promise<PolicyVersion | null> {
    checkPolicyName(name);
    const { values } = await this.read([this.keys.doc(name)]);
    if (values[0] === null) return null;
    const v = strip(parseEntry(name, values[0]!));
    return v.op === 'remove' ? null : v;
  }

  /** The global policy version (0: nothing was ever changed). */
  async version(): Promise<number> {
    return (await this.read([])).version;
  }

  /** Names of the live policies, sorted. */
  async list(): Promise<string[]> {
    const reply = (await runScript(this.redis, policyHistoryScript, [this.keys.version, this.keys.names, this.keys.names], ['names', '1'])) as unknown[];
    return reply.slice(1).map(String);
  }

  /** A policy's versions, newest first (at most `limit`, default all kept). */
  async history(name: string, limit = this.historyMax): Promise<PolicyVersion[]> {
    checkPolicyName(name);
    const reply = (await runScript(this.redis, policyHistoryScript, [this.keys.version, this.keys.names, this.keys.history(name)], ['history', String(Math.min(Math.max(1, limit), 1000))])) as unknown[];
    const out: PolicyVersion[] = [];
    for (const raw of reply.slice(1)) {
      try {
        out.push(strip(parseEntry(name, String(raw))));
      } catch {
        // an entry written by hand that is not one: left out of the history
      }
    }
    return out;
  }

  /**
   * The newest entry of a policy's history that is a valid policy (a hand-written current entry
   * that is not one is replaced by it), or null.
   */
  async lastGood(name: string): Promise<(PolicyVersion & { body: PolicyBody | null }) | null> {
    return (await this.entries(name))[0] ?? null;
  }

  /** A policy's history as stored, newest first, each entry with its body; entries that are not valid policies are left out. */
  async entries(name: string): Promise<Array<PolicyVersion & { body: PolicyBody | null }>> {
    checkPolicyName(name);
    const reply = (await runScript(this.redis, policyHistoryScript, [this.keys.version, this.keys.names, this.keys.history(name)], ['history', String(this.historyMax)])) as unknown[];
    const out: Array<PolicyVersion & { body: PolicyBody | null }> = [];
    for (const raw of reply.slice(1)) {
      try {
        out.push(parseEntry(name, String(raw)));
      } catch {
        // not a policy: left out
      }
    }
    return out;
  }

  /** What changed in a policy between two versions (in its history). */
  async diff(name: string, from: number, to: number): Promise<PolicyDiff> {
    const versions = await this.history(name);
    const at = (v: number) => {
      const found = versions.find((h) => h.version === v);
      if (!found) throw new InvalidConfigError(`policy ${name} has no version ${v} in its history`);
      return found.policy ?? {};
    };
    return diffPolicies(name, from, to, at(from), at(to));
  }

  /** Stores a new version of a policy (validated here and again in Lua; nothing is stored if refused). */
  async set(name: string, policy: PolicyInput, o: ChangeOptions): Promise<number> {
    const body = encodePolicy(name, policy);
    return this.change('set', name, o, { body, parent: policy.parent });
  }

  /** Takes a policy away (its history stays). */
  async remove(name: string, o: ChangeOptions): Promise<number> {
    checkPolicyName(name);
    return this.change('remove', name, o, {});
  }

  /** Makes an earlier version current again, as a new version. */
  async rollback(name: string, toVersion: number, o: ChangeOptions): Promise<number> {
    checkPolicyName(name);
    if (!Number.isSafeInteger(toVersion) || toVersion < 1) throw new InvalidConfigError(`rollback needs a version (a positive integer), got ${JSON.stringify(toVersion)}`);
    const target = (await this.history(name)).find((h) => h.version === toVersion);
    return this.change('rollback', name, o, { toVersion, parent: target?.policy?.parent });
  }

  private async change(op: 'set' | 'remove' | 'rollback', name: string, o: ChangeOptions, what: { body?: string; parent?: string | undefined; toVersion?: number }): Promise<number> {
    const who = author(o);
    const carry = carryOverArg(o.carryOver);
    if (o.ifVersion !== undefined && (!Number.isSafeInteger(o.ifVersion) || o.ifVersion < 0)) throw new InvalidConfigError('ifVersion must be a non-negative integer');
    for (let attempt = 0; ; attempt++) {
      // The parent chain as it is now, read at one version; policy_set checks it is still that.
      const { version, ancestry } = await this.ancestry(what.parent);
      if (o.ifVersion !== undefined && o.ifVersion !== version) {
        throw new InvalidConfigError(`the policies are at version ${version}, not ${o.ifVersion} (ifVersion)`);
      }
      const keys = [this.keys.version, this.keys.history(name), this.keys.names, this.keys.doc(name), ...ancestry.map((a) => this.keys.doc(a))];
      const argv = [op, name, who, o.reason ?? '', carry, String(this.historyMax), what.body ?? '', what.toVersion !== undefined ? String(what.toVersion) : '', String(version), ''];
      try {
        const reply = (await runScript(this.redis, policySetScript, keys, argv)) as unknown[];
        const version = Number(reply[0]);
        this.onChange?.(`${version} ${name}`);
        return version;
      } catch (err) {
        if (isConflict(err) && attempt < CONFLICT_RETRIES && o.ifVersion === undefined) continue;
        if (isConflict(err)) throw new InvalidConfigError('the policies changed while this change was made (ifVersion, or retried too often): read again');
        refused(err);
      }
    }
  }

  /** The parent chain from `parent` up, as stored, read in consistent snapshots (stops at a repeat: policy_set names the cycle). */
  private async ancestry(parent: string | undefined): Promise<{ version: number; ancestry: string[] }> {
    for (;;) {
      const names: string[] = [];
      let version = -1;
      let next = parent;
      let stable = true;
      while (next !== undefined && !names.includes(next)) {
        names.push(next);
        const r = await this.read([this.keys.doc(next)]);
        if (version !== -1 && r.version !== version) {
          stable = false;
          break;
        }
        version = r.version;
        next = parentOfRaw(next, r.values[0]);
      }
      if (names.includes(next as string)) names.push(next as string);
      if (version === -1) version = await this.version();
      if (stable) return { version, ancestry: names };
    }
  }
}

function parentOfRaw(name: string, raw: string | null | undefined): string | undefined {
  if (!raw) return undefined;
  try {
    return parseEntry(name, raw).body?.parent;
  } catch {
    return undefined;
  }
}

function strip(v: PolicyVersion & { body?: unknown }): PolicyVersion {
  const { body: _body, ...rest } = v;
  return rest;
}

export function diffPolicies(name: string, from: number, to: number, a: PolicyInput, b: PolicyInput): PolicyDiff {
  const limits: LimitChange[] = [];
  const byName = (p: PolicyInput) => new Map((p.limits ?? []).map((l) => [l.name, l]));
  const la = byName(a);
  const lb = byName(b);
  for (const [n, l] of la) {
    if (!lb.has(n)) limits.push({ name: n, change: 'removed', from: l });
    else if (JSON.stringify(l) !== JSON.stringify(lb.get(n))) limits.push({ name: n, change: 'changed', from: l, to: lb.get(n) });
  }
  for (const [n, l] of lb) if (!la.has(n)) limits.push({ name: n, change: 'added', to: l });
  const fields: PolicyDiff['fields'] = [];
  for (const f of ['remove', 'scale', 'parent', 'description'] as const) {
    if (JSON.stringify(a[f]) !== JSON.stringify(b[f])) fields.push({ field: f, from: a[f] ?? null, to: b[f] ?? null });
  }
  return { name, from, to, limits, fields };
}
