import type { LimitSpec } from '../client/config.js';
import type { PolicyBody } from './document.js';

/** One policy as the resolver sees it (absent: no such policy, or removed). */
export interface Layer {
  name: string;
  body: PolicyBody | null;
  resets: Record<string, number>;
}

/** What the upstream taught about a target (adaptive_feedback). */
export interface Learned {
  learned: number;
  /** Server ms. */
  pausedUntilMs: number;
}

export interface Resolution {
  /** The limits to decide with, keyed for Redis: a reset epoch appended to a name (`rpm-r12`). */
  specs: LimitSpec[];
  /** keyed name -> the limit's own name. */
  names: Map<string, string>;
  /** Whether any keyed name differs from its own name (a reset epoch). */
  renamed: boolean;
  /** The own name -> value before the adaptive cap (the ceiling AIMD climbs back to). */
  uncapped: Map<string, number>;
  /** The policies applied, least specific first (parents expanded). */
  layers: string[];
  /** Learned limits that capped this set, by target. */
  learned: Record<string, number>;
  /** The latest pause of any target in the chain, server ms (0: none). */
  pausedUntilMs: number;
  /** Problems found on the way (an inheritance cycle in stored data). */
  warnings: string[];
  /** The limits as the caller knows them: `specs` under their own names. */
  ownSpecs: LimitSpec[];
  /** During an outage: no policy of the chain was ever read (nothing is known of it). */
  unknown?: boolean;
}

/** The parameter that holds a limit's capacity besides `limit` (scaled with it). */
const CAPACITY_PROPS = ['burst'] as const;

/**
 * Value x (product of the scales), floored, at least 1: exact integer arithmetic (BigInt), so
 * 1000 x 0.8 is 800 and 7 x 0.5 is 3 on every platform.
 */
export function scaled(value: number, scalesBp: readonly number[]): number {
  if (scalesBp.length === 0) return value;
  let num = BigInt(value);
  let den = 1n;
  for (const bp of scalesBp) {
    num *= BigInt(bp);
    den *= 10_000n;
  }
  const out = Number(num / den);
  return out < 1 ? 1 : out;
}

/**
 * The chain with every `parent` expanded ancestors first, each policy once. A cycle in stored data
 * (only a hand-written entry can hold one: policy_set refuses them) is cut and reported.
 */
export function expand(chain: readonly string[], parentOf: (name: string) => string | undefined, warnings: string[]): string[] {
  const out: string[] = [];
  const placed = new Set<string>();
  for (const name of chain) {
    const lineage: string[] = [];
    const seen = new Set<string>();
    for (let n: string | undefined = name; n !== undefined && !placed.has(n); n = parentOf(n)) {
      if (seen.has(n)) {
        warnings.push(`policy ${name}: inheritance cycle through ${n} (cut)`);
        break;
      }
      seen.add(n);
      lineage.unshift(n);
    }
    for (const n of lineage) {
      placed.add(n);
      out.push(n);
    }
  }
  return out;
}

/**
 * Resolves a subject's limits through its layers, least specific first: `defaults` (code), then
 * each policy. Per limit name the most specific layer's spec wins; `remove` takes a limit away;
 * a layer's scale multiplies everything resolved so far (its own limits included) but not what
 * more specific layers set afterwards. Reset epochs: the highest any layer in the chain recorded
 * for a name, so a `reset` change on any policy a subject inherits starts that limit fresh.
 * Adaptive: a learned value for a target in the chain caps `limit` (and `burst`) of the
 * adaptive limits.
 */
export function resolve(
  defaults: readonly LimitSpec[],
  layers: readonly Layer[],
  adaptive: { limits: readonly string[] | null; learned: ReadonlyMap<string, Learned> } | null,
): Omit<Resolution, 'layers' | 'warnings' | 'ownSpecs'> {
  const current = new Map<string, { spec: LimitSpec; scales: number[] }>();
  for (const d of defaults) current.set(d.name, { spec: d, scales: [] });
  const epochs = new Map<string, number>();
  for (const layer of layers) {
    for (const [n, v] of Object.entries(layer.resets)) if (v > (epochs.get(n) ?? 0)) epochs.set(n, v);
    const b = layer.body;
    if (!b) continue;
    for (const l of b.limits ?? []) current.set(l.name, { spec: l, scales: [] });
    for (const r of b.remove ?? []) current.delete(r);
    if (b.scaleBp !== undefined && b.scaleBp !== 10_000) for (const c of current.values()) c.scales.push(b.scaleBp);
  }
  const learned: Record<string, number> = {};
  let pausedUntilMs = 0;
  let cap = Infinity;
  if (adaptive) {
    for (const layer of layers) {
      const l = adaptive.learned.get(layer.name);
      if (!l) continue;
      learned[layer.name] = l.learned;
      cap = Math.min(cap, l.learned);
      pausedUntilMs = Math.max(pausedUntilMs, l.pausedUntilMs);
    }
  }
  const specs: LimitSpec[] = [];
  const names = new Map<string, string>();
  const uncapped = new Map<string, number>();
  for (const name of [...current.keys()].sort()) {
    const { spec, scales } = current.get(name)!;
    const out = { ...spec } as LimitSpec & Record<string, unknown>;
    out.limit = scaled(spec.limit, scales);
    for (const p of CAPACITY_PROPS) if (typeof out[p] === 'number') out[p] = scaled(out[p] as number, scales);
    uncapped.set(name, out.limit);
    if (cap !== Infinity && (adaptive!.limits === null || adaptive!.limits.includes(name))) {
      out.limit = Math.min(out.limit, cap);
      for (const p of CAPACITY_PROPS) if (typeof out[p] === 'number') out[p] = Math.min(out[p] as number, cap);
    }
    const epoch = epochs.get(name) ?? 0;
    out.name = epoch > 0 ? `${name}-r${epoch.toString(36)}` : name;
    names.set(out.name, name);
    specs.push(out);
  }
  const renamed = [...names].some(([keyed, own]) => keyed !== own);
  return { specs, names, renamed, uncapped, learned, pausedUntilMs };
}
