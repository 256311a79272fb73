/**
 * Proportional carry-over. A `proportional` change gives the limits it sets a new key epoch (as
 * `reset` does) and records what they were counted under before; each subject's state is carried
 * to its new key with the same fraction left — policy_carry, once per subject and limit, before
 * the subject's first call under the change (each instance remembers the subjects it carried;
 * the script leaves a marker, so instances never carry twice; a carry that failed is made on a
 * later call and adds to what the new key counted meanwhile).
 *
 * The old limits of a subject are its chain resolved with the changed policy's previous version
 * (from its history) and the other policies as they are now. Two proportional changes of the
 * same limit in a row chain: a subject idle across both is carried from the oldest key it has.
 */
import { policyCarry } from '../../generated/index.js';
import type { LimitSpec } from '../client/config.js';
import { limitKey, resolveSubject, type Subject } from '../client/keys.js';
import type { RedisClientLike } from '../runtime/index.js';
import type { PolicyBody, PolicyVersion } from './document.js';
import type { Layer, Resolution } from './resolve.js';
import type { PolicyStore } from './store.js';

/** One limit to carry: its new keyed name and spec, and where from (newest first). */
export interface Carry {
  keyed: string;
  spec: LimitSpec;
  from: Array<{ keyed: string; spec: LimitSpec }>;
}

type Entry = PolicyVersion & { body: PolicyBody | null };
type ResolveLayers = (layers: Layer[]) => Pick<Resolution, 'specs' | 'names'>;

/** How far back a chain of proportional changes of one limit is followed. */
const MAX_STEPS = 8;

/** A source's limits as policy_carry reads them: algo:limit:period_ms:burst:offset_ms:unit. */
export function carrySpec(s: LimitSpec): string | null {
  const r = s as LimitSpec & Record<string, unknown>;
  if (r.algo === 'quota') return r.timeZone !== undefined ? null : `quota:${r.limit}:0:0:${(r.utcOffsetMs as number | undefined) ?? 0}:${r.unit as string}`;
  if (!['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log'].includes(r.algo)) return null;
  return `${r.algo}:${r.limit}:${r.periodMs as number}:${(r.burst as number | undefined) ?? 0}:${(r.offsetMs as number | undefined) ?? 0}:`;
}

const epochOf = (layers: readonly Layer[], name: string) => layers.reduce((m, l) => Math.max(m, l.resets[name] ?? 0), 0);

export class Carrier {
  /** Each policy's history as last read (entries never change once written). */
  private readonly histories = new Map<string, Entry[]>();
  /** Target keys this instance carried (or found carried), oldest first. */
  private readonly done = new Set<string>();

  constructor(
    private readonly store: PolicyStore,
    private readonly redis: RedisClientLike,
    private readonly prefix: string,
    private readonly warn: (message: string) => void,
  ) {}

  /** The entry of `name` at `version`, from its history (read again when it may be newer than what is known). */
  private async entryAt(name: string, version: number): Promise<Entry | null> {
    let h = this.histories.get(name);
    if (!h || (h[0]?.version ?? 0) < version) {
      h = await this.store.entries(name);
      this.histories.set(name, h);
    }
    return h.find((e) => e.version === version) ?? null;
  }

  /** What `res` must carry: each limit whose epoch a proportional change set, with its earlier keys and limits. */
  async carriesFor(layers: Layer[], res: Pick<Resolution, 'specs' | 'names'>, resolveLayers: ResolveLayers): Promise<Carry[]> {
    const out: Carry[] = [];
    for (const spec of res.specs) {
      const own = res.names.get(spec.name)!;
      const from: Carry['from'] = [];
      let current = layers;
      for (let step = 0; step < MAX_STEPS; step++) {
        const epoch = epochOf(current, own);
        if (epoch === 0) break;
        const at = current.findIndex((l) => l.resets[own] === epoch);
        const change = await this.entryAt(current[at]!.name, epoch);
        if (!change || change.carryOver !== 'proportional' || change.carry?.[own] === undefined) break;
        const prev = change.prev ? await this.entryAt(change.name, change.prev) : null;
        const resets: Record<string, number> = { ...current[at]!.resets };
        for (const [n, e] of Object.entries(change.carry)) {
          if (e > 0) resets[n] = e;
          else delete resets[n];
        }
        const before: Layer = { name: change.name, body: prev && prev.op !== 'remove' ? prev.body : null, resets };
        current = current.map((l, i) => (i === at ? before : l));
        const old = resolveLayers(current);
        const oldSpec = old.specs.find((s) => old.names.get(s.name) === own);
        if (!oldSpec) break; // the limit did not exist before: nothing was used
        if (oldSpec.algo !== spec.algo || carrySpec(oldSpec) === null || carrySpec(spec) === null) {
          this.warn(`limit ${own}: a proportional change from ${oldSpec.algo} to ${spec.algo} (or a quota in a time zone) cannot carry; the new limit starts fresh`);
          break;
        }
        from.push({ keyed: oldSpec.name, spec: oldSpec });
      }
      if (from.length > 0) out.push({ keyed: spec.name, spec, from });
    }
    return out;
  }

  /** Carries `subject`'s state for each of `carries` not carried yet by this instance. Redis unreachable: left for the next call. */
  async carry(subject: Subject, carries: readonly Carry[], deadline: <T>(p: Promise<T>) => Promise<T>): Promise<void> {
    const s = resolveSubject(subject);
    for (const c of carries) {
      const target = limitKey(this.prefix, s, c.keyed, c.spec.scope ?? null);
      if (this.done.has(target)) continue;
      const marker = limitKey(this.prefix, s, `!carry:${c.keyed}`, c.spec.scope ?? null);
      const sources = c.from.map((f) => limitKey(this.prefix, s, f.keyed, f.spec.scope ?? null));
      const r = c.spec as LimitSpec & Record<string, unknown>;
      try {
        await deadline(
          policyCarry(this.redis, {
            targetKey: target,
            markerKey: marker,
            keys: sources,
            algo: r.algo as never,
            limit: r.limit,
            from: c.from.map((f) => carrySpec(f.spec)!).join(','),
            ...(r.algo === 'quota' ? { unit: r.unit as never, offsetMs: (r.utcOffsetMs as number | undefined) ?? 0 } : { periodMs: r.periodMs as number, offsetMs: (r.offsetMs as number | undefined) ?? 0 }),
            ...(typeof r.burst === 'number' ? { burst: r.burst } : {}),
          }),
        );
      } catch {
        continue; // unreachable or slow: carried on a later call (what the new key counts meanwhile is added to, not lost)
      }
      this.done.add(target);
      if (this.done.size > 100_000) this.done.delete(this.done.values().next().value!);
    }
  }

  /** Whether `subject` still has a carry to make under `carries` (in this instance). */
  pending(subject: Subject, carries: readonly Carry[]): boolean {
    const s = resolveSubject(subject);
    return carries.some((c) => !this.done.has(limitKey(this.prefix, s, c.keyed, c.spec.scope ?? null)));
  }

  /** The keys a reset must clear too: the sources (a carry made later would bring their use back) and the marker. */
  sourceKeys(subject: Subject, carries: readonly Carry[]): string[] {
    const s = resolveSubject(subject);
    return carries.flatMap((c) => [limitKey(this.prefix, s, `!carry:${c.keyed}`, c.spec.scope ?? null), ...c.from.map((f) => limitKey(this.prefix, s, f.keyed, f.spec.scope ?? null))]);
  }
}
